"""Fixtures for the monitoring-as-code tests: repository paths, rendered files, tools.

promtool and amtool run on rendered files (house style: the real tools on the real
output, never on the Python objects).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from nova_monitoring.options import RenderOptions
from nova_monitoring.render import render

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def committed(repo: Path) -> Path:
    """The committed generated files, ``k8s/monitoring``."""
    return repo / "k8s" / "monitoring"


@pytest.fixture(scope="session")
def rules_tests() -> Path:
    """The directory holding the promtool unit-test data files."""
    return Path(__file__).resolve().parent


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: run scripts/setup (Debian packages)")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary."""
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    """The amtool binary."""
    return _tool("amtool")


@pytest.fixture(scope="session")
def run() -> Runner:
    """Run a command bounded in time and capture its output (never raises on failure)."""

    def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return _run


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every file rendered with the default options into a scratch directory."""
    out = tmp_path_factory.mktemp("rendered")
    render(out, RenderOptions())
    return out
