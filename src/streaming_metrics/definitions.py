"""Every metric of the Nova contract: name, type, labels, buckets and help.

This module is the single source of metric names. The service records through
:mod:`streaming_metrics.helpers`; ``nova_monitoring`` builds its rules and dashboard
from the constants here, so renaming a metric breaks generation instead of silently
breaking an alert.

Example::

    >>> from streaming_metrics import definitions as d
    >>> d.ACTIVE_STREAMS.name
    'nova_streaming_active_streams'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

NAMESPACE = "nova_streaming"


class MetricType(StrEnum):
    """The Prometheus metric types the contract uses."""

    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """One metric of the contract.

    ``name`` is the full exposition name; for a counter it includes ``_total`` (the
    sample name), as the guide writes it.
    """

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


# --- The guide's eight metrics (names, labels and buckets are the guide's, exactly) ---

ACTIVE_STREAMS = MetricDefinition(
    name="nova_streaming_active_streams",
    type=MetricType.GAUGE,
    help="Number of currently active broadcasting streams.",
    labels=("region",),
)
WEBSOCKET_CONNECTIONS = MetricDefinition(
    name="nova_streaming_websocket_connections",
    type=MetricType.GAUGE,
    help="Current number of connected WebSocket viewers of a stream on this process.",
    labels=("stream_id",),
)
PEAK_VIEWERS = MetricDefinition(
    name="nova_streaming_peak_viewers",
    type=MetricType.GAUGE,
    help="Peak viewer count reached during the stream's lifetime.",
    labels=("stream_id",),
)
QUALITY_BITRATE_KBPS = MetricDefinition(
    name="nova_streaming_quality_bitrate_kbps",
    type=MetricType.GAUGE,
    help="Current ingest bitrate of a stream at a quality level, in kbit/s.",
    labels=("stream_id", "quality"),
)
BROADCAST_ERRORS = MetricDefinition(
    name="nova_streaming_broadcast_errors_total",
    type=MetricType.COUNTER,
    help="Total number of broadcasting errors encountered.",
    labels=("error_type",),
)
# The `_total` suffix on a histogram is the guide's name, kept because dashboards and
# runbooks depend on it; `promtool check metrics` flags it (the one documented finding).
VIEWERS_TOTAL = MetricDefinition(
    name="nova_streaming_viewers_total",
    type=MetricType.HISTOGRAM,
    help="Distribution of final viewer counts of ended streams.",
    labels=("region",),
    buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10000),
)
STREAM_DURATION_SECONDS = MetricDefinition(
    name="nova_streaming_stream_duration_seconds",
    type=MetricType.HISTOGRAM,
    help="Distribution of stream durations in seconds.",
    labels=("stream_type",),
    buckets=(60, 300, 600, 1800, 3600, 7200, 14400, 21600, 43200, 86400),
)
RTMP_INGESTION_LATENCY_SECONDS = MetricDefinition(
    name="nova_streaming_rtmp_ingestion_latency_seconds",
    type=MetricType.HISTOGRAM,
    help="Per-frame ingest lag beyond the best path seen in the session, in seconds.",
    labels=("quality",),
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)

# --- Added by the design ---

STREAM_INFO = MetricDefinition(
    name="nova_streaming_stream_info",
    type=MetricType.GAUGE,
    help="1 while the stream is active on this process; joins region onto per-stream series.",
    labels=("stream_id", "region", "stream_type"),
)
STREAM_INGEST_LAG_SECONDS = MetricDefinition(
    name="nova_streaming_stream_ingest_lag_seconds",
    type=MetricType.GAUGE,
    help="p95 per-frame ingest lag of a stream over the last 10 s, in seconds (owner only).",
    labels=("stream_id",),
)
STREAM_FRAME_DROPS = MetricDefinition(
    name="nova_streaming_stream_frame_drops_total",
    type=MetricType.COUNTER,
    help="Frames of a stream lost in ingest (owner only).",
    labels=("stream_id",),
)
TRACKED_STREAMS = MetricDefinition(
    name="nova_streaming_metrics_tracked_streams",
    type=MetricType.GAUGE,
    help="Streams currently holding per-stream series in this process (active plus linger).",
)
MAX_TRACKED_STREAMS = MetricDefinition(
    name="nova_streaming_metrics_max_tracked_streams",
    type=MetricType.GAUGE,
    help="The cardinality cap: streams that may hold per-stream series in this process.",
)
DROPPED_SERIES = MetricDefinition(
    name="nova_streaming_metrics_dropped_series_total",
    type=MetricType.COUNTER,
    help="Streams refused per-stream series because the cardinality cap was reached.",
)
REJECTED_INPUTS = MetricDefinition(
    name="nova_streaming_metrics_rejected_inputs_total",
    type=MetricType.COUNTER,
    help="Helper calls rejected for a bad input, by reason.",
    labels=("reason",),
)

GUIDE_METRICS: tuple[MetricDefinition, ...] = (
    ACTIVE_STREAMS,
    WEBSOCKET_CONNECTIONS,
    PEAK_VIEWERS,
    QUALITY_BITRATE_KBPS,
    BROADCAST_ERRORS,
    VIEWERS_TOTAL,
    STREAM_DURATION_SECONDS,
    RTMP_INGESTION_LATENCY_SECONDS,
)
SELF_METRICS: tuple[MetricDefinition, ...] = (
    TRACKED_STREAMS,
    MAX_TRACKED_STREAMS,
    DROPPED_SERIES,
    REJECTED_INPUTS,
)
WORST_STREAMS_METRICS: tuple[MetricDefinition, ...] = (
    STREAM_INGEST_LAG_SECONDS,
    STREAM_FRAME_DROPS,
)
"""Design section 10: per-stream signals for "which streams hurt now"."""
ALL_METRICS: tuple[MetricDefinition, ...] = (
    *GUIDE_METRICS,
    STREAM_INFO,
    *WORST_STREAMS_METRICS,
    *SELF_METRICS,
)

# --- Bounded label sets ---

OTHER = "other"
"""The value an error_type or quality outside its configured set is counted as."""

DEFAULT_ERROR_TYPES: tuple[str, ...] = (
    "rtmp_connection_failed",
    "frame_drop",
    "timeout",
    "auth_rejected",
    "protocol_error",
)
DEFAULT_QUALITIES: tuple[str, ...] = (
    "240p",
    "360p",
    "480p",
    "720p",
    "1080p",
    "1440p",
    "4k",
    "unknown",
)
STREAM_TYPES: tuple[str, ...] = ("live", "pre-recorded")
DEFAULT_STREAM_TYPE = "live"

LABEL_VALUE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
"""What a region, quality, error_type or stream_type value must fully match."""

# Reasons counted in nova_streaming_metrics_rejected_inputs_total.
REJECT_INVALID_STREAM_ID = "invalid_stream_id"
REJECT_INVALID_LABEL = "invalid_label_value"
REJECT_NOT_FINITE = "not_finite"
REJECT_NEGATIVE = "negative_value"
REJECT_INVALID_TYPE = "invalid_type"
"""A value of the wrong type: a number that is not a real number (str, None, bool...)."""
REJECT_REASONS: tuple[str, ...] = (
    REJECT_INVALID_STREAM_ID,
    REJECT_INVALID_LABEL,
    REJECT_NOT_FINITE,
    REJECT_NEGATIVE,
    REJECT_INVALID_TYPE,
)

DEFAULT_MAX_TRACKED_STREAMS = 10_000
DEFAULT_EXEMPLAR_THRESHOLD_SECONDS = 0.25
"""Frames slower than this always carry their stream as an exemplar (design section 10)."""
DEFAULT_EXEMPLAR_SAMPLE_EVERY = 100
"""Otherwise one frame in this many (per instance) carries one."""
EXEMPLAR_LABEL = "stream_id"
LAG_WINDOW_SECONDS = 10
"""stream_ingest_lag_seconds is the p95 over this many whole seconds."""
LAG_QUANTILE = 0.95
DEFAULT_SERIES_LINGER_SECONDS = 60.0
