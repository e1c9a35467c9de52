"""The guide's helper functions, over one process-wide :class:`StreamingMetrics`.

The default instance is created on first use (thread-safe) and registered in
prometheus_client's default ``REGISTRY``; :func:`set_default_metrics` installs one built
from your settings instead. Semantics are those of the :class:`StreamingMetrics` methods
of the same names.

Example::

    >>> from streaming_metrics import helpers
    >>> sid = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
    >>> helpers.record_stream_started(sid, "us-west-2")
    >>> helpers.record_rtmp_frame_latency("1080p", 0.045)
    >>> helpers.record_stream_ended(sid, "us-west-2", 3600.0, 500)
    >>> helpers.reset_default_metrics()
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final
from uuid import UUID

from streaming_metrics import _default
from streaming_metrics import definitions as d
from streaming_metrics._default import default_metrics, reset_default_metrics, set_default_metrics
from streaming_metrics._histogram import search_keys_of
from streaming_metrics.timer import StreamTimer

# What every instance's latency histogram bisects, and the end of its valid results.
_LATENCY_KEYS: Final = search_keys_of(d.RTMP_INGESTION_LATENCY_SECONDS)
_LATENCY_TOP: Final = len(_LATENCY_KEYS)

__all__ = [
    "StreamTimer",
    "default_metrics",
    "forget_stream",
    "record_broadcast_error",
    "record_frame_drops",
    "record_quality_bitrate",
    "record_rtmp_connection_failure",
    "record_rtmp_frame_latency",
    "record_stream_ended",
    "record_stream_started",
    "record_viewer_count_change",
    "record_websocket_connection",
    "record_websocket_disconnection",
    "reset_default_metrics",
    "set_default_metrics",
]


def record_stream_started(
    stream_id: str | UUID, region: str, stream_type: str = d.DEFAULT_STREAM_TYPE
) -> None:
    """See :meth:`StreamingMetrics.record_stream_started`."""
    default_metrics().record_stream_started(stream_id, region, stream_type)


def record_stream_ended(
    stream_id: str | UUID,
    region: str,
    duration_seconds: float,
    final_viewer_count: int,
    stream_type: str | None = None,
) -> None:
    """See :meth:`StreamingMetrics.record_stream_ended`."""
    default_metrics().record_stream_ended(
        stream_id, region, duration_seconds, final_viewer_count, stream_type
    )


def forget_stream(stream_id: str | UUID) -> None:
    """See :meth:`StreamingMetrics.forget_stream`."""
    default_metrics().forget_stream(stream_id)


def record_websocket_connection(stream_id: str | UUID) -> None:
    """See :meth:`StreamingMetrics.record_websocket_connection`."""
    # The method's fast path inlined on the default instance's records (_default keeps
    # them with the instance): one Python call. A call racing with set_default_metrics
    # lands in either instance.
    try:
        rec = _default._streams[stream_id]
    except (KeyError, TypeError):
        (_default._instance or default_metrics()).record_websocket_connection(stream_id)
        return
    rec.viewers.append(None)
    if rec.linger_until is not None:
        (_default._instance or default_metrics())._connected_late(rec)


def record_websocket_disconnection(stream_id: str | UUID) -> None:
    """See :meth:`StreamingMetrics.record_websocket_disconnection`."""
    # Inlined like record_websocket_connection.
    try:
        rec = _default._streams[stream_id]
    except (KeyError, TypeError):
        (_default._instance or default_metrics()).record_websocket_disconnection(stream_id)
        return
    viewers = rec.viewers
    try:
        viewers.pop()
    except IndexError:
        return
    if viewers or rec.info is not None:
        return
    (_default._instance or default_metrics())._disconnected_to_zero(rec)


def record_viewer_count_change(stream_id: str | UUID, viewer_count: int, region: str) -> None:
    """See :meth:`StreamingMetrics.record_viewer_count_change`."""
    default_metrics().record_viewer_count_change(stream_id, viewer_count, region)


def record_quality_bitrate(stream_id: str | UUID, quality: str, kbps: float) -> None:
    """See :meth:`StreamingMetrics.record_quality_bitrate`."""
    default_metrics().record_quality_bitrate(stream_id, quality, kbps)


def record_broadcast_error(error_type: str, count: int = 1) -> None:
    """See :meth:`StreamingMetrics.record_broadcast_error` (``count``: an int >= 1)."""
    default_metrics().record_broadcast_error(error_type, count)


def record_rtmp_connection_failure() -> None:
    """See :meth:`StreamingMetrics.record_rtmp_connection_failure`."""
    default_metrics().record_rtmp_connection_failure()


def record_rtmp_frame_latency(
    quality: str, seconds: float, stream_id: str | UUID | None = None
) -> None:
    """See :meth:`StreamingMetrics.record_rtmp_frame_latency` (the per-frame hot path).

    ``stream_id`` (optional): the frame's stream, for its exemplar and its lag window.
    """
    # The two-argument call is the method's fast path inlined, on the default
    # instance's shards (_default keeps them with the instance): one Python call
    # instead of two. Anything else, and a first call, goes through the method.
    # (See streaming_metrics._histogram for the search keys' sentinels.)
    if stream_id is None and type(seconds) is float:
        index = bisect_left(_LATENCY_KEYS, seconds)
        if 0 < index < _LATENCY_TOP:
            try:
                counts = _default._latency_shards[quality].counts
            except (KeyError, TypeError):
                pass
            else:
                counts[index] += 1
                counts[0] += seconds
                return
    (_default._instance or default_metrics()).record_rtmp_frame_latency(quality, seconds, stream_id)


def record_frame_drops(stream_id: str | UUID, count: int = 1) -> None:
    """See :meth:`StreamingMetrics.record_frame_drops`."""
    default_metrics().record_frame_drops(stream_id, count)
