"""Facts about the machine a run measured: CPU, cores, memory, kernel, Python, packages.

Example::

    >>> facts = dict(machine_facts())
    >>> "Python" in facts and "CPU model" in facts
    True
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Versions that shape the numbers: what is measured and what it is compared with.
PACKAGES = (
    "nova-streaming",
    "prometheus-client",
    "opentelemetry-sdk",
    "uvicorn",
    "h11",
    "httptools",
    "uvloop",
    "websockets",
    "picows",
    "psutil",
)


def _psutil() -> Any:
    """psutil (the bench extra) when installed, else None: facts then come from os."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    return psutil


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cores() -> str:
    logical = os.cpu_count() or 0
    psutil = _psutil()
    physical = psutil.cpu_count(logical=False) if psutil is not None else None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    text = f"{logical} logical"
    if physical:
        text += f", {physical} physical"
    if usable != logical:
        text += f", {usable} usable by this process"
    return text


def _memory() -> str:
    psutil = _psutil()
    if psutil is not None:
        total = int(psutil.virtual_memory().total)
    else:
        try:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return "unknown"
    return f"{total / 2**30:.1f} GiB"


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min, at start)"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    # Read-only: which tree was measured (a dirty tree is said so).
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


def machine_facts() -> list[tuple[str, str]]:
    """(fact, value) pairs for the report, in display order."""
    facts = [
        ("CPU model", _cpu_model()),
        ("Cores", _cores()),
        ("Memory", _memory()),
        ("Kernel", f"{platform.system()} {platform.release()}"),
        ("Load average", _load()),
        (
            "Python",
            f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        ),
        ("GIL switch interval", f"{sys.getswitchinterval() * 1000:g} ms"),
        ("Git commit", _git_commit()),
    ]
    facts += [(f"package {name}", _version(name)) for name in PACKAGES]
    return facts
