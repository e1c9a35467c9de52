"""The process-wide default StreamingMetrics behind :mod:`streaming_metrics.helpers`."""

from __future__ import annotations

import threading

from streaming_metrics.metrics import StreamingMetrics

_lock = threading.Lock()
_instance: StreamingMetrics | None = None


def default_metrics() -> StreamingMetrics:
    """The default instance (created on first use, in prometheus_client's ``REGISTRY``).

    Example::

        >>> from streaming_metrics import default_metrics
        >>> default_metrics() is default_metrics()
        True
    """
    global _instance
    instance = _instance
    if instance is None:
        with _lock:
            if _instance is None:
                _instance = StreamingMetrics()
            instance = _instance
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
    global _instance
    if not isinstance(metrics, StreamingMetrics):
        raise ValueError(
            f"set_default_metrics: expected a StreamingMetrics, got {type(metrics).__name__}"
        )
    with _lock:
        previous, _instance = _instance, metrics
    if previous is not None and previous is not metrics:
        previous.unregister()


def reset_default_metrics() -> None:
    """Unregister and drop the default instance; the next helper call makes a fresh one.

    Example::

        >>> reset_default_metrics()
    """
    global _instance
    with _lock:
        previous, _instance = _instance, None
    if previous is not None:
        previous.unregister()
