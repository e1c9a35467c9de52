"""Which optional dependency groups (extras) are installed, and the message for a missing one.

``pip install nova-streaming`` is the library alone; the ``service`` and ``monitoring``
extras add what the commands need. A command checks its extras before importing
anything from them, so a missing extra is a one-line message naming what to install,
never a ``ModuleNotFoundError`` traceback.

Example::

    >>> missing_extras(())
    ()
    >>> missing_extra_message("nova-streaming", "stack", ("monitoring",))
    "nova-streaming: stack needs the 'monitoring' extra: pip install 'nova-streaming[monitoring]'"
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "EXTRA_MODULES",
    "MISSING_EXTRA_EXIT",
    "missing_extra_message",
    "missing_extras",
    "nova_monitoring_main",
]

DISTRIBUTION: Final = "nova-streaming"

EXTRA_MODULES: Final[dict[str, tuple[str, ...]]] = {
    # Top-level modules of the extra's requirements (pyproject.toml), by import name.
    "service": ("starlette", "uvicorn", "websockets", "redis", "httpx"),
    "monitoring": ("yaml", "grafana_foundation_sdk"),
}

MISSING_EXTRA_EXIT: Final = 3
"""Exit status of a command whose extra is not installed (2 is a bad setting)."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extras(extras: Iterable[str]) -> tuple[str, ...]:
    """The extras among ``extras`` with at least one module not importable, in order."""
    return tuple(extra for extra in extras if not all(_installed(m) for m in EXTRA_MODULES[extra]))


def missing_extra_message(prog: str, command: str | None, missing: Sequence[str]) -> str:
    """``<prog>: <command> needs the 'x' extra: pip install 'nova-streaming[x]'``."""
    names = " and ".join(f"'{extra}'" for extra in missing)
    noun = "extra" if len(missing) == 1 else "extras"
    who = f"{prog}: {command}" if command else prog
    return f"{who} needs the {names} {noun}: pip install '{DISTRIBUTION}[{','.join(missing)}]'"


def nova_monitoring_main(argv: Sequence[str] | None = None) -> int:
    """The ``nova-monitoring`` console script: :func:`nova_monitoring.cli.main` when the
    ``monitoring`` extra is installed (importing ``nova_monitoring`` needs it), else
    the missing-extra message and exit 3."""
    missing = missing_extras(("monitoring",))
    if missing:
        print(missing_extra_message("nova-monitoring", None, missing), file=sys.stderr)
        return MISSING_EXTRA_EXIT
    from nova_monitoring.cli import main

    return main(argv)
