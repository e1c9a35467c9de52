"""The REST API and the probes, on both engines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from websockets.asyncio.client import connect

from nova_streaming.api import listing_snapshot

Replicas = Callable[..., Awaitable[Any]]


async def test_streams_api_lists_active_streams_with_viewers(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """/api/v1/streams lists active streams with region, type, start and global count."""
    replica = await replicas(**engine)
    assert (await replica.get("/api/v1/streams")).json() == {"streams": []}
    sid = new_stream_id()
    record = await replica.service.registry.start(sid, "test-1", "pre-recorded")
    async with connect(replica.ws(sid)) as ws:
        await ws.recv()
        body = (await replica.get("/api/v1/streams")).json()
        assert len(body["streams"]) == 1
        stream = body["streams"][0]
        assert stream["stream_id"] == sid
        assert stream["region"] == "test-1"
        assert stream["stream_type"] == "pre-recorded"
        assert stream["state"] == "active"
        assert stream["viewers"] == 1
        assert stream["started_at"].endswith("+00:00")
        one = (await replica.get(f"/api/v1/streams/{sid.upper()}")).json()
        assert one == stream
    assert record.started_at > 0
    await replica.service.registry.end(sid)
    assert (await replica.get(f"/api/v1/streams/{sid}")).status_code == 404
    assert (await replica.get("/api/v1/streams")).json() == {"streams": []}


async def test_stream_api_rejects_bad_ids(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """A non-UUID is 400, an unknown stream 404; neither creates a series."""
    replica = await replicas(**engine)
    bad = await replica.get("/api/v1/streams/not-a-uuid")
    assert bad.status_code == 400
    assert "UUID" in bad.json()["error"]
    assert (await replica.get(f"/api/v1/streams/{new_stream_id()}")).status_code == 404
    assert replica.metrics.tracked_streams == 0


async def test_health_and_readiness(engine: dict[str, Any], replicas: Replicas) -> None:
    """/healthz is 200; /readyz is 200 once started with a reachable presence backend."""
    replica = await replicas(**engine)
    assert (await replica.get("/healthz")).json() == {"status": "ok"}
    ready = await replica.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["presence"] == engine["presence"]


class CountingStore:
    """The replica's own store, counting the listing reads that reach it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.listings = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_active(self) -> Any:
        self.listings += 1
        return await self._inner.list_active()


async def test_listing_flood_shares_one_snapshot(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """200 concurrent unauthenticated GET /api/v1/streams within one snapshot period
    cost one registry listing (it used to be one full scan per request); a start on
    this replica refreshes the snapshot at once."""
    replica = await replicas(**engine)
    registry = replica.service.registry
    store = CountingStore(registry._store)
    registry._store = store
    snapshot = listing_snapshot(replica.service)
    snapshot.clock = lambda: 0.0  # one snapshot period for the whole flood
    sid = new_stream_id()
    await registry.start(sid, "test-1", "live")
    async with httpx.AsyncClient(base_url=replica.http, timeout=30) as client:
        responses = await asyncio.gather(*(client.get("/api/v1/streams") for _ in range(200)))
        assert {r.status_code for r in responses} == {200}
        assert all([s["stream_id"] for s in r.json()["streams"]] == [sid] for r in responses)
        assert store.listings == 1
        other = new_stream_id()
        await registry.start(other, "test-1", "live")
        listed = (await client.get("/api/v1/streams")).json()["streams"]
        assert sorted(s["stream_id"] for s in listed) == sorted([sid, other])
        assert store.listings == 2
