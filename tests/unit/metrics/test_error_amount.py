"""record_broadcast_error(error_type, count): one call moves the counter by count."""

from __future__ import annotations

import inspect
from fractions import Fraction

import pytest
from prometheus_client import CollectorRegistry

from streaming_metrics import StreamingMetrics, helpers
from streaming_metrics import definitions as d

ERRORS = d.BROADCAST_ERRORS.name
REJECTED = d.REJECTED_INPUTS.name


def _errors(registry: CollectorRegistry, error_type: str) -> float | None:
    return registry.get_sample_value(ERRORS, {"error_type": error_type})


def _rejected(registry: CollectorRegistry, reason: str) -> float | None:
    return registry.get_sample_value(REJECTED, {"reason": reason})


def test_count_moves_the_counter_in_one_call(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """count=n adds n; the one-argument call still adds 1; unknown types count as other."""
    metrics.record_broadcast_error("frame_drop", 250_000)
    metrics.record_broadcast_error("frame_drop")
    metrics.record_broadcast_error("frame_drop", count=4)
    metrics.record_broadcast_error("disk_full", 3)
    assert _errors(registry, "frame_drop") == 250_005.0
    assert _errors(registry, d.OTHER) == 3.0


def test_count_is_one_counter_increment(
    metrics: StreamingMetrics, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A huge count is one inc() on the child, not a loop (O(1) work per call)."""
    child = metrics._error_children["frame_drop"]
    calls: list[float] = []
    original = child.inc
    monkeypatch.setattr(child, "inc", lambda amount=1: (calls.append(amount), original(amount)))
    metrics.record_broadcast_error("frame_drop", 10**9)
    assert calls == [10**9]
    assert _errors(registry, "frame_drop") == 1e9


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (0, d.REJECT_NEGATIVE),
        (-3, d.REJECT_NEGATIVE),
        (True, d.REJECT_INVALID_TYPE),
        (2.0, d.REJECT_INVALID_TYPE),
        (float("nan"), d.REJECT_INVALID_TYPE),
        ("5", d.REJECT_INVALID_TYPE),
        (None, d.REJECT_INVALID_TYPE),
        (Fraction(3, 1), d.REJECT_INVALID_TYPE),
        (10**400, d.REJECT_NOT_FINITE),
    ],
)
def test_bad_count_rejected_and_counted(
    metrics: StreamingMetrics, registry: CollectorRegistry, bad: object, reason: str
) -> None:
    """A count that is not an int >= 1 changes no error counter and counts one rejection."""
    metrics.record_broadcast_error("timeout", bad)  # deliberately the wrong type
    for error_type in (*d.DEFAULT_ERROR_TYPES, d.OTHER):
        assert _errors(registry, error_type) == 0.0
    assert _rejected(registry, reason) == 1.0


def test_helper_takes_a_count() -> None:
    """The helper keeps the guide's one-argument form and accepts count=."""
    parameters = inspect.signature(helpers.record_broadcast_error).parameters
    assert list(parameters) == ["error_type", "count"]
    assert parameters["count"].default == 1
    helpers.reset_default_metrics()
    try:
        helpers.record_broadcast_error("timeout", count=7)
        helpers.record_broadcast_error("timeout")
        registry = helpers.default_metrics().registry
        assert _errors(registry, "timeout") == 8.0
    finally:
        helpers.reset_default_metrics()
