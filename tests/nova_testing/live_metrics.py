"""A StreamingMetrics with many started, watched streams on a settable clock, for the
exposition tests that change a populated registry between renders."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from prometheus_client import CollectorRegistry

from streaming_metrics import StreamingMetrics

REGION = "eu-west-1"

Live = tuple[StreamingMetrics, CollectorRegistry, list[float]]
"""The instance, its registry and its clock (``now[0]``, seconds: move it to expire)."""


def stream_id(n: int) -> str:
    """The ``n``-th stream's id (a valid UUID, the same in every test)."""
    return str(uuid.UUID(int=n + 1, version=4))


@contextlib.contextmanager
def live_metrics(streams: int) -> Iterator[Live]:
    """``streams`` started streams (region :data:`REGION`), stream ``n`` with one local
    viewer and a viewer count of ``n``; a linger of 1 s; unregistered afterwards."""
    registry = CollectorRegistry()
    now = [1000.0]
    metrics = StreamingMetrics(
        registry, regions=[REGION], clock=lambda: now[0], series_linger_seconds=1.0
    )
    for n in range(streams):
        metrics.record_stream_started(stream_id(n), REGION)
        metrics.record_websocket_connection(stream_id(n))
        metrics.record_viewer_count_change(stream_id(n), n, REGION)
    try:
        yield metrics, registry, now
    finally:
        metrics.unregister()
