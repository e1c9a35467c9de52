"""The guide's helper functions over the default instance in prometheus_client's REGISTRY."""

from __future__ import annotations

import inspect
import threading

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

import streaming_metrics
from streaming_metrics import StreamingMetrics, helpers
from streaming_metrics import definitions as d

pytestmark = pytest.mark.usefixtures("clean_default_registry")

SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
REGION = "us-west-2"


def test_helpers_record_into_default_registry() -> None:
    """Every guide helper works on the default instance and the values land in REGISTRY."""
    helpers.record_stream_started(SID, REGION)
    helpers.record_websocket_connection(SID)
    helpers.record_websocket_connection(SID)
    helpers.record_websocket_disconnection(SID)
    helpers.record_viewer_count_change(SID, 1500, REGION)
    helpers.record_quality_bitrate(SID, "1080p", 5000.0)
    helpers.record_broadcast_error("frame_drop")
    helpers.record_rtmp_connection_failure()
    helpers.record_rtmp_frame_latency("1080p", 0.045)
    get = REGISTRY.get_sample_value
    assert get(d.ACTIVE_STREAMS.name, {"region": REGION}) == 1.0
    assert get(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": SID}) == 1.0
    assert get(d.PEAK_VIEWERS.name, {"stream_id": SID}) == 1500.0
    assert get(d.QUALITY_BITRATE_KBPS.name, {"stream_id": SID, "quality": "1080p"}) == 5000.0
    assert get(d.BROADCAST_ERRORS.name, {"error_type": "frame_drop"}) == 1.0
    assert get(d.BROADCAST_ERRORS.name, {"error_type": "rtmp_connection_failed"}) == 1.0
    assert get(d.RTMP_INGESTION_LATENCY_SECONDS.name + "_count", {"quality": "1080p"}) == 1.0
    helpers.record_stream_ended(SID, REGION, 3600.0, 500)
    assert get(d.ACTIVE_STREAMS.name, {"region": REGION}) == 0.0
    assert get(d.VIEWERS_TOTAL.name + "_sum", {"region": REGION}) == 500.0
    helpers.forget_stream(SID)
    assert helpers.default_metrics().registry is REGISTRY


def test_default_instance_created_lazily_once_across_threads() -> None:
    """Concurrent first use creates exactly one default instance."""
    barrier = threading.Barrier(16)
    seen: list[StreamingMetrics] = []

    def first_use() -> None:
        barrier.wait()
        seen.append(helpers.default_metrics())

    threads = [threading.Thread(target=first_use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 16
    assert all(instance is seen[0] for instance in seen)


def test_set_default_metrics_redirects_helpers() -> None:
    """set_default_metrics installs a configured instance and unregisters the previous default."""
    helpers.record_broadcast_error("timeout")  # creates the lazy default in REGISTRY
    assert REGISTRY.get_sample_value(d.BROADCAST_ERRORS.name, {"error_type": "timeout"}) == 1.0
    own = CollectorRegistry()
    helpers.set_default_metrics(StreamingMetrics(own, max_tracked_streams=7))
    assert REGISTRY.get_sample_value(d.BROADCAST_ERRORS.name, {"error_type": "timeout"}) is None
    helpers.record_broadcast_error("timeout")
    assert own.get_sample_value(d.BROADCAST_ERRORS.name, {"error_type": "timeout"}) == 1.0
    assert own.get_sample_value(d.MAX_TRACKED_STREAMS.name) == 7.0
    with pytest.raises(ValueError, match="StreamingMetrics"):
        helpers.set_default_metrics(own)  # type: ignore[arg-type]


def test_reset_default_metrics_starts_fresh() -> None:
    """reset_default_metrics unregisters the default; the next call builds a new one at zero."""
    helpers.record_broadcast_error("timeout")
    first = helpers.default_metrics()
    helpers.reset_default_metrics()
    assert REGISTRY.get_sample_value(d.BROADCAST_ERRORS.name, {"error_type": "timeout"}) is None
    helpers.record_rtmp_frame_latency("720p", 0.01)
    assert helpers.default_metrics() is not first
    assert REGISTRY.get_sample_value(d.BROADCAST_ERRORS.name, {"error_type": "timeout"}) == 0.0


def test_helper_signatures_match_the_guide() -> None:
    """The helper functions keep the guide's names, parameters and defaults."""
    expected = {
        "record_stream_started": "(stream_id, region, stream_type='live')",
        "record_stream_ended": (
            "(stream_id, region, duration_seconds, final_viewer_count, stream_type=None)"
        ),
        "record_websocket_connection": "(stream_id)",
        "record_websocket_disconnection": "(stream_id)",
        "record_viewer_count_change": "(stream_id, viewer_count, region)",
        "record_quality_bitrate": "(stream_id, quality, kbps)",
        "record_broadcast_error": "(error_type, count=1)",  # the guide's call still works
        "record_rtmp_connection_failure": "()",
        # Design section 10: the optional stream_id (exemplars, per-stream lag).
        "record_rtmp_frame_latency": "(quality, seconds, stream_id=None)",
        "forget_stream": "(stream_id)",
    }
    for name, params in expected.items():
        function = getattr(helpers, name)
        shown = str(inspect.signature(function).replace(return_annotation=inspect.Signature.empty))
        # Drop annotations: compare names, order and defaults only.
        plain = inspect.Signature(
            [
                p.replace(annotation=inspect.Parameter.empty)
                for p in inspect.signature(function).parameters.values()
            ]
        )
        assert str(plain) == params, (name, shown)
        method = getattr(StreamingMetrics, name)
        method_params = list(inspect.signature(method).parameters)[1:]
        assert method_params == list(inspect.signature(function).parameters), name
    assert helpers.StreamTimer is streaming_metrics.StreamTimer


def test_package_all_is_the_public_api() -> None:
    """streaming_metrics.__all__ lists the public API and every name in it exists."""
    assert sorted(streaming_metrics.__all__) == [
        "MetricsServer",
        "StreamTimer",
        "StreamingMetrics",
        "default_metrics",
        "metrics_app",
        "start_metrics_server",
    ]
    for name in streaming_metrics.__all__:
        assert getattr(streaming_metrics, name) is not None
