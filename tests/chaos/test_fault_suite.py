"""The short version of every fault-suite scenario (``python -m chaos --short``): real
replicas, Redis (single and Cluster), nginx-rtmp, ffmpeg and WebSocket clients on
loopback. Each asserts its scenario's invariants (exact counts, streams ended exactly
once with their real duration and final viewers, no alert from hostile traffic); the
figures (times, sizes) are only reported, never asserted: ``make chaos`` holds them to
their bounds on an idle machine and writes docs/reliability.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from chaos._harness import discover, load, run_one
from chaos._report import Context

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(discover()))
def test_scenario_invariants_hold(name: str, tmp_path: Path) -> None:
    """The scenario runs to its end and every invariant (not figure) passes."""
    ((_, module),) = load([name])
    result = run_one(name, module, Context(short=True, run_root=str(tmp_path)))
    assert result.error is None, result.error
    failed = [
        f"{c.invariant}: {c.measured} (want {c.bound})"
        for c in result.failures(invariants_only=True)
    ]
    assert not failed, "\n".join(failed)
    assert result.checks, "a scenario that measures nothing proves nothing"
