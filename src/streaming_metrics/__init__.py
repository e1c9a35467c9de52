"""streaming_metrics: the Nova streaming instrumentation library.

The guide's helpers live in :mod:`streaming_metrics.helpers`; metric names and label
sets in :mod:`streaming_metrics.definitions`.

Example::

    >>> from prometheus_client import CollectorRegistry
    >>> from streaming_metrics import StreamingMetrics
    >>> metrics = StreamingMetrics(CollectorRegistry(), regions=["eu-west-1"])
    >>> metrics.record_broadcast_error("frame_drop")
"""

from streaming_metrics._default import default_metrics
from streaming_metrics.metrics import StreamingMetrics
from streaming_metrics.server import MetricsServer, metrics_app, start_metrics_server
from streaming_metrics.timer import StreamTimer

__all__ = [
    "MetricsServer",
    "StreamTimer",
    "StreamingMetrics",
    "default_metrics",
    "metrics_app",
    "start_metrics_server",
]
