"""Requests and limits of the pods, derived from the measured figures in docs/benchmarks.md.

Each constant below is a benchmark figure rounded up (a test checks every one is not
below what ``docs/benchmarks.md`` reports), and every quantity in the manifests is
computed from them and the deploy options, so changing ``NOVA_MAX_CONNECTIONS`` changes
the memory request with it. docs/deploy.md states the same arithmetic in prose.

Example::

    >>> from nova_monitoring.deploy_options import DeployOptions
    >>> service_resources(DeployOptions())["requests"]
    {'cpu': '900m', 'memory': '431Mi'}
"""

from __future__ import annotations

import math

from nova_monitoring._types import Data
from nova_monitoring.deploy_options import DeployOptions

__all__ = [
    "BROADCAST_CPU_MS_PER_VIEWER",
    "IDLE_SERVICE_MIB",
    "MEMORY_LIMIT_FACTOR",
    "NGINX_CPU_MS_PER_STREAM",
    "RECEIVER_CPU_MS_PER_STREAM",
    "VIEWER_KIB",
    "ingest_resources",
    "redis_resources",
    "service_memory_request_mib",
    "service_resources",
]

VIEWER_KIB = 20.0
"""Resident memory per idle viewer: measured 9.7 KiB at 10,000 and 10.1 KiB at 19,900
viewers with the lean WebSocket protocol; kept at what uvicorn's own protocol costs
(19.1-19.5 KiB), which the service falls back to on a uvicorn without the hooks the
lean one needs (``nova_streaming.viewers.protocol.viewer_ws_protocol``)."""

IDLE_SERVICE_MIB = 40.0
"""Resident memory of a started service with one stream and no viewer: measured 34.8 MiB."""

MEMORY_LIMIT_FACTOR = 1.5
"""Limit over request: room for what the viewer benchmark does not load (scrape renders
at the cardinality cap, per-stream state, allocator fragmentation)."""

RECEIVER_CPU_MS_PER_STREAM = 2.0
"""Service CPU per second of one 2.5 Mbit/s stream relayed by nginx: measured 0.97-1.75 ms
on uvloop (20-100 streams, three runs) and 1.15-1.30 ms on asyncio's own loop (the
fallback when uvloop is missing)."""

BROADCAST_CPU_MS_PER_VIEWER = 0.04
"""Service CPU to send one viewer-count update to one viewer: measured 142.7-151.1 ms for
10,000 viewers and 331.1-417.3 ms for 19,900 (0.015-0.021 ms each; up to 0.033 ms in
earlier runs). At most one update per
stream per second (``NOVA_VIEWER_UPDATE_INTERVAL``), so at worst every viewer gets one a
second."""

NGINX_CPU_MS_PER_STREAM = 1.5
"""nginx-rtmp worker CPU per second of one relayed stream: measured 0.58-0.92 ms (1.07-1.19 ms
in earlier runs on the same machine: kept at the larger)."""

SERVICE_CPU_LIMIT = "2"
"""One event loop plus the metrics render thread use a little over one core at most;
the limit only stops a runaway, the request is what the HPA and the scheduler use."""


def _mib(value: float) -> str:
    return f"{math.ceil(value)}Mi"


def _millicores(value: float, *, floor: int = 50) -> str:
    return f"{max(floor, math.ceil(value / 10) * 10)}m"


def service_memory_request_mib(options: DeployOptions) -> float:
    """Idle service + ``max_connections`` idle viewers, in MiB."""
    return IDLE_SERVICE_MIB + options.max_connections * VIEWER_KIB / 1024


def service_resources(options: DeployOptions) -> Data:
    """The service container's requests and limits.

    memory request = idle + viewers x per-viewer; limit = request x 1.5.
    cpu request = streams x receiver CPU per stream-second + viewers x one update a second.
    """
    memory = service_memory_request_mib(options)
    cpu = (
        options.streams_per_replica * RECEIVER_CPU_MS_PER_STREAM
        + options.max_connections * BROADCAST_CPU_MS_PER_VIEWER
    )
    return {
        "requests": {"cpu": _millicores(cpu), "memory": _mib(memory)},
        "limits": {"cpu": SERVICE_CPU_LIMIT, "memory": _mib(memory * MEMORY_LIMIT_FACTOR)},
    }


def ingest_resources(options: DeployOptions, service_replicas: int) -> Data:
    """nginx-rtmp's requests and limits: CPU for every stream the service replicas take.

    Memory is not benchmarked: nginx-rtmp keeps a few chunk buffers per stream, 64 MiB
    requested and 256 MiB allowed covers hundreds of streams.
    """
    streams = options.streams_per_replica * service_replicas / options.ingest_replicas
    return {
        "requests": {"cpu": _millicores(streams * NGINX_CPU_MS_PER_STREAM), "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }


def redis_resources() -> Data:
    """Redis for presence: a few keys per stream and replica, small and fixed."""
    return {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
