"""``/healthz`` (the process serves) and ``/readyz`` (it should get traffic).

Not ready while starting, while draining or shutting down (from SIGTERM on: see
:mod:`nova_streaming.drain`), or while the presence backend (Redis) is unreachable:
connected viewers keep being served, but a load balancer should send new ones to a
replica whose counts are shared.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nova_streaming.service import Service

__all__ = ["health_routes"]


async def healthz(request: Request) -> JSONResponse:
    """Always 200 while the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """200 when started, not draining and the presence engine is ready, else 503."""
    service: Service = request.app.state.service
    presence_ready = service.presence.ready
    ready = service.started and not service.draining and presence_ready
    body = {
        "ready": ready,
        "draining": service.draining,
        "presence": service.presence.name,
        "presence_ready": presence_ready,
        "viewers": service.hub.total,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


def health_routes() -> list[Route]:
    """The probe routes."""
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
