"""``nova-streaming``: the service's command line.

Subcommands are discovered: every module in :mod:`nova_streaming.commands` that
defines ``add_parser(subparsers)`` adds one (``serve``, ``token``, ...). To add a
command, drop a module there::

    # src/nova_streaming/commands/verify.py
    EXTRAS = ("monitoring",)        # extras it needs (default: none, the library alone)

    def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        parser = subparsers.add_parser("verify", help="...")
        parser.set_defaults(handler=run)

    def run(args: argparse.Namespace) -> int:
        ...
        return 0

A command module imports only the standard library and the library at module level;
what its extras provide is imported inside ``add_parser``/``run``. When one of a
command's ``EXTRAS`` is not installed, its ``add_parser`` is not called: the command is
listed with a note, and running it (``--help`` included) prints which extra to install
and exits 3. A handler returns the exit status;
:class:`~nova_streaming.settings.SettingsError` raised by a handler is printed and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from nova_streaming import commands
from nova_streaming.extras import MISSING_EXTRA_EXIT, missing_extra_message, missing_extras
from nova_streaming.settings import SettingsError

__all__ = ["build_parser", "main"]

PROG = "nova-streaming"


def _command_modules() -> list[tuple[str, ModuleType]]:
    """(command name, module) of every discovered command, by module name."""
    found: list[tuple[str, ModuleType]] = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if getattr(module, "add_parser", None) is not None:
            name: str = getattr(module, "COMMAND", info.name.replace("_", "-"))
            found.append((name, module))
    return found


def _missing(module: ModuleType) -> tuple[str, ...]:
    return missing_extras(getattr(module, "EXTRAS", ()))


def build_parser() -> argparse.ArgumentParser:
    """The parser with every discovered subcommand (those missing an extra as stubs)."""
    parser = argparse.ArgumentParser(prog=PROG, description="Nova streaming service and tools.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, module in _command_modules():
        missing = _missing(module)
        if missing:
            stub = subparsers.add_parser(
                name, help=f"(needs: pip install 'nova-streaming[{','.join(missing)}]')"
            )
            stub.set_defaults(handler=_missing_handler(name, missing))
            continue
        add_parser: Callable[..., None] = module.add_parser
        add_parser(subparsers)
    return parser


def _missing_handler(name: str, missing: Sequence[str]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        print(missing_extra_message(PROG, name, missing), file=sys.stderr)
        return MISSING_EXTRA_EXIT

    return handler


def _check_extras(argv: Sequence[str]) -> int | None:
    """Exit status when the command named in ``argv`` lacks an extra (before argparse
    would parse, or print the help of, arguments it cannot know), else None."""
    name = next((a for a in argv if not a.startswith("-")), None)
    if name is None:
        return None
    for command, module in _command_modules():
        if command == name:
            missing = _missing(module)
            if missing:
                print(missing_extra_message(PROG, name, missing), file=sys.stderr)
                return MISSING_EXTRA_EXIT
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nova-streaming`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    refused = _check_extras(args_list)
    if refused is not None:
        return refused
    parser = build_parser()
    args = parser.parse_args(args_list)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
