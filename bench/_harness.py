"""Find the bench modules, run them, write docs/benchmarks.md and a JSON of raw results.

A bench module is any ``bench/bench_<name>.py``: its file name registers it, ``<name>``
is what ``--only`` takes. It provides ``run(ctx: Context) -> Sequence[Section]`` and may
set ``ORDER`` (int, default 100: lower first).

Example::

    >>> "library_hot_path" in discover()
    True
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from bench._machine import machine_facts
from bench._report import Context, ModuleResult, RunResult, Section, render_markdown
from bench._suite import Suite

SUITE = Suite("bench", "bench_", "bench module", Path(__file__).parent, "benchmarks.md")

HOW_TO_RUN = """
```sh
make bench                                   # = .venv/bin/python -m bench
.venv/bin/python -m bench --list             # the bench modules it would run
.venv/bin/python -m bench --only exposition  # one module (repeatable); prints its Markdown
.venv/bin/python -m bench --quick            # smoke run: small sizes, 2 repeats; prints
```

A full run writes this file and the raw numbers to `artifacts/bench/results.json`
(git-ignored), and exits 1 when a target fails or a bench module errors. With `--only`
or `--quick` the report goes to stdout unless `--output PATH` is given, so a partial or
smoke run never replaces the full document. Run it on an otherwise idle machine: the harness
interleaves cases and takes minima or medians over repeats, but a busy neighbour still
shows in the absolute numbers (less in the ratios, which compare cases measured side by
side).

A new benchmark is one file, `bench/bench_<name>.py`, defining
`run(ctx: bench.Context) -> list[bench.Section]` (and optionally `ORDER`); the harness
finds it by its name, and `--only <name>` runs it alone.
"""


def discover() -> dict[str, str]:
    """Bench names (``--only`` values) mapped to module names, in file-name order."""
    return SUITE.discover()


def load(names: Sequence[str] | None = None) -> list[tuple[str, ModuleType]]:
    """Import the named bench modules (all when ``names`` is None), sorted by ORDER.

    Raises ``ValueError`` naming the unknown ones and listing the known.
    """
    return SUITE.load(names)


def run_modules(modules: Sequence[tuple[str, ModuleType]], ctx: Context, command: str) -> RunResult:
    """Run each module; a module that raises is reported as failed, the rest still run."""
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_facts()
    results = []
    t_run = time.perf_counter()
    for name, module in modules:
        ctx.log(f"{name}: running")
        t0 = time.perf_counter()
        try:
            sections = list(module.run(ctx))
            for section in sections:
                if not isinstance(section, Section):
                    raise TypeError(
                        f"run() must return Section objects, got {type(section).__name__}"
                    )
            error = None
        except Exception as exc:
            traceback.print_exc()
            sections, error = [], f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        ctx.log(f"{name}: done in {seconds:.1f} s" + (f" (FAILED: {error})" if error else ""))
        results.append(ModuleResult(name, sections, seconds, error))
    return RunResult(
        machine=machine,
        modules=results,
        started=started,
        seconds=time.perf_counter() - t_run,
        quick=ctx.quick,
        command=command,
    )


def to_json(run: RunResult) -> dict[str, Any]:
    """The run as JSON-serialisable data (raw numbers included)."""
    return dataclasses.asdict(run) | {"ok": run.ok}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the Nova Streaming benchmarks and write docs/benchmarks.md.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: small sizes and few repeats"
    )
    SUITE.add_arguments(parser, partial_flag="--quick")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    selected = SUITE.selected(args)
    if isinstance(selected, int):
        return selected
    names, modules = selected
    run = run_modules(modules, Context(quick=args.quick), SUITE.command_line(argv))
    written = SUITE.write_outputs(
        render_markdown(run, HOW_TO_RUN),
        to_json(run),
        output=args.output,
        partial=bool(names) or args.quick,
        json_path=args.json,
    )
    if written is not None:
        print(f"[bench] wrote {written}", file=sys.stderr)
    for title, target in run.targets:
        print(
            f"[bench] {target.verdict}  {title}: {target.name}: {target.measured} "
            f"(threshold {target.threshold})",
            file=sys.stderr,
        )
    return 0 if run.ok else 1
