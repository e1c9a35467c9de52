"""Stream start, end, linger, restart and forget (design.md section 2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from prometheus_client import CollectorRegistry

from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d

SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
SID2 = "6f1c0a52-8d3e-4b7a-9c21-0e5d4f3a2b10"
REGION = "eu-west-1"


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_start_exports_stream_at_zero(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """A started stream has active_streams +1, stream_info 1 and connections/peak at 0."""
    metrics.record_stream_started(SID, REGION, "pre-recorded")
    assert value(registry, d.ACTIVE_STREAMS.name, region=REGION) == 1.0
    assert (
        value(
            registry, d.STREAM_INFO.name, stream_id=SID, region=REGION, stream_type="pre-recorded"
        )
        == 1.0
    )
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 0.0
    assert value(registry, d.PEAK_VIEWERS.name, stream_id=SID) == 0.0
    assert metrics.is_active(SID) and metrics.is_tracked(SID)
    assert metrics.tracked_streams == 1


def test_declared_region_exported_at_zero(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Regions from the constructor and declare_region() show active_streams 0 before any start."""
    metrics.declare_region("us-east-2")
    assert value(registry, d.ACTIVE_STREAMS.name, region=REGION) == 0.0
    assert value(registry, d.ACTIVE_STREAMS.name, region="us-east-2") == 0.0


def test_end_histograms_exported_at_zero(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Duration per known stream type and final viewers per declared region exist at 0,
    so rate() and the duration:avg rule see the first end."""
    metrics.declare_region("us-east-2")
    for kind in d.STREAM_TYPES:
        assert value(registry, d.STREAM_DURATION_SECONDS.name + "_count", stream_type=kind) == 0.0
    for region in (REGION, "us-east-2"):
        assert value(registry, d.VIEWERS_TOTAL.name + "_count", region=region) == 0.0
    assert value(registry, d.VIEWERS_TOTAL.name + "_count", region="ap-south-1") is None


def test_end_observes_with_start_labels(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """End: active_streams -1; duration/viewers observed under the start's type and region."""
    metrics.record_stream_started(SID, REGION, "pre-recorded")
    metrics.record_stream_ended(SID, "us-east-2", 3600.0, 42, stream_type="live")
    assert value(registry, d.ACTIVE_STREAMS.name, region=REGION) == 0.0
    duration = d.STREAM_DURATION_SECONDS.name
    assert value(registry, duration + "_count", stream_type="pre-recorded") == 1.0
    assert value(registry, duration + "_sum", stream_type="pre-recorded") == 3600.0
    assert value(registry, duration + "_bucket", stream_type="pre-recorded", le="3600.0") == 1.0
    assert value(registry, duration + "_bucket", stream_type="pre-recorded", le="1800.0") == 0.0
    assert value(registry, duration + "_count", stream_type="live") == 0.0
    viewers = d.VIEWERS_TOTAL.name
    assert value(registry, viewers + "_count", region=REGION) == 1.0
    assert value(registry, viewers + "_sum", region=REGION) == 42.0
    assert value(registry, viewers + "_bucket", region=REGION, le="50.0") == 1.0
    assert value(registry, viewers + "_bucket", region=REGION, le="10.0") == 0.0
    assert value(registry, viewers + "_count", region="us-east-2") is None


def test_end_removes_info_at_once_and_the_rest_after_linger(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    clock: Any,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """stream_info goes at the end; connections, peak and all bitrates when the linger ends."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_connection(SID)
    metrics.record_viewer_count_change(SID, 7, REGION)
    metrics.record_quality_bitrate(SID, "720p", 3000.0)
    metrics.record_quality_bitrate(SID, "1080p", 6000.0)
    metrics.record_stream_ended(SID, REGION, 10.0, 7)
    assert (
        value(registry, d.STREAM_INFO.name, stream_id=SID, region=REGION, stream_type="live")
        is None
    )
    assert sorted(stream_series(registry, SID)) == sorted(
        [
            d.WEBSOCKET_CONNECTIONS.name,
            d.PEAK_VIEWERS.name,
            d.QUALITY_BITRATE_KBPS.name,
            d.QUALITY_BITRATE_KBPS.name,
            d.STREAM_FRAME_DROPS.name,
        ]
    )
    # Final values are still there to be scraped during the linger.
    assert value(registry, d.PEAK_VIEWERS.name, stream_id=SID) == 7.0
    assert value(registry, d.QUALITY_BITRATE_KBPS.name, stream_id=SID, quality="1080p") == 6000.0
    clock.advance(59.9)
    assert stream_series(registry, SID) != []
    clock.advance(0.1)
    # The scrape itself expires: no lifecycle call happened in between.
    assert stream_series(registry, SID) == []
    assert metrics.tracked_streams == 0
    assert value(registry, d.TRACKED_STREAMS.name) == 0.0


def test_expire_lingering_returns_removed_count(
    make_metrics: Callable[..., StreamingMetrics], clock: Any
) -> None:
    """expire_lingering() removes due streams and says how many."""
    metrics = make_metrics(series_linger_seconds=5.0)
    metrics.record_stream_started(SID, REGION)
    metrics.record_stream_started(SID2, REGION)
    metrics.record_stream_ended(SID, REGION, 1.0, 0)
    assert metrics.expire_lingering() == 0
    clock.advance(5.0)
    assert metrics.expire_lingering() == 1
    assert not metrics.is_tracked(SID)
    assert metrics.is_tracked(SID2)


def test_zero_linger_removes_at_end(
    make_metrics: Callable[..., StreamingMetrics],
    registry: CollectorRegistry,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """With series_linger_seconds=0 an ended stream's series go at once."""
    metrics = make_metrics(series_linger_seconds=0)
    metrics.record_stream_started(SID, REGION)
    metrics.record_stream_ended(SID, REGION, 1.0, 0)
    assert stream_series(registry, SID) == []
    assert metrics.tracked_streams == 0


def test_end_of_unknown_stream_changes_nothing(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    snapshot: Callable[[CollectorRegistry], dict[Any, float]],
) -> None:
    """Ending a never-started stream observes nothing and creates nothing."""
    metrics.record_stream_started(SID2, REGION)
    before = snapshot(registry)
    metrics.record_stream_ended(SID, REGION, 100.0, 5)
    assert snapshot(registry) == before


def test_second_end_changes_nothing(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    snapshot: Callable[[CollectorRegistry], dict[Any, float]],
) -> None:
    """Ending an already-ended stream (lingering or gone) changes nothing."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_stream_ended(SID, REGION, 100.0, 5)
    before = snapshot(registry)
    metrics.record_stream_ended(SID, REGION, 100.0, 5)
    assert snapshot(registry) == before


def test_end_of_connection_only_stream_changes_nothing(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    snapshot: Callable[[CollectorRegistry], dict[Any, float]],
) -> None:
    """A stream this process never started (viewers only) is not ended by record_stream_ended."""
    metrics.record_websocket_connection(SID)
    before = snapshot(registry)
    metrics.record_stream_ended(SID, REGION, 100.0, 5)
    assert snapshot(registry) == before


def test_duplicate_start_changes_nothing(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    snapshot: Callable[[CollectorRegistry], dict[Any, float]],
) -> None:
    """Starting an active stream again neither double-counts nor resets its peak."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_viewer_count_change(SID, 9, REGION)
    before = snapshot(registry)
    metrics.record_stream_started(SID, "us-east-2", "pre-recorded")
    assert snapshot(registry) == before


def test_restart_of_lingering_stream_revives_cleanly(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    clock: Any,
) -> None:
    """A lingering stream restarted: fresh peak, no old bitrates, live connections kept."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_connection(SID)
    metrics.record_viewer_count_change(SID, 50, REGION)
    metrics.record_quality_bitrate(SID, "720p", 3000.0)
    metrics.record_stream_ended(SID, REGION, 10.0, 50)
    clock.advance(30.0)
    metrics.record_stream_started(SID, REGION, "pre-recorded")
    clock.advance(31.0)  # past the first linger's deadline: it must not remove the revived stream
    assert value(registry, d.ACTIVE_STREAMS.name, region=REGION) == 1.0
    assert (
        value(
            registry, d.STREAM_INFO.name, stream_id=SID, region=REGION, stream_type="pre-recorded"
        )
        == 1.0
    )
    assert value(registry, d.PEAK_VIEWERS.name, stream_id=SID) == 0.0
    assert value(registry, d.QUALITY_BITRATE_KBPS.name, stream_id=SID, quality="720p") is None
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 1.0
    metrics.record_stream_ended(SID, REGION, 20.0, 3)
    duration = d.STREAM_DURATION_SECONDS.name
    assert value(registry, duration + "_count", stream_type="pre-recorded") == 1.0
    assert value(registry, duration + "_count", stream_type="live") == 1.0


def test_restart_after_series_removed_starts_fresh(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """A stream started again after its linger ran out is a brand-new stream at 0."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_connection(SID)
    metrics.record_stream_ended(SID, REGION, 10.0, 1)
    clock.advance(60.0)
    metrics.record_stream_started(SID, REGION)
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 0.0
    assert value(registry, d.ACTIVE_STREAMS.name, region=REGION) == 1.0


def test_active_streams_counts_per_region(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """active_streams counts the active streams of each region and never goes below 0."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_stream_started(SID2, "us-east-2")
    assert value(registry, d.ACTIVE_STREAMS.name, region=REGION) == 1.0
    assert value(registry, d.ACTIVE_STREAMS.name, region="us-east-2") == 1.0
    metrics.record_stream_ended(SID2, "us-east-2", 1.0, 0)
    metrics.record_stream_ended(SID2, "us-east-2", 1.0, 0)
    metrics.forget_stream(SID2)
    assert value(registry, d.ACTIVE_STREAMS.name, region="us-east-2") == 0.0
    assert value(registry, d.ACTIVE_STREAMS.name, region=REGION) == 1.0


def test_unlisted_stream_type_counts_as_other(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """A well-formed stream_type outside definitions.STREAM_TYPES is labelled other."""
    metrics.record_stream_started(SID, REGION, "vod")
    assert (
        value(registry, d.STREAM_INFO.name, stream_id=SID, region=REGION, stream_type=d.OTHER)
        == 1.0
    )
    metrics.record_stream_ended(SID, REGION, 5.0, 0)
    assert value(registry, d.STREAM_DURATION_SECONDS.name + "_count", stream_type=d.OTHER) == 1.0


def test_stream_id_normalised_to_lowercase(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """Upper-case UUID text and uuid.UUID objects name the same, lowercase stream."""
    metrics.record_stream_started(SID.upper(), REGION)
    metrics.record_websocket_connection(UUID(SID))
    metrics.record_websocket_connection(SID.upper())
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 2.0
    assert stream_series(registry, SID.upper()) == []
    metrics.record_stream_ended(UUID(SID), REGION, 1.0, 2)
    assert value(registry, d.ACTIVE_STREAMS.name, region=REGION) == 0.0


def test_forget_connection_only_stream_lingers_after_last_viewer(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    clock: Any,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """forget_stream keeps connected viewers' series; they linger once the last one leaves."""
    metrics.record_websocket_connection(SID)
    metrics.record_websocket_connection(SID)
    metrics.forget_stream(SID)
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 2.0
    metrics.record_websocket_disconnection(SID)
    clock.advance(120.0)
    # One viewer is still connected here: its count must survive any linger.
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 1.0
    metrics.record_websocket_disconnection(SID)
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 0.0
    clock.advance(60.0)
    assert stream_series(registry, SID) == []
    assert metrics.tracked_streams == 0


def test_forget_owned_stream_with_viewers_keeps_their_count(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    clock: Any,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """A hand-over while local viewers watch: peak goes after the linger, connections stay."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_connection(SID)
    metrics.record_viewer_count_change(SID, 3, REGION)
    metrics.forget_stream(SID)
    clock.advance(61.0)
    metrics.expire_lingering()
    assert value(registry, d.PEAK_VIEWERS.name, stream_id=SID) is None
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 1.0
    metrics.record_websocket_connection(SID)
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 2.0
    metrics.record_websocket_disconnection(SID)
    metrics.record_websocket_disconnection(SID)
    clock.advance(60.0)
    assert stream_series(registry, SID) == []


def test_forget_then_last_viewer_leaving_keeps_the_owner_deadline(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    clock: Any,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """After a hand-over, peak and bitrate go one linger after forget_stream even when the
    last local viewer leaves in between (that starts only the connection series' linger)."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_connection(SID)
    metrics.record_viewer_count_change(SID, 3, REGION)
    metrics.record_quality_bitrate(SID, "720p", 2500.0)
    metrics.forget_stream(SID)
    clock.advance(30.0)
    metrics.record_websocket_disconnection(SID)
    clock.advance(31.0)
    metrics.expire_lingering()
    assert value(registry, d.PEAK_VIEWERS.name, stream_id=SID) is None
    assert value(registry, d.QUALITY_BITRATE_KBPS.name, stream_id=SID, quality="720p") is None
    assert value(registry, d.WEBSOCKET_CONNECTIONS.name, stream_id=SID) == 0.0
    clock.advance(30.0)
    assert stream_series(registry, SID) == []


def test_forget_started_stream_hands_over(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    clock: Any,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """forget_stream on an owned stream hands it over: active -1, info gone, no histogram."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_viewer_count_change(SID, 4, REGION)
    metrics.forget_stream(SID)
    assert value(registry, d.ACTIVE_STREAMS.name, region=REGION) == 0.0
    assert (
        value(registry, d.STREAM_INFO.name, stream_id=SID, region=REGION, stream_type="live")
        is None
    )
    assert value(registry, d.STREAM_DURATION_SECONDS.name + "_count", stream_type="live") == 0.0
    assert value(registry, d.PEAK_VIEWERS.name, stream_id=SID) == 4.0
    metrics.record_stream_ended(SID, REGION, 10.0, 4)  # already handed over: nothing
    assert value(registry, d.STREAM_DURATION_SECONDS.name + "_count", stream_type="live") == 0.0
    clock.advance(60.0)
    assert stream_series(registry, SID) == []


def test_forget_unknown_stream_changes_nothing(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    snapshot: Callable[[CollectorRegistry], dict[Any, float]],
) -> None:
    """forget_stream of a stream this process never saw creates and changes nothing."""
    before = snapshot(registry)
    metrics.forget_stream(SID)
    assert snapshot(registry) == before


def test_instances_are_isolated(make_metrics: Callable[..., StreamingMetrics]) -> None:
    """Two instances on two registries share no state."""
    first = make_metrics()
    other_registry = CollectorRegistry()
    second = StreamingMetrics(other_registry)
    first.record_stream_started(SID, REGION)
    assert first.registry.get_sample_value(d.ACTIVE_STREAMS.name, {"region": REGION}) == 1.0
    assert other_registry.get_sample_value(d.ACTIVE_STREAMS.name, {"region": REGION}) is None
    assert not second.is_tracked(SID)


def test_unregister_removes_every_collector(make_metrics: Callable[..., StreamingMetrics]) -> None:
    """unregister() empties the registry and frees it for a new instance."""
    metrics = make_metrics()
    metrics.unregister()
    assert list(metrics.registry.collect()) == []
    metrics.unregister()
    replacement = StreamingMetrics(metrics.registry)
    assert replacement.registry.get_sample_value(d.TRACKED_STREAMS.name) == 0.0
