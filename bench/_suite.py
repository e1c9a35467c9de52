"""What ``python -m bench`` and ``python -m chaos`` share: modules found by file name,
loaded by name in ``ORDER``, one command line, one way of writing the report.

A *suite* is a package whose modules ``<prefix><name>.py`` each define ``run(ctx)``;
``<name>`` is what ``--only`` takes. A full run writes the package's document (e.g.
docs/benchmarks.md); ``--only`` or the short flag (``--quick``, ``--short``) prints it
instead unless ``--output`` is given, so a partial run never replaces the full document.

Example::

    >>> suite = Suite("bench", "bench_", "bench module", Path("bench"), "benchmarks.md")
    >>> "exposition" in suite.discover()
    True
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

DEFAULT_ORDER = 100
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Suite:
    """One package of run-by-name modules: ``package.<prefix><name>``, called ``kind``
    in messages ("bench module", "scenario"), found in ``directory``; a full run writes
    ``docs/<document>``."""

    package: str
    prefix: str
    kind: str
    directory: Path
    document: str

    @property
    def default_output(self) -> Path:
        """Where a full run writes its report."""
        return REPO_ROOT / "docs" / self.document

    @property
    def artifacts(self) -> Path:
        """The package's folder of raw results and logs, ``artifacts/<package>``
        (git-ignored: raw figures are noisy and stay out of the repository)."""
        return REPO_ROOT / "artifacts" / self.package

    @property
    def default_json(self) -> Path:
        """Where a run writes its raw results."""
        return self.artifacts / "results.json"

    def discover(self) -> dict[str, str]:
        """``--only`` names mapped to module names, in file-name order."""
        found = {}
        for info in sorted(pkgutil.iter_modules([str(self.directory)]), key=lambda i: i.name):
            if info.name.startswith(self.prefix) and not info.ispkg:
                found[info.name[len(self.prefix) :]] = f"{self.package}.{info.name}"
        return found

    def load(self, names: Sequence[str] | None = None) -> list[tuple[str, ModuleType]]:
        """Import the named modules (all when ``names`` is None or empty), sorted by their
        ``ORDER`` (default 100) then name.

        Raises ``ValueError`` naming the unknown ones and listing the known, or naming a
        module without a ``run`` function.
        """
        known = self.discover()
        wanted = list(known) if not names else list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise ValueError(
                f"unknown {self.kind}(s) {', '.join(unknown)}; known: {', '.join(known) or 'none'}"
            )
        modules = [(name, importlib.import_module(known[name])) for name in wanted]
        for _, module in modules:
            if not callable(getattr(module, "run", None)):
                raise ValueError(f"{self.kind} {module.__name__} has no run(ctx) function")
        modules.sort(key=lambda item: (getattr(item[1], "ORDER", DEFAULT_ORDER), item[0]))
        return modules

    def add_arguments(self, parser: argparse.ArgumentParser, *, partial_flag: str) -> None:
        """``--only``, ``--list``, ``--output`` and ``--json``, worded for this suite."""
        parser.add_argument(
            "--only",
            action="append",
            metavar="NAME",
            help=f"run only this {self.kind} (repeatable; see --list)",
        )
        parser.add_argument("--list", action="store_true", help=f"list the {self.kind}s and exit")
        parser.add_argument(
            "--output",
            type=Path,
            help=f"Markdown report path (default: {self.default_output.relative_to(REPO_ROOT)} "
            f"for a full run, stdout with --only or {partial_flag}); '-' for stdout",
        )
        parser.add_argument(
            "--json",
            type=Path,
            default=self.default_json,
            help=f"raw results path (default: {self.default_json.relative_to(REPO_ROOT)})",
        )

    def selected(
        self, args: argparse.Namespace
    ) -> tuple[list[str], list[tuple[str, ModuleType]]] | int:
        """What ``args`` asks to run: ``(--only names, loaded modules)``, or the exit
        status when nothing is to run (0 after printing ``--list``, 2 after naming an
        unknown module on stderr)."""
        if args.list:
            for name, module_name in self.discover().items():
                print(f"{name}\t{module_name}")
            return 0
        names = self.only_names(args.only)
        try:
            return names, self.load(names or None)
        except ValueError as exc:
            print(f"python -m {self.package}: {exc}", file=sys.stderr)
            return 2

    @staticmethod
    def only_names(only: Sequence[str] | None) -> list[str]:
        """The ``--only`` values, comma lists split, blanks dropped."""
        return [n.strip() for item in only or () for n in item.split(",") if n.strip()]

    def command_line(self, argv: Sequence[str] | None) -> str:
        """The command as the report quotes it (``python -m <package> ...``)."""
        return f"python -m {self.package}" + "".join(f" {a}" for a in (argv or sys.argv[1:]))

    def write_outputs(
        self,
        markdown: str,
        raw: Any,
        *,
        output: Path | None,
        partial: bool,
        json_path: Path,
    ) -> Path | None:
        """Write the report (to the suite's document for a full run, stdout for a partial
        one or ``-``) and the raw results as JSON; returns the report's path, None for
        stdout."""
        if output is None and not partial:
            output = self.default_output
        if output is None or str(output) == "-":
            print(markdown)
            output = None
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(markdown, encoding="utf-8")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(raw, indent=2, default=str), encoding="utf-8")
        return output
