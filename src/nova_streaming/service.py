"""The running service's parts, wired once by the app factory and shared by routes.

Routes reach it as ``request.app.state.service``; components (the ingest, for one)
receive it in :meth:`Component.start`.

Example::

    service: Service = request.app.state.service
    await service.registry.start(stream_id, service.settings.region, "live")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from nova_streaming.presence import PresenceEngine
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings
from streaming_metrics import StreamingMetrics

if TYPE_CHECKING:
    from nova_streaming.registry import StreamRegistry
    from nova_streaming.viewers.hub import ViewerHub

__all__ = ["Component", "Service"]


@runtime_checkable
class Component(Protocol):
    """Something the app starts after its core and stops before it (e.g. the RTMP
    receiver). ``start`` must return once it is serving; ``stop`` must be idempotent."""

    async def start(self, service: Service) -> None:
        """Start serving, using the service's registry, metrics and settings."""
        ...

    async def stop(self) -> None:
        """Stop serving and release resources."""
        ...


@dataclass(eq=False)
class Service:
    """Everything one app instance runs on."""

    settings: Settings
    metrics: StreamingMetrics
    service_metrics: ServiceMetrics
    presence: PresenceEngine
    registry: StreamRegistry
    hub: ViewerHub
    components: list[Component] = field(default_factory=list)
    started: bool = False
    # Set at SIGTERM (graceful shutdown): /readyz answers 503 while the replica drains.
    draining: bool = False
