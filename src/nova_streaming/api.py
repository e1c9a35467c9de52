"""``GET /api/v1/streams`` and ``GET /api/v1/streams/{stream_id}``: active streams.

Each stream: ``stream_id``, ``region``, ``stream_type``, ``started_at`` (ISO 8601,
UTC), ``state`` (``active`` or ``interrupted``) and ``viewers``, the global count.
Read-only: nothing here creates a stream or a series.

``GET /api/v1/streams?sort=lag&limit=N``: the worst streams now (design section 10),
worst first, each with ``ingest_lag_seconds`` (the owner's p95 over the last 10 s, null
when its owner has no recent frame), ``frame_drops`` and ``qualities``, from every
replica (:mod:`nova_streaming.stream_signals`). ``sort`` accepts ``lag`` only; ``limit``
is 1..1000 (also without ``sort``); anything else is a 400.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nova_streaming.presence import PresenceUnavailable
from nova_streaming.registry import InvalidStreamId, StreamRecord, normalize_stream_id
from nova_streaming.service import Service
from nova_streaming.stream_signals import StreamSignal, find_stream_signals

__all__ = ["MAX_LIMIT", "SORT_KEYS", "api_routes"]

SORT_KEYS = ("lag",)
MAX_LIMIT = 1000


async def _counts(service: Service, records: list[StreamRecord]) -> dict[str, int]:
    ids = [r.stream_id for r in records]
    try:
        return await service.presence.refresh(ids)
    except PresenceUnavailable:
        return {s: service.presence.global_count(s) for s in ids}


def _unavailable() -> JSONResponse:
    return JSONResponse({"error": "stream registry unavailable"}, status_code=503)


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _list_options(request: Request) -> tuple[str | None, int | None] | JSONResponse:
    """``(sort, limit)`` from the query string, or the 400 answer."""
    query = request.query_params
    sorts, limits = query.getlist("sort"), query.getlist("limit")
    if len(sorts) > 1 or len(limits) > 1:
        return _bad_request("sort and limit may be given once")
    sort = sorts[0] if sorts else None
    if sort is not None and sort not in SORT_KEYS:
        return _bad_request(f"sort must be one of: {', '.join(SORT_KEYS)}")
    limit = None
    if limits:
        raw = limits[0]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4):
            return _bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}")
        limit = int(raw)
        if not 1 <= limit <= MAX_LIMIT:
            return _bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return sort, limit


def _signals(service: Service) -> dict[str, StreamSignal]:
    shared = find_stream_signals(service)
    if shared is not None:
        return shared.current()
    # No signals component (an app built without the ingest): this replica's own.
    me = service.registry.replica_id
    return {
        sid: StreamSignal(sid, me, lag, drops, qualities)
        for sid, (lag, drops, qualities) in service.metrics.stream_signals().items()
    }


async def list_streams(request: Request) -> JSONResponse:
    """Every active stream with its global viewer count; ``sort=lag``: worst first."""
    service: Service = request.app.state.service
    options = _list_options(request)
    if isinstance(options, JSONResponse):
        return options
    sort, limit = options
    try:
        records = await service.registry.list_active()
    except PresenceUnavailable:
        return _unavailable()
    if sort == "lag":
        signals = _signals(service)
        # Worst lag first; streams without a reading last; ties by drops, then id.
        records.sort(key=lambda r: _worst_first(r, signals.get(r.stream_id)))
    if limit is not None:
        records = records[:limit]
    counts = await _counts(service, records)
    streams = []
    for record in records:
        item = record.to_api(viewers=counts.get(record.stream_id, 0))
        if sort == "lag":
            signal = signals.get(record.stream_id)
            item["ingest_lag_seconds"] = signal.lag_seconds if signal else None
            item["frame_drops"] = signal.frame_drops if signal else None
            item["qualities"] = list(signal.qualities) if signal else []
        streams.append(item)
    return JSONResponse({"streams": streams})


def _worst_first(record: StreamRecord, signal: StreamSignal | None) -> tuple[float, int, str]:
    if signal is None:
        return (1.0, 0, record.stream_id)
    lag = signal.lag_seconds
    return (-lag if lag is not None else 1.0, -signal.frame_drops, record.stream_id)


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
