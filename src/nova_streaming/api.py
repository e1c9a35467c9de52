"""``GET /api/v1/streams`` and ``GET /api/v1/streams/{stream_id}``: active streams.

Each stream: ``stream_id``, ``region``, ``stream_type``, ``started_at`` (ISO 8601,
UTC), ``state`` (``active`` or ``interrupted``) and ``viewers``, the global count.
Read-only: nothing here creates a stream or a series.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nova_streaming.presence import PresenceUnavailable
from nova_streaming.registry import InvalidStreamId, StreamRecord, normalize_stream_id
from nova_streaming.service import Service

__all__ = ["api_routes"]


async def _counts(service: Service, records: list[StreamRecord]) -> dict[str, int]:
    ids = [r.stream_id for r in records]
    try:
        return await service.presence.refresh(ids)
    except PresenceUnavailable:
        return {s: service.presence.global_count(s) for s in ids}


def _unavailable() -> JSONResponse:
    return JSONResponse({"error": "stream registry unavailable"}, status_code=503)


async def list_streams(request: Request) -> JSONResponse:
    """Every active stream with its global viewer count."""
    service: Service = request.app.state.service
    try:
        records = await service.registry.list_active()
    except PresenceUnavailable:
        return _unavailable()
    counts = await _counts(service, records)
    return JSONResponse(
        {"streams": [r.to_api(viewers=counts.get(r.stream_id, 0)) for r in records]}
    )


async def get_stream(request: Request) -> JSONResponse:
    """One active stream; 400 for a non-UUID, 404 when not active."""
    service: Service = request.app.state.service
    try:
        sid = normalize_stream_id(request.path_params.get("stream_id", ""))
    except InvalidStreamId:
        return JSONResponse({"error": "stream_id must be a UUID"}, status_code=400)
    try:
        record = await service.registry.get(sid)
    except PresenceUnavailable:
        return _unavailable()
    if record is None:
        return JSONResponse({"error": "stream not active"}, status_code=404)
    counts = await _counts(service, [record])
    return JSONResponse(record.to_api(viewers=counts.get(sid, 0)))


def api_routes() -> list[Route]:
    """The REST routes."""
    return [
        Route("/api/v1/streams", list_streams, methods=["GET"]),
        Route("/api/v1/streams/{stream_id}", get_stream, methods=["GET"]),
    ]
