"""``GET /api/v1/streams`` and ``GET /api/v1/streams/{stream_id}``: active streams.

Each stream: ``stream_id``, ``region``, ``stream_type``, ``started_at`` (ISO 8601,
UTC), ``state`` (``active`` or ``interrupted``) and ``viewers``, the global count.
Read-only: nothing here creates a stream or a series.

The listing is unauthenticated, so a flood of requests must not become a flood of Redis
work: each replica serves one shared snapshot, rebuilt at most once per second (sooner
when this replica starts or ends a stream), by one build that concurrent requests share.

``GET /api/v1/streams?sort=lag&limit=N``: the worst streams now (design section 10),
worst first, each with ``ingest_lag_seconds`` (the owner's p95 over the last 10 s, null
when its owner has no recent frame), ``frame_drops`` and ``qualities``, from every
replica (:mod:`nova_streaming.stream_signals`), over the same snapshot (no Redis work
per request). ``sort`` accepts ``lag`` only; ``limit`` is 1..1000 (also without
``sort``); anything else is a 400.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nova_streaming.presence import PresenceUnavailable
from nova_streaming.registry import InvalidStreamId, StreamRecord, normalize_stream_id
from nova_streaming.service import Service
from nova_streaming.stream_signals import StreamSignal, find_stream_signals

__all__ = ["MAX_LIMIT", "SORT_KEYS", "ListingSnapshot", "api_routes", "listing_snapshot"]

LISTING_MAX_AGE = 1.0
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


class ListingSnapshot:
    """The rendered ``/api/v1/streams`` body of one replica, shared by every request.

    Rebuilt when older than ``max_age`` seconds (by ``clock``) or when the registry's
    :attr:`~nova_streaming.registry.StreamRegistry.changes` moved; concurrent requests
    await the same build. A failed build (registry unavailable) is not cached.

    Example::

        body = await listing_snapshot(service).body()
    """

    def __init__(
        self,
        service: Service,
        *,
        max_age: float = LISTING_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self.max_age = max_age
        self.clock = clock
        self.builds = 0
        self._body: bytes | None = None
        self._streams: list[dict[str, Any]] = []
        self._built_at = float("-inf")
        self._changes = -1
        self._pending: asyncio.Future[bytes] | None = None

    def _fresh(self) -> bool:
        return (
            self._body is not None
            and self.clock() - self._built_at < self.max_age
            and self._changes == self._service.registry.changes
        )

    async def body(self) -> bytes:
        """The JSON body; raises :class:`PresenceUnavailable` if a build fails."""
        if self._fresh() and self._body is not None:
            return self._body
        pending = self._pending
        if pending is None:
            pending = asyncio.ensure_future(self._build())
            self._pending = pending
            pending.add_done_callback(self._built)
        return await asyncio.shield(pending)

    async def streams(self) -> list[dict[str, Any]]:
        """The streams of the same snapshot, as API objects (do not modify them)."""
        await self.body()
        return self._streams

    def _built(self, future: asyncio.Future[bytes]) -> None:
        if self._pending is future:
            self._pending = None
        if not future.cancelled():
            future.exception()  # retrieved: a failure is answered 503, never logged as lost

    async def _build(self) -> bytes:
        self.builds += 1
        started, changes = self.clock(), self._service.registry.changes
        records = await self._service.registry.list_active()
        counts = await _counts(self._service, records)
        streams = [r.to_api(viewers=counts.get(r.stream_id, 0)) for r in records]
        body = JSONResponse({"streams": streams}).body
        self._body, self._built_at, self._changes = bytes(body), started, changes
        self._streams = streams
        return self._body


_snapshots: weakref.WeakKeyDictionary[Service, ListingSnapshot] = weakref.WeakKeyDictionary()


def listing_snapshot(service: Service) -> ListingSnapshot:
    """The listing snapshot of ``service`` (one per replica)."""
    snapshot = _snapshots.get(service)
    if snapshot is None:
        snapshot = _snapshots[service] = ListingSnapshot(service)
    return snapshot


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


def _worst_first(stream: dict[str, Any]) -> tuple[float, int, str]:
    lag, drops = stream["ingest_lag_seconds"], stream["frame_drops"]
    return (-lag if lag is not None else 1.0, -(drops or 0), str(stream["stream_id"]))


async def list_streams(request: Request) -> Response:
    """Every active stream with its global viewer count (a snapshot at most 1 s old);
    ``sort=lag``: worst first, with each stream's lag, drops and qualities."""
    service: Service = request.app.state.service
    options = _list_options(request)
    if isinstance(options, JSONResponse):
        return options
    sort, limit = options
    snapshot = listing_snapshot(service)
    try:
        if sort is None and limit is None:
            return Response(await snapshot.body(), media_type="application/json")
        streams = await snapshot.streams()
    except PresenceUnavailable:
        return _unavailable()
    if sort == "lag":
        signals = _signals(service)
        extended = []
        for stream in streams:
            signal = signals.get(stream["stream_id"])
            extended.append(
                {
                    **stream,
                    "ingest_lag_seconds": signal.lag_seconds if signal else None,
                    "frame_drops": signal.frame_drops if signal else None,
                    "qualities": list(signal.qualities) if signal else [],
                }
            )
        # Worst lag first; streams without a reading last; ties by drops, then id.
        streams = sorted(extended, key=_worst_first)
    if limit is not None:
        streams = streams[:limit]
    return JSONResponse({"streams": streams})


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
