"""The app factory: wiring only. ``create_app(settings, metrics=...)`` builds one
service instance (presence engine, registry, viewer hub, routes) on an isolated
metrics registry, so several instances can live in one process.

Example::

    from prometheus_client import CollectorRegistry
    from streaming_metrics import StreamingMetrics
    settings = Settings.from_env(environ)
    metrics = StreamingMetrics(CollectorRegistry(), regions=[settings.region])
    app = create_app(settings, metrics=metrics)
    registry = app.state.service.registry       # in-process access (tests, ingest)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from nova_streaming.api import api_routes
from nova_streaming.health import health_routes
from nova_streaming.presence import PresenceEngine, create_presence
from nova_streaming.registry import StreamRegistry, create_store
from nova_streaming.service import Component, Service
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings
from nova_streaming.viewers.endpoint import viewer_route
from nova_streaming.viewers.hub import ViewerHub
from streaming_metrics import StreamingMetrics

__all__ = ["Extension", "create_app"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Extension:
    """Routes and components a feature adds to the app (the ingest, for one)."""

    routes: Sequence[BaseRoute] = ()
    components: Sequence[Component] = ()


def create_app(
    settings: Settings,
    *,
    metrics: StreamingMetrics,
    service_metrics: ServiceMetrics | None = None,
    presence: PresenceEngine | None = None,
    registry: StreamRegistry | None = None,
    extensions: Sequence[Extension] = (),
    extra_routes: Sequence[BaseRoute] = (),
    components: Sequence[Component] = (),
) -> Starlette:
    """Build the ASGI app of one replica.

    ``presence`` and ``registry`` default to what ``settings`` selects (a given
    ``registry`` must use the given ``presence``). ``extensions``, ``extra_routes`` and
    ``components`` plug features in: components start after the core (presence,
    registry, hub) and stop before it, in reverse order. ``app.state.service`` is the
    :class:`~nova_streaming.service.Service`.
    """
    service_metrics = service_metrics or ServiceMetrics(metrics.registry)
    presence = presence or create_presence(settings, service_metrics)
    if registry is None:
        registry = StreamRegistry(settings, metrics, presence, create_store(settings, presence))
    hub = ViewerHub(settings, metrics, presence, registry, service_metrics)
    all_components = [*components, *(c for e in extensions for c in e.components)]
    service = Service(
        settings=settings,
        metrics=metrics,
        service_metrics=service_metrics,
        presence=presence,
        registry=registry,
        hub=hub,
        components=list(all_components),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        metrics.declare_region(settings.region)
        await presence.start()
        try:
            await registry.open()
            await hub.open()
        except BaseException:
            # Nothing after this point will run the shutdown below: undo what started.
            await hub.close()
            await registry.close()
            await presence.stop()
            raise
        started: list[Component] = []
        try:
            for component in service.components:
                await component.start(service)
                started.append(component)
            service.started = True
            log.info(
                "nova-streaming: replica %s (region %s, presence %s) ready",
                settings.replica_id,
                settings.region,
                presence.name,
            )
            yield
        finally:
            service.started = False
            for component in reversed(started):
                try:
                    await component.stop()
                except Exception:
                    log.exception("nova-streaming: component %r failed to stop", component)
            await hub.close()
            await registry.close()
            await presence.stop()

    routes: list[BaseRoute] = [
        *health_routes(),
        *api_routes(),
        viewer_route(),
        *extra_routes,
        *(r for e in extensions for r in e.routes),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app
