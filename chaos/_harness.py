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
import importlib
import json
import pkgutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

from bench._machine import machine_facts
from bench._procs import raise_nofile

from chaos._report import Check, Context, ScenarioResult, render_markdown

PREFIX = "scenario_"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "reliability.md"
# artifacts/ is git-ignored: raw results and kept logs stay out of the repository.
DEFAULT_JSON = ROOT / "artifacts" / "chaos" / "results.json"
DEFAULT_RUN_ROOT = ROOT / "artifacts" / "chaos" / "runs"
_DEFAULT_ORDER = 100
# The other branches whose fixes the scenarios exercise (reported as merged or not).
FIX_BRANCHES = ("hostile-ingest", "redis-cluster", "deploy-core")

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
    found = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.startswith(PREFIX) and not info.ispkg:
            found[info.name[len(PREFIX) :]] = f"chaos.{info.name}"
    return found


def load(names: Sequence[str] | None = None) -> list[tuple[str, ModuleType]]:
    """Import the named scenarios (all when ``names`` is None), sorted by ORDER.

    Raises ``ValueError`` naming the unknown ones and listing the known.
    """
    known = discover()
    wanted = list(known) if not names else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}")
    modules = [(name, importlib.import_module(known[name])) for name in wanted]
    for _, module in modules:
        if not callable(getattr(module, "run", None)):
            raise ValueError(f"scenario {module.__name__} has no run(ctx) function")
    modules.sort(key=lambda item: (getattr(item[1], "ORDER", _DEFAULT_ORDER), item[0]))
    return modules


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


def merged_branches() -> str:
    """Which fix branches are in HEAD's history (read-only git)."""
    parts = []
    for branch in FIX_BRANCHES:
        try:
            tip = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", branch],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            if not tip:
                parts.append(f"{branch}: unknown here")
                continue
            missing = subprocess.run(
                ["git", "rev-list", "--count", f"HEAD..{tip}"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            state = "merged" if missing == "0" else f"{missing} commit(s) not merged"
            parts.append(f"{branch} (tip {tip[:7]}): {state}")
        except (OSError, subprocess.SubprocessError):
            parts.append(f"{branch}: unknown")
    return "; ".join(parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Run the Nova Streaming fault suite and write docs/reliability.md.",
    )
    parser.add_argument("--only", action="append", metavar="NAME", help="run this scenario")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--short", action="store_true", help="the short version (make test)")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"Markdown path (default: {DEFAULT_OUTPUT.relative_to(ROOT)} for a full run, "
        "stdout with --only or --short); '-' for stdout",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="raw results path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.list:
        for name, module_name in discover().items():
            print(f"{name}\t{module_name}")
        return 0
    names = [n.strip() for item in args.only or () for n in item.split(",") if n.strip()]
    try:
        modules = load(names or None)
    except ValueError as exc:
        print(f"python -m chaos: {exc}", file=sys.stderr)
        return 2
    raise_nofile()
    # SIGTERM unwinds like Ctrl-C: every world's teardown stops what it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ctx = Context(short=args.short, run_root=str(DEFAULT_RUN_ROOT))
    command = "python -m chaos" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
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
        command=command,
        merged=merged_branches(),
        how_to_run=HOW_TO_RUN,
    )
    output: Path | None = args.output
    if output is None and not names and not args.short:
        output = DEFAULT_OUTPUT
    if output is None or str(output) == "-":
        print(markdown)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(markdown, encoding="utf-8")
        ctx.log(f"wrote {output}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    raw = [asdict(r) | {"ok": r.ok} for r in results]
    args.json.write_text(json.dumps(raw, indent=2, default=str), encoding="utf-8")
    return 0 if all(r.ok for r in results) else 1
