"""The graceful drain of one replica (what SIGTERM runs before shutdown), on both
presence engines, with real ``websockets`` viewers of a replica served by uvicorn.
The two-replica hand-over through nginx-rtmp is tests/integration/replicas/
test_graceful_rollout.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from nova_streaming.drain import ShutdownDrain
from nova_streaming.service_metrics import WEBSOCKET_REJECTED
from streaming_metrics import definitions as d

Replicas = Callable[..., Awaitable[Any]]


async def closed_with(ws: Any) -> int | None:
    """Read until the server closes; the close code it sent."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    code: int | None = ws.close_code
    return code


async def test_drain_goes_unready_first_then_closes_viewers_with_1001(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """``begin`` makes /readyz 503 (``draining``) while viewers are still served;
    ``run`` closes each viewer with 1001 and uncounts it; a viewer arriving afterwards
    is refused with 1001 (counted ``shutting_down``), so it reconnects elsewhere."""
    replica = await replicas(**engine)
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    clients = [await connect(replica.ws(sid)) for _ in range(3)]
    for ws in clients:
        await asyncio.wait_for(ws.recv(), 10)  # hello
    ready = await replica.get("/readyz")
    assert ready.status_code == 200 and ready.json()["draining"] is False

    drain = ShutdownDrain(replica.service)
    drain.begin()
    unready = await replica.get("/readyz")
    assert unready.status_code == 503
    assert unready.json()["draining"] is True
    assert replica.service.hub.total == 3  # still serving
    assert (await replica.get("/healthz")).status_code == 200

    report = await drain.run(deadline=asyncio.get_running_loop().time() + 5)
    assert report.viewers_closed == 3
    assert report.handed_over == set() and report.not_taken_over == set()
    for ws in clients:
        assert await closed_with(ws) == 1001
    assert replica.sample(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": sid}) == 0
    assert replica.service.hub.total == 0
    assert replica.service.presence.local_count(sid) == 0

    late = await connect(replica.ws(sid))
    assert await closed_with(late) == 1001
    rejected = replica.sample(WEBSOCKET_REJECTED, {"reason": "shutting_down"})
    assert rejected == 1


async def test_a_viewer_still_being_admitted_when_the_drain_starts_is_closed_uncounted(
    replicas: Replicas, new_stream_id: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A viewer whose admission (the registry check) is under way when the drain closes
    the hub is closed with 1001 instead of joining a hub that has already said goodbye
    (it would otherwise stay connected and counted until the server's own shutdown)."""
    replica = await replicas(presence="memory")
    sid = new_stream_id()
    registry = replica.service.registry
    await registry.start(sid, "test-1", "live")
    entered, gate = asyncio.Event(), asyncio.Event()
    is_active = registry.is_active

    async def held_is_active(stream_id: str) -> bool:
        entered.set()
        await gate.wait()
        return await is_active(stream_id)

    monkeypatch.setattr(registry, "is_active", held_is_active)

    async def open_viewer() -> Any:
        return await connect(replica.ws(sid))

    connecting = asyncio.create_task(open_viewer())
    await asyncio.wait_for(entered.wait(), 10)
    await ShutdownDrain(replica.service).run(deadline=asyncio.get_running_loop().time() + 5)
    gate.set()
    ws = await connecting
    assert await closed_with(ws) == 1001
    assert replica.service.hub.total == 0
    assert replica.service.presence.local_count(sid) == 0
    assert not replica.sample(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": sid})
