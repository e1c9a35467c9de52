"""WebSocket connection gauges and peak viewers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d

SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
REGION = "eu-west-1"
CONN = d.WEBSOCKET_CONNECTIONS.name
PEAK = d.PEAK_VIEWERS.name


def conns(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(CONN, {"stream_id": SID})


def peak(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(PEAK, {"stream_id": SID})


def test_connect_and_disconnect_move_the_gauge(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Each connection adds one, each disconnection removes one."""
    metrics.record_stream_started(SID, REGION)
    for _ in range(3):
        metrics.record_websocket_connection(SID)
    metrics.record_websocket_disconnection(SID)
    assert conns(registry) == 2.0


def test_disconnect_at_zero_stays_zero(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """A disconnection at 0 keeps the gauge at 0, and the next connect counts 1."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_disconnection(SID)
    metrics.record_websocket_disconnection(SID)
    assert conns(registry) == 0.0
    metrics.record_websocket_connection(SID)
    assert conns(registry) == 1.0


def test_disconnect_of_unknown_stream_creates_nothing(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    snapshot: Callable[[CollectorRegistry], dict[Any, float]],
) -> None:
    """A disconnection for a stream never seen creates no series."""
    before = snapshot(registry)
    metrics.record_websocket_disconnection(SID)
    assert snapshot(registry) == before


def test_connection_on_unstarted_stream_creates_only_its_connection_series(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """A non-owner replica exports the stream's connections only, and tracks it."""
    metrics.record_websocket_connection(SID)
    assert stream_series(registry, SID) == [CONN]
    assert conns(registry) == 1.0
    assert metrics.tracked_streams == 1
    assert registry.get_sample_value(d.ACTIVE_STREAMS.name, {"region": REGION}) == 0.0
    assert not metrics.is_active(SID)


def test_connection_only_stream_at_zero_lingers_out(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    clock: Any,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """A viewers-only stream with no viewer left goes after the linger (no leak without forget)."""
    metrics.record_websocket_connection(SID)
    metrics.record_websocket_disconnection(SID)
    clock.advance(59.0)
    assert conns(registry) == 0.0
    metrics.record_websocket_connection(SID)  # back within the linger: kept
    metrics.record_websocket_disconnection(SID)
    clock.advance(59.0)
    assert conns(registry) == 0.0
    clock.advance(1.0)
    assert stream_series(registry, SID) == []
    assert metrics.tracked_streams == 0


def test_started_stream_at_zero_connections_stays(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """An active owned stream keeps its connections series at 0 however long nobody watches."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_connection(SID)
    metrics.record_websocket_disconnection(SID)
    clock.advance(3600.0)
    assert conns(registry) == 0.0


def test_connection_revives_lingering_connection_series(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    clock: Any,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """A connection to a lingering stream keeps its connection series; peak and bitrate still go."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_viewer_count_change(SID, 3, REGION)
    metrics.record_quality_bitrate(SID, "720p", 2500.0)
    metrics.record_stream_ended(SID, REGION, 10.0, 3)
    clock.advance(10.0)
    metrics.record_websocket_connection(SID)
    clock.advance(50.0)
    assert stream_series(registry, SID) == [CONN]
    assert conns(registry) == 1.0
    clock.advance(600.0)
    assert conns(registry) == 1.0
    metrics.record_websocket_disconnection(SID)
    clock.advance(60.0)
    assert stream_series(registry, SID) == []


def test_disconnections_during_linger_count_down(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Viewers closed after the end still decrement the lingering gauge to its true final value."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_connection(SID)
    metrics.record_websocket_connection(SID)
    metrics.record_stream_ended(SID, REGION, 10.0, 2)
    metrics.record_websocket_disconnection(SID)
    metrics.record_websocket_disconnection(SID)
    metrics.record_websocket_disconnection(SID)
    assert conns(registry) == 0.0


def test_peak_only_rises(metrics: StreamingMetrics, registry: CollectorRegistry) -> None:
    """peak_viewers is the highest count seen: lower counts never lower it."""
    metrics.record_stream_started(SID, REGION)
    for count in (5, 12, 3, 12, 0, 11):
        metrics.record_viewer_count_change(SID, count, REGION)
    assert peak(registry) == 12.0


def test_peak_frozen_after_end(metrics: StreamingMetrics, registry: CollectorRegistry) -> None:
    """After the end the lingering peak is the stream's final peak; later counts are ignored."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_viewer_count_change(SID, 5, REGION)
    metrics.record_stream_ended(SID, REGION, 10.0, 5)
    metrics.record_viewer_count_change(SID, 500, REGION)
    assert peak(registry) == 5.0


def test_viewer_count_for_unknown_or_viewers_only_stream_creates_nothing(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """record_viewer_count_change creates no series for a stream not started here."""
    metrics.record_viewer_count_change(SID, 10, REGION)
    assert stream_series(registry, SID) == []
    metrics.record_websocket_connection(SID)
    metrics.record_viewer_count_change(SID, 10, REGION)
    assert peak(registry) is None
