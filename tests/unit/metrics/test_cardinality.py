"""The cardinality guard: at most max_tracked_streams streams hold per-stream series."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d

REGION = "eu-west-1"
IDS = [f"00000000-0000-4000-8000-{n:012x}" for n in range(6)]


def dropped(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(d.DROPPED_SERIES.name)


def test_cap_and_tracked_gauges(
    make_metrics: Callable[..., StreamingMetrics], registry: CollectorRegistry
) -> None:
    """The cap and the tracked count are exported as self-metrics."""
    metrics = make_metrics(max_tracked_streams=3)
    assert registry.get_sample_value(d.MAX_TRACKED_STREAMS.name) == 3.0
    assert registry.get_sample_value(d.TRACKED_STREAMS.name) == 0.0
    assert dropped(registry) == 0.0
    metrics.record_stream_started(IDS[0], REGION)
    assert registry.get_sample_value(d.TRACKED_STREAMS.name) == 1.0


def test_streams_beyond_cap_get_no_series_but_still_count(
    make_metrics: Callable[..., StreamingMetrics],
    registry: CollectorRegistry,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """Over the cap: no per-stream series, a counted drop; active_streams and histograms work."""
    metrics = make_metrics(max_tracked_streams=2)
    for sid in IDS[:2]:
        metrics.record_stream_started(sid, REGION)
    metrics.record_websocket_connection(IDS[2])  # viewers-only streams count toward the cap too
    metrics.record_stream_started(IDS[3], REGION)
    assert dropped(registry) == 2.0
    assert metrics.tracked_streams == 2
    for sid in IDS[2:4]:
        assert stream_series(registry, sid) == []
        assert not metrics.is_tracked(sid)
    assert metrics.is_active(IDS[3])
    assert registry.get_sample_value(d.ACTIVE_STREAMS.name, {"region": REGION}) == 3.0
    metrics.record_viewer_count_change(IDS[3], 10, REGION)
    metrics.record_quality_bitrate(IDS[3], "720p", 1000.0)
    metrics.record_websocket_connection(IDS[3])
    assert stream_series(registry, IDS[3]) == []
    assert dropped(registry) == 2.0  # counted once per refused stream, not per call
    metrics.record_stream_ended(IDS[3], REGION, 120.0, 10)
    assert registry.get_sample_value(d.ACTIVE_STREAMS.name, {"region": REGION}) == 2.0
    duration = d.STREAM_DURATION_SECONDS.name + "_count"
    assert registry.get_sample_value(duration, {"stream_type": "live"}) == 1.0
    assert registry.get_sample_value(d.VIEWERS_TOTAL.name + "_sum", {"region": REGION}) == 10.0


def test_lingering_streams_hold_their_slot_until_removed(
    make_metrics: Callable[..., StreamingMetrics],
    registry: CollectorRegistry,
    clock: Any,
) -> None:
    """An ended stream keeps its slot during the linger; afterwards a new stream gets series."""
    metrics = make_metrics(max_tracked_streams=1)
    metrics.record_stream_started(IDS[0], REGION)
    metrics.record_stream_ended(IDS[0], REGION, 1.0, 0)
    metrics.record_stream_started(IDS[1], REGION)
    assert not metrics.is_tracked(IDS[1])
    assert dropped(registry) == 1.0
    clock.advance(60.0)
    metrics.record_stream_started(IDS[2], REGION)
    assert metrics.is_tracked(IDS[2])
    assert metrics.tracked_streams == 1


def test_refused_stream_restarted_with_room_gets_series(
    make_metrics: Callable[..., StreamingMetrics],
    registry: CollectorRegistry,
    clock: Any,
) -> None:
    """A stream refused at its start is tracked when it starts again and a slot is free."""
    metrics = make_metrics(max_tracked_streams=1)
    metrics.record_stream_started(IDS[0], REGION)
    metrics.record_stream_started(IDS[1], REGION)
    metrics.record_stream_ended(IDS[1], REGION, 1.0, 0)
    metrics.record_stream_ended(IDS[0], REGION, 1.0, 0)
    clock.advance(60.0)
    metrics.record_stream_started(IDS[1], REGION)
    assert metrics.is_tracked(IDS[1])
    assert registry.get_sample_value(d.PEAK_VIEWERS.name, {"stream_id": IDS[1]}) == 0.0


def test_zero_cap_tracks_nothing(
    make_metrics: Callable[..., StreamingMetrics],
    registry: CollectorRegistry,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """max_tracked_streams=0 disables per-stream series while the aggregate metrics keep working."""
    metrics = make_metrics(max_tracked_streams=0)
    metrics.record_stream_started(IDS[0], REGION)
    assert stream_series(registry, IDS[0]) == []
    assert registry.get_sample_value(d.ACTIVE_STREAMS.name, {"region": REGION}) == 1.0
    assert dropped(registry) == 1.0
