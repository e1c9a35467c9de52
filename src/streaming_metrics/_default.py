"""The process-wide default StreamingMetrics behind :mod:`streaming_metrics.helpers`.

Besides the instance, the module holds the parts of it that the helpers' hot paths
read directly (its frame-latency shards and its stream records): a helper call is then
one Python call, with no method call behind it. They change together with the instance,
under the lock; empty before the first default exists, so a helper's lookup misses and
takes the path that creates it.
"""

from __future__ import annotations

import threading
from uuid import UUID

from streaming_metrics._histogram import Shard
from streaming_metrics._stream import StreamRecord
from streaming_metrics.metrics import StreamingMetrics

_lock = threading.Lock()
_instance: StreamingMetrics | None = None
# The default instance's quality -> latency shard and stream id -> record (its own
# dicts, not copies: they follow its changes).
_latency_shards: dict[str, Shard] = {}
_streams: dict[str | UUID, StreamRecord] = {}


def _install(metrics: StreamingMetrics | None) -> StreamingMetrics | None:
    """Caller holds the lock. Make ``metrics`` the default; returns the previous one."""
    global _instance, _latency_shards, _streams
    previous, _instance = _instance, metrics
    _latency_shards = metrics._latency_shards if metrics is not None else {}
    _streams = metrics._streams if metrics is not None else {}
    return previous


def default_metrics() -> StreamingMetrics:
    """The default instance (created on first use, in prometheus_client's ``REGISTRY``).

    Example::

        >>> from streaming_metrics import default_metrics
        >>> default_metrics() is default_metrics()
        True
    """
    instance = _instance
    if instance is None:
        with _lock:
            instance = _instance
            if instance is None:
                instance = StreamingMetrics()
                _install(instance)
    return instance


def set_default_metrics(metrics: StreamingMetrics) -> None:
    """Make ``metrics`` the instance the helpers record into (e.g. one built from settings).

    A previous, different default instance is unregistered from its registry.

    Example::

        >>> from prometheus_client import CollectorRegistry
        >>> from streaming_metrics import StreamingMetrics
        >>> from streaming_metrics.helpers import reset_default_metrics
        >>> set_default_metrics(StreamingMetrics(CollectorRegistry(), max_tracked_streams=500))
        >>> default_metrics().max_tracked_streams
        500
        >>> reset_default_metrics()
    """
    if not isinstance(metrics, StreamingMetrics):
        raise ValueError(
            f"set_default_metrics: expected a StreamingMetrics, got {type(metrics).__name__}"
        )
    with _lock:
        previous = _install(metrics)
    if previous is not None and previous is not metrics:
        previous.unregister()


def reset_default_metrics() -> None:
    """Unregister and drop the default instance; the next helper call makes a fresh one.

    Example::

        >>> reset_default_metrics()
    """
    with _lock:
        previous = _install(None)
    if previous is not None:
        previous.unregister()
