"""Bitrate, broadcast errors and frame latency: bounded label sets and pre-exported zeros."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d

SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
REGION = "eu-west-1"
ERRORS = d.BROADCAST_ERRORS.name
LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS.name
BITRATE = d.QUALITY_BITRATE_KBPS.name


def test_known_error_types_exported_at_zero(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Every default error type and other exist at 0 before any error."""
    for error_type in (*d.DEFAULT_ERROR_TYPES, d.OTHER):
        assert registry.get_sample_value(ERRORS, {"error_type": error_type}) == 0.0


def test_known_qualities_exported_at_zero(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Every default quality and other have a latency histogram at 0 before any frame."""
    for quality in (*d.DEFAULT_QUALITIES, d.OTHER):
        assert registry.get_sample_value(LATENCY + "_count", {"quality": quality}) == 0.0
        assert (
            registry.get_sample_value(LATENCY + "_bucket", {"quality": quality, "le": "+Inf"})
            == 0.0
        )


def test_configured_sets_replace_defaults(
    make_metrics: Callable[..., StreamingMetrics], registry: CollectorRegistry
) -> None:
    """Configured error types and qualities replace the defaults; others count as other."""
    metrics = make_metrics(error_types=["frame_drop"], qualities=["720p"])
    assert registry.get_sample_value(ERRORS, {"error_type": "timeout"}) is None
    assert registry.get_sample_value(LATENCY + "_count", {"quality": "1080p"}) is None
    metrics.record_broadcast_error("timeout")
    metrics.record_rtmp_connection_failure()
    metrics.record_rtmp_frame_latency("1080p", 0.01)
    assert registry.get_sample_value(ERRORS, {"error_type": d.OTHER}) == 2.0
    assert registry.get_sample_value(LATENCY + "_count", {"quality": d.OTHER}) == 1.0
    assert metrics.error_types == frozenset({"frame_drop"})
    assert metrics.qualities == frozenset({"720p"})


def test_broadcast_errors_count(metrics: StreamingMetrics, registry: CollectorRegistry) -> None:
    """Known types count under their name, unknown well-formed types under other."""
    metrics.record_broadcast_error("frame_drop")
    metrics.record_broadcast_error("frame_drop")
    metrics.record_broadcast_error("disk_full")
    assert registry.get_sample_value(ERRORS, {"error_type": "frame_drop"}) == 2.0
    assert registry.get_sample_value(ERRORS, {"error_type": d.OTHER}) == 1.0
    assert registry.get_sample_value(ERRORS, {"error_type": "disk_full"}) is None


def test_rtmp_connection_failure_counts_its_type(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """record_rtmp_connection_failure() is error_type rtmp_connection_failed."""
    metrics.record_rtmp_connection_failure()
    assert registry.get_sample_value(ERRORS, {"error_type": "rtmp_connection_failed"}) == 1.0


def test_latency_buckets(metrics: StreamingMetrics, registry: CollectorRegistry) -> None:
    """Latency lands in the guide's buckets; ints are accepted; unknown qualities are other."""
    metrics.record_rtmp_frame_latency("1080p", 0.045)
    metrics.record_rtmp_frame_latency("1080p", 2)
    metrics.record_rtmp_frame_latency("8k", 0.0)
    labels = {"quality": "1080p"}
    assert registry.get_sample_value(LATENCY + "_bucket", {**labels, "le": "0.025"}) == 0.0
    assert registry.get_sample_value(LATENCY + "_bucket", {**labels, "le": "0.05"}) == 1.0
    assert registry.get_sample_value(LATENCY + "_bucket", {**labels, "le": "1.0"}) == 1.0
    assert registry.get_sample_value(LATENCY + "_bucket", {**labels, "le": "+Inf"}) == 2.0
    assert registry.get_sample_value(LATENCY + "_sum", labels) == pytest.approx(2.045)
    assert registry.get_sample_value(LATENCY + "_count", {"quality": d.OTHER}) == 1.0


def test_bitrate_per_quality(metrics: StreamingMetrics, registry: CollectorRegistry) -> None:
    """Bitrate is per stream and quality; the latest value wins; unknown qualities are other."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_quality_bitrate(SID, "720p", 3000)
    metrics.record_quality_bitrate(SID, "720p", 2800.5)
    metrics.record_quality_bitrate(SID, "8k", 90000.0)
    assert registry.get_sample_value(BITRATE, {"stream_id": SID, "quality": "720p"}) == 2800.5
    assert registry.get_sample_value(BITRATE, {"stream_id": SID, "quality": d.OTHER}) == 90000.0


def test_bitrate_for_stream_not_started_here_creates_nothing(
    metrics: StreamingMetrics,
    registry: CollectorRegistry,
    stream_series: Callable[[CollectorRegistry, str], list[str]],
) -> None:
    """Only an active stream started here gets bitrate series (not viewers-only or ended)."""
    metrics.record_quality_bitrate(SID, "720p", 3000.0)
    assert stream_series(registry, SID) == []
    metrics.record_websocket_connection(SID)
    metrics.record_quality_bitrate(SID, "720p", 3000.0)
    assert registry.get_sample_value(BITRATE, {"stream_id": SID, "quality": "720p"}) is None
    metrics.record_stream_started(SID, REGION)
    metrics.record_stream_ended(SID, REGION, 1.0, 0)
    metrics.record_quality_bitrate(SID, "720p", 3000.0)
    assert registry.get_sample_value(BITRATE, {"stream_id": SID, "quality": "720p"}) is None
