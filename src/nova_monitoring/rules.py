"""Recording rules: the guide's names with the design's corrected expressions.

The guide's versions aggregate ``by (region)`` over series that have no ``region``
label, or take ``rate()`` of a histogram's base name, which has no samples; these join
``region`` in from ``nova_streaming_stream_info`` and divide ``_sum`` by ``_count``.
Per-stream series are reduced per ``stream_id`` first (``sum`` for connections, which
every replica with viewers exports; ``max`` for the owner-only peak), so two replicas
never double-count.

Example::

    >>> from nova_monitoring.options import RenderOptions
    >>> [r["record"] for r in recording_rules(RenderOptions())][:2]
    ['nova:streaming:viewers:avg', 'nova:streaming:viewers:max']
"""

from __future__ import annotations

from nova_monitoring._types import Data
from nova_monitoring.options import RenderOptions
from nova_monitoring.promql import le_matcher, rate_of
from streaming_metrics import definitions as d

__all__ = [
    "RECORDING_GROUP",
    "le_matcher",
    "rate_of",
    "recording_group",
    "recording_rules",
]

RECORDING_GROUP = "nova-streaming-recording"

_STREAM_REGION = f"max by (stream_id, region) ({d.STREAM_INFO.name})"


def recording_rules(options: RenderOptions) -> list[Data]:
    """The five recording rules of design section 4, in the guide's order."""
    window = options.rate_window
    duration = d.STREAM_DURATION_SECONDS.name
    return [
        {
            "record": "nova:streaming:viewers:avg",
            "expr": (
                f"avg by (region) (sum by (stream_id) ({d.WEBSOCKET_CONNECTIONS.name})"
                f" * on (stream_id) group_left (region) {_STREAM_REGION})"
            ),
        },
        {
            "record": "nova:streaming:viewers:max",
            "expr": (
                f"max by (region) (max by (stream_id) ({d.PEAK_VIEWERS.name})"
                f" * on (stream_id) group_left (region) {_STREAM_REGION})"
            ),
        },
        {
            "record": "nova:streaming:duration:avg",
            "expr": (
                f"sum by (stream_type) ({rate_of(duration + '_sum', window)})"
                f" / sum by (stream_type) ({rate_of(duration + '_count', window)})"
            ),
        },
        {
            "record": "nova:streaming:error_rate:5m",
            "expr": f"sum by (error_type) ({rate_of(d.BROADCAST_ERRORS.name, window)})",
        },
        {
            "record": "nova:streaming:active:by_region",
            "expr": f"sum by (region) ({d.ACTIVE_STREAMS.name})",
        },
    ]


def recording_group(options: RenderOptions) -> Data:
    """The recording rules as one Prometheus rule group, evaluated every ``eval_interval``."""
    return {
        "name": RECORDING_GROUP,
        "interval": options.eval_interval,
        "rules": recording_rules(options),
    }
