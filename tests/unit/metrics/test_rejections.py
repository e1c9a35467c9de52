"""Bad inputs: rejected and counted, never raised, never a series; bad configuration raises."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d

SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
REGION = "eu-west-1"
REJECTED = d.REJECTED_INPUTS.name

BAD_IDS: list[object] = [
    "not-a-uuid",
    "",
    "1b4e28ba2fa14d3ba3f5ef19b5a7633b",
    "{1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b}",
    "urn:uuid:1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b",
    SID + "\n",
    None,
    42,
    ["x"],
]
BAD_LABELS: list[object] = ["US-West", "", "-x", "a b", "x" * 64, "é", "x\n", None, 3, ["x"]]
BAD_NUMBERS: list[tuple[object, str]] = [
    (math.nan, d.REJECT_NOT_FINITE),
    (math.inf, d.REJECT_NOT_FINITE),
    (-math.inf, d.REJECT_NOT_FINITE),
    (10**400, d.REJECT_NOT_FINITE),
    (-0.001, d.REJECT_NEGATIVE),
    (-1, d.REJECT_NEGATIVE),
    ("5", d.REJECT_INVALID_TYPE),
    (None, d.REJECT_INVALID_TYPE),
    (True, d.REJECT_INVALID_TYPE),
    ([1.0], d.REJECT_INVALID_TYPE),
]

# Each case: the call with one bad argument and the reason it must be counted under.
Call = Callable[[StreamingMetrics], None]


def _cases() -> list[tuple[str, Call, str]]:
    cases: list[tuple[str, Call, str]] = []
    for bad in BAD_IDS:
        reason = d.REJECT_INVALID_STREAM_ID
        cases += [
            (f"start id {bad!r}", lambda m, b=bad: m.record_stream_started(b, REGION), reason),
            (f"end id {bad!r}", lambda m, b=bad: m.record_stream_ended(b, REGION, 1.0, 1), reason),
            (f"connect {bad!r}", lambda m, b=bad: m.record_websocket_connection(b), reason),
            (f"disconnect {bad!r}", lambda m, b=bad: m.record_websocket_disconnection(b), reason),
            (
                f"viewers id {bad!r}",
                lambda m, b=bad: m.record_viewer_count_change(b, 1, REGION),
                reason,
            ),
            (
                f"bitrate id {bad!r}",
                lambda m, b=bad: m.record_quality_bitrate(b, "720p", 1.0),
                reason,
            ),
            (f"forget {bad!r}", lambda m, b=bad: m.forget_stream(b), reason),
        ]
    for bad in BAD_LABELS:
        reason = d.REJECT_INVALID_LABEL
        cases += [
            (f"start region {bad!r}", lambda m, b=bad: m.record_stream_started(SID, b), reason),
            (
                f"start type {bad!r}",
                lambda m, b=bad: m.record_stream_started(SID, REGION, b),
                reason,
            ),
            (f"end region {bad!r}", lambda m, b=bad: m.record_stream_ended(SID, b, 1.0, 1), reason),
            (
                f"viewers region {bad!r}",
                lambda m, b=bad: m.record_viewer_count_change(SID, 1, b),
                reason,
            ),
            (
                f"bitrate quality {bad!r}",
                lambda m, b=bad: m.record_quality_bitrate(SID, b, 1.0),
                reason,
            ),
            (f"error {bad!r}", lambda m, b=bad: m.record_broadcast_error(b), reason),
            (
                f"latency quality {bad!r}",
                lambda m, b=bad: m.record_rtmp_frame_latency(b, 0.1),
                reason,
            ),
        ]
        if bad is not None:  # None is the documented default of stream_type at the end
            cases.append(
                (
                    f"end type {bad!r}",
                    lambda m, b=bad: m.record_stream_ended(SID, REGION, 1.0, 1, b),
                    reason,
                )
            )
    for bad, reason in BAD_NUMBERS:
        cases += [
            (
                f"end duration {bad!r}",
                lambda m, b=bad: m.record_stream_ended(SID, REGION, b, 1),
                reason,
            ),
            (
                f"end viewers {bad!r}",
                lambda m, b=bad: m.record_stream_ended(SID, REGION, 1.0, b),
                reason,
            ),
            (
                f"viewer count {bad!r}",
                lambda m, b=bad: m.record_viewer_count_change(SID, b, REGION),
                reason,
            ),
            (f"bitrate {bad!r}", lambda m, b=bad: m.record_quality_bitrate(SID, "720p", b), reason),
            (f"latency {bad!r}", lambda m, b=bad: m.record_rtmp_frame_latency("720p", b), reason),
        ]
    return cases


CASES = _cases()


@pytest.mark.parametrize(("call", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_counted_and_changes_nothing_else(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    snapshot: Callable[[CollectorRegistry], dict[Any, float]],
    call: Call,
    reason: str,
) -> None:
    """A call with one bad argument does not raise, changes no series and counts one rejection."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_connection(SID)
    before = snapshot(registry)
    call(metrics)
    after = snapshot(registry)
    key = (REJECTED, frozenset({("reason", reason)}))
    assert after[key] == before[key] + 1.0
    del after[key], before[key]
    assert after == before


def test_rejection_reasons_exported_at_zero(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Every rejection reason is exported at 0 from the start."""
    for reason in d.REJECT_REASONS:
        assert registry.get_sample_value(REJECTED, {"reason": reason}) == 0.0


def test_rejections_logged_once_per_reason(
    metrics: StreamingMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """The first rejection per reason is logged on streaming_metrics; later ones only counted."""
    with caplog.at_level(logging.WARNING, logger="streaming_metrics"):
        for _ in range(3):
            metrics.record_websocket_connection("nope")
            metrics.record_rtmp_frame_latency("720p", -1.0)
    records = [r for r in caplog.records if r.name == "streaming_metrics"]
    assert len(records) == 2
    assert d.REJECT_INVALID_STREAM_ID in records[0].getMessage()
    assert d.REJECT_NEGATIVE in records[1].getMessage()


def test_rejection_log_truncates_long_values(
    metrics: StreamingMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """A huge bad value is quoted only in part in the log line."""
    with caplog.at_level(logging.WARNING, logger="streaming_metrics"):
        metrics.record_broadcast_error("X" * 10_000)
    (record,) = caplog.records
    assert len(record.getMessage()) < 400


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_tracked_streams": -1}, "max_tracked_streams"),
        ({"max_tracked_streams": 1.5}, "max_tracked_streams"),
        ({"max_tracked_streams": True}, "max_tracked_streams"),
        ({"series_linger_seconds": -1.0}, "series_linger_seconds"),
        ({"series_linger_seconds": math.nan}, "series_linger_seconds"),
        ({"series_linger_seconds": math.inf}, "series_linger_seconds"),
        ({"series_linger_seconds": "60"}, "series_linger_seconds"),
        ({"error_types": "frame_drop"}, "error_types"),
        ({"error_types": ["Frame Drop"]}, "error_types"),
        ({"error_types": 5}, "error_types"),
        ({"qualities": ["720p", ""]}, "qualities"),
        ({"regions": ["EU"]}, "regions"),
        ({"clock": 5.0}, "clock"),
    ],
)
def test_bad_configuration_raises_naming_the_argument(
    kwargs: dict[str, Any], argument: str
) -> None:
    """Constructor misuse raises ValueError whose message names the argument."""
    with pytest.raises(ValueError, match=argument):
        StreamingMetrics(CollectorRegistry(), **kwargs)


def test_bad_registry_raises() -> None:
    """A registry that is not a CollectorRegistry is refused by name."""
    with pytest.raises(ValueError, match="registry"):
        StreamingMetrics("registry")  # type: ignore[arg-type]


def test_failed_constructor_leaves_registry_empty() -> None:
    """A constructor that raises registers nothing."""
    registry = CollectorRegistry()
    with pytest.raises(ValueError):
        StreamingMetrics(registry, max_tracked_streams=-1)
    assert list(registry.collect()) == []


def test_declare_bad_region_raises(metrics: StreamingMetrics) -> None:
    """declare_region is configuration: a bad region raises ValueError."""
    with pytest.raises(ValueError, match="region"):
        metrics.declare_region("Europe West")


def test_second_instance_on_same_registry_refused(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """One StreamingMetrics per registry: a second raises ValueError and the first keeps working."""
    with pytest.raises(ValueError, match="one StreamingMetrics per registry"):
        StreamingMetrics(registry)
    metrics.record_broadcast_error("timeout")
    assert registry.get_sample_value(d.BROADCAST_ERRORS.name, {"error_type": "timeout"}) == 1.0
    assert registry.get_sample_value(d.TRACKED_STREAMS.name) == 0.0
