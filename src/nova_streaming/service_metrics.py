"""The service's own metrics (not part of the guide's contract): presence health, rejections,
untrusted callers and ingest timestamp discontinuities.

They live in the same registry as the library's series, so one scrape sees both.

Example::

    >>> from prometheus_client import CollectorRegistry
    >>> m = ServiceMetrics(CollectorRegistry())
    >>> m.presence_errors.labels(operation="sync").inc()
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "GC_PAUSE",
    "GC_PAUSE_BUCKETS",
    "INGEST_DISCONTINUITIES",
    "PRESENCE_ERRORS",
    "PRESENCE_OPERATIONS",
    "PRESENCE_UP",
    "UNTRUSTED_ENDPOINTS",
    "UNTRUSTED_REQUESTS",
    "WEBSOCKET_DROPPED",
    "WEBSOCKET_DROP_REASONS",
    "WEBSOCKET_REJECTED",
    "WEBSOCKET_REJECT_REASONS",
    "ServiceMetrics",
]

PRESENCE_ERRORS: Final = "nova_streaming_presence_errors_total"
PRESENCE_UP: Final = "nova_streaming_presence_up"
WEBSOCKET_REJECTED: Final = "nova_streaming_websocket_rejected_total"
WEBSOCKET_DROPPED: Final = "nova_streaming_websocket_dropped_total"
UNTRUSTED_REQUESTS: Final = "nova_streaming_untrusted_requests_total"
INGEST_DISCONTINUITIES: Final = "nova_streaming_ingest_discontinuities_total"
GC_PAUSE: Final = "nova_streaming_gc_pause_seconds"
# Young passes take well under a millisecond; a full pass over thousands of viewers
# takes tens to hundreds of milliseconds (docs/service.md).
GC_PAUSE_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# Operations against the shared presence/registry backend (Redis) that can fail.
PRESENCE_OPERATIONS: Final = ("heartbeat", "sync", "read", "registry", "events")
WEBSOCKET_REJECT_REASONS: Final = (
    "invalid_stream_id",
    "stream_not_active",
    "over_capacity",
    "shutting_down",
)
WEBSOCKET_DROP_REASONS: Final = ("slow_consumer",)
# Where a caller outside NOVA_TRUSTED_PEERS is refused: the two nginx callbacks and the
# RTMP ingest port. Counted here, never in broadcast_errors_total (design section 5).
UNTRUSTED_ENDPOINTS: Final = ("on_publish", "on_publish_done", "ingest")


def _base(name: str) -> str:
    # prometheus_client adds the _total suffix of counters itself.
    return name.removesuffix("_total")


class ServiceMetrics:
    """Counters and gauges the service keeps about itself, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.presence_errors = Counter(
            _base(PRESENCE_ERRORS),
            "Failed operations against the shared presence/registry backend, by operation.",
            ["operation"],
            registry=registry,
        )
        self.presence_up = Gauge(
            PRESENCE_UP,
            "1 when the presence backend answered the last sync, 0 while it is unreachable.",
            registry=registry,
        )
        self.websocket_rejected = Counter(
            _base(WEBSOCKET_REJECTED),
            "WebSocket viewers refused before being counted, by reason.",
            ["reason"],
            registry=registry,
        )
        self.websocket_dropped = Counter(
            _base(WEBSOCKET_DROPPED),
            "Connected viewers dropped by the server, by reason.",
            ["reason"],
            registry=registry,
        )
        self.untrusted_requests = Counter(
            _base(UNTRUSTED_REQUESTS),
            "Callbacks and ingest connections refused because the peer address is not "
            "in NOVA_TRUSTED_PEERS, by endpoint.",
            ["endpoint"],
            registry=registry,
        )
        self.ingest_discontinuities = Counter(
            _base(INGEST_DISCONTINUITIES),
            "Video timestamps that went backwards or jumped forward by more than 10 s "
            "of media time (the lag baseline restarted; not counted as drops).",
            registry=registry,
        )
        self.gc_pause = Histogram(
            GC_PAUSE,
            "Garbage-collector passes of this process (the event loop stands still during "
            "each), by generation: 2 is the full pass.",
            ["generation"],
            buckets=GC_PAUSE_BUCKETS,
            registry=registry,
        )
        for endpoint in UNTRUSTED_ENDPOINTS:
            self.untrusted_requests.labels(endpoint=endpoint)
        for operation in PRESENCE_OPERATIONS:
            self.presence_errors.labels(operation=operation)
        for reason in WEBSOCKET_REJECT_REASONS:
            self.websocket_rejected.labels(reason=reason)
        for reason in WEBSOCKET_DROP_REASONS:
            self.websocket_dropped.labels(reason=reason)
        self.presence_up.set(1)
