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
import importlib
import json
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from bench._machine import machine_facts
from bench._report import Context, ModuleResult, RunResult, Section, render_markdown

PREFIX = "bench_"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
# artifacts/ is git-ignored: raw numbers are noisy and stay out of the repository.
DEFAULT_JSON = ROOT / "artifacts" / "bench" / "results.json"
_DEFAULT_ORDER = 100

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
    found = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.startswith(PREFIX) and not info.ispkg:
            found[info.name[len(PREFIX) :]] = f"{__package__}.{info.name}"
    return found


def load(names: Sequence[str] | None = None) -> list[tuple[str, ModuleType]]:
    """Import the named bench modules (all when ``names`` is None), sorted by ORDER.

    Raises ``ValueError`` naming the unknown ones and listing the known.
    """
    known = discover()
    wanted = list(known) if not names else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(
            f"unknown bench module(s) {', '.join(unknown)}; known: {', '.join(known) or 'none'}"
        )
    modules = []
    for name in wanted:
        module = importlib.import_module(known[name])
        if not callable(getattr(module, "run", None)):
            raise ValueError(f"bench module {module.__name__} has no run(ctx) function")
        modules.append((name, module))
    modules.sort(key=lambda item: (getattr(item[1], "ORDER", _DEFAULT_ORDER), item[0]))
    return modules


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
        "--only",
        action="append",
        metavar="NAME",
        help="run only this bench module (repeatable; see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list bench modules and exit")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: small sizes and few repeats"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"Markdown report path (default: {DEFAULT_OUTPUT.relative_to(ROOT)} for a "
        "full run, stdout with --only or --quick); '-' for stdout",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"raw results path (default: {DEFAULT_JSON.relative_to(ROOT)})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.list:
        for name, module in discover().items():
            print(f"{name}\t{module}")
        return 0
    names = [n.strip() for item in args.only or () for n in item.split(",") if n.strip()]
    try:
        modules = load(names or None)
    except ValueError as exc:
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2
    command = "python -m bench" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    run = run_modules(modules, Context(quick=args.quick), command)
    markdown = render_markdown(run, HOW_TO_RUN)
    output: Path | None = args.output
    if output is None and not names and not args.quick:
        output = DEFAULT_OUTPUT
    if output is None or str(output) == "-":
        print(markdown)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(markdown, encoding="utf-8")
        print(f"[bench] wrote {output}", file=sys.stderr)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(to_json(run), indent=2, default=str), encoding="utf-8")
    for title, target in run.targets:
        print(
            f"[bench] {target.verdict}  {title}: {target.name}: {target.measured} "
            f"(threshold {target.threshold})",
            file=sys.stderr,
        )
    return 0 if run.ok else 1
