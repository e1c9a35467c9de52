"""``nova-streaming``: the service's command line.

Subcommands are discovered: every module in :mod:`nova_streaming.commands` that
defines ``add_parser(subparsers)`` adds one (``serve``, ``token``, ...). To add a
command, drop a module there::

    # src/nova_streaming/commands/verify.py
    def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        parser = subparsers.add_parser("verify", help="...")
        parser.set_defaults(handler=run)

    def run(args: argparse.Namespace) -> int:
        ...
        return 0

A handler returns the exit status; :class:`~nova_streaming.settings.SettingsError`
raised by a handler is printed and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence

from nova_streaming import commands
from nova_streaming.settings import SettingsError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="nova-streaming", description="Nova streaming service and tools."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        add_parser: Callable[..., None] | None = getattr(module, "add_parser", None)
        if add_parser is not None:
            add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nova-streaming`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SettingsError as exc:
        print(f"nova-streaming: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
