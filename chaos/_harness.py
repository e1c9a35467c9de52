"""Find the scenario modules, run them one after another, write docs/reliability.md.

A scenario is any ``chaos/scenario_<name>.py``: its file name registers it, ``<name>`` is
what ``--only`` takes. It provides ``TITLE``, ``FAULT`` and
``async def run(ctx: Context) -> list[Check]`` and may set ``ORDER`` (default 100).

Example::

    >>> "hostile" in discover()
    True
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

from bench._machine import machine_facts
from bench._procs import raise_nofile
from bench._suite import Suite

from chaos._report import Check, Context, ScenarioResult, render_markdown

SUITE = Suite("chaos", "scenario_", "scenario", Path(__file__).parent, "reliability.md")
# Kept process logs (NOVA_CHAOS_KEEP_LOGS=1), per run, next to the raw results.
DEFAULT_RUN_ROOT = SUITE.artifacts / "runs"

HOW_TO_RUN = """
```sh
make chaos                                   # = .venv/bin/python -m chaos (about 6 min)
.venv/bin/python -m chaos --list             # the scenarios it would run
.venv/bin/python -m chaos --only hostile     # one scenario (repeatable); prints its Markdown
.venv/bin/python -m chaos --short            # the short version (as in make test); prints
NOVA_CHAOS_KEEP_LOGS=1 .venv/bin/python -m chaos --only churn   # keep every process log
```

A full run writes this file and the raw results to `artifacts/chaos/results.json`
(git-ignored) and exits 1 when a check fails or a scenario errors. With `--only` or
`--short` the report goes to stdout unless `--output PATH` is given. Every process
runs on 127.0.0.1 on free ports, in its own process group, and is stopped by its
recorded pid. The short version of every scenario runs in `make test`
(`tests/chaos`, marked slow): it asserts the invariants, never the figures (times,
sizes), which only an idle machine can hold to a bound.

A new scenario is one file, `chaos/scenario_<name>.py`, defining `TITLE`, `FAULT` and
`async def run(ctx: chaos._report.Context) -> list[chaos._report.Check]`.
"""


def discover() -> dict[str, str]:
    """Scenario names (``--only`` values) mapped to module names, in file-name order."""
    return SUITE.discover()


def load(names: Sequence[str] | None = None) -> list[tuple[str, ModuleType]]:
    """Import the named scenarios (all when ``names`` is None), sorted by ORDER.

    Raises ``ValueError`` naming the unknown ones and listing the known.
    """
    return SUITE.load(names)


def run_one(name: str, module: ModuleType, ctx: Context) -> ScenarioResult:
    """Run one scenario in a fresh event loop; an exception is its error, not a crash."""
    result = ScenarioResult(name, getattr(module, "TITLE", name), getattr(module, "FAULT", ""))
    t0 = time.perf_counter()
    try:
        checks = asyncio.run(module.run(ctx))
        for check in checks:
            if not isinstance(check, Check):
                raise TypeError(f"run() must return Check objects, got {type(check).__name__}")
        result.checks = list(checks)
    except Exception as exc:
        traceback.print_exc()
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - t0
    return result


def measured_commit(machine: Sequence[tuple[str, str]]) -> str:
    """The git commit the run measured, as the machine table states it."""
    return dict(machine).get("Git commit", "unknown")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Run the Nova Streaming fault suite and write docs/reliability.md.",
    )
    parser.add_argument("--short", action="store_true", help="the short version (make test)")
    SUITE.add_arguments(parser, partial_flag="--short")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    selected = SUITE.selected(args)
    if isinstance(selected, int):
        return selected
    names, modules = selected
    raise_nofile()
    # SIGTERM unwinds like Ctrl-C: every world's teardown stops what it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ctx = Context(short=args.short, run_root=str(DEFAULT_RUN_ROOT))
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_facts()
    t0 = time.perf_counter()
    results = []
    for name, module in modules:
        ctx.log(f"{name}: running")
        result = run_one(name, module, ctx)
        for check in result.checks:
            ctx.log(f"  {check.verdict} {check.invariant}: {check.measured} ({check.bound})")
        ctx.log(
            f"{name}: {'PASS' if result.ok else 'FAIL'} in {result.seconds:.0f} s"
            + (f" (error: {result.error})" if result.error else "")
        )
        results.append(result)
    markdown = render_markdown(
        results,
        machine=machine,
        started=started,
        seconds=time.perf_counter() - t0,
        command=SUITE.command_line(argv),
        commit=measured_commit(machine),
        how_to_run=HOW_TO_RUN,
    )
    written = SUITE.write_outputs(
        markdown,
        [asdict(r) | {"ok": r.ok} for r in results],
        output=args.output,
        partial=bool(names) or args.short,
        json_path=args.json,
    )
    if written is not None:
        ctx.log(f"wrote {written}")
    return 0 if all(r.ok for r in results) else 1
