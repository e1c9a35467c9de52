"""Races of the stream registry (issue 9, items 4 and 5), driven step by step on every
engine: the replica's real store, with a pause injected right after it removed a stream,
lets a start() arrive exactly inside an end; and a lost ``takeover`` message is
corrected from the store by the maintenance pass."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from nova_streaming.registry import StreamEnded
from streaming_metrics import definitions as d

Replicas = Callable[..., Awaitable[Any]]
Wait = Callable[..., Awaitable[Any]]


class PausingStore:
    """The replica's own store; ``remove`` pauses after a successful removal until
    ``release`` is set (the window a concurrent start() used to fall into)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.removed = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def remove(self, stream_id: str, *, if_interrupted_by: str | None = None) -> Any:
        record = await self._inner.remove(stream_id, if_interrupted_by=if_interrupted_by)
        if record is not None:
            self.removed.set()
            await self.release.wait()
        return record


class DroppingStore:
    """The replica's own store, whose ``takeover`` announcements are lost on the way."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def publish(self, message: str) -> None:
        if '"kind":"takeover"' not in message:
            await self._inner.publish(message)


def active(replica: Any) -> float:
    return float(replica.sample(d.ACTIVE_STREAMS.name, {"region": "test-1"}) or 0.0)


def ended_count(replica: Any) -> float:
    return float(
        replica.sample(d.STREAM_DURATION_SECONDS.name + "_count", {"stream_type": "live"}) or 0.0
    )


def info(replica: Any, sid: str) -> float | None:
    labels = {"stream_id": sid, "region": "test-1", "stream_type": "live"}
    return replica.sample(d.STREAM_INFO.name, labels)


def start_is_waiting(registry: Any, sid: str, restart: asyncio.Task[Any]) -> bool:
    """The concurrent start() has done what it can: finished (the old code) or queued
    behind the end on the stream's lock (the fix)."""
    if restart.done():
        return True
    locks = getattr(registry, "_locks", None)
    held = getattr(locks, "_locks", {}).get(sid)
    return held is not None and held[1] >= 2


async def test_start_during_a_grace_end_lets_the_end_finish_once(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """The grace timer has removed the stream and is recording its end when a re-push
    start()s it: the end is still recorded exactly once (it used to be cancelled: never
    recorded, start time lost) and the re-push starts a new broadcast counted once."""
    clock = [10_000.0]
    replica = await replicas(**engine)
    registry = replica.service.registry
    registry._wall = lambda: clock[0]
    store = PausingStore(registry._store)
    registry._store = store
    ends: list[StreamEnded] = []
    registry.add_end_listener(ends.append)
    sid = new_stream_id()
    first = await registry.start(sid, "test-1", "live")
    clock[0] += 40.0
    assert await registry.interrupt(sid, 0.0, reason="rtmp_connection_failed")
    await asyncio.wait_for(store.removed.wait(), 10)
    restart = asyncio.create_task(registry.start(sid, "test-1", "live"))
    await wait(lambda: start_is_waiting(registry, sid, restart), what="start() arrived")
    store.release.set()
    second = await restart
    await wait(lambda: ended_count(replica) == 1, what="the grace end recorded")
    assert [e.reason for e in ends] == ["rtmp_connection_failed"]
    assert ends[0].duration_seconds == 40.0
    duration = d.STREAM_DURATION_SECONDS.name + "_sum"
    assert replica.sample(duration, {"stream_type": "live"}) == 40.0
    assert second.started_at == first.started_at + 40.0  # a new broadcast, not a take-over
    assert active(replica) == 1.0 and info(replica, sid) == 1.0
    assert sid in registry.owned()
    got = await registry.get(sid)
    assert got is not None and got.state == "active"
    await registry.end(sid)
    assert ended_count(replica) == 2 and active(replica) == 0.0


async def test_end_racing_a_fresh_start_does_not_end_the_new_broadcast(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """An end has removed the stream and is recording it when a fresh start() of the
    same id arrives: the old broadcast ends once and the new one stays counted (the end
    used to pop the new record and end the new broadcast's metrics)."""
    clock = [20_000.0]
    replica = await replicas(**engine)
    registry = replica.service.registry
    registry._wall = lambda: clock[0]
    store = PausingStore(registry._store)
    registry._store = store
    sid = new_stream_id()
    await registry.start(sid, "test-1", "live")
    clock[0] += 30.0
    ending = asyncio.create_task(registry.end(sid, reason="publish_done"))
    await asyncio.wait_for(store.removed.wait(), 10)
    restart = asyncio.create_task(registry.start(sid, "test-1", "live"))
    await wait(lambda: start_is_waiting(registry, sid, restart), what="start() arrived")
    store.release.set()
    assert await ending is True
    second = await restart
    assert second.started_at == clock[0]
    assert ended_count(replica) == 1
    assert active(replica) == 1.0
    assert info(replica, sid) == 1.0
    assert registry.owned()[sid].started_at == second.started_at
    assert await registry.is_active(sid)


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_engine(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The engines where replicas share state (a take-over needs two replicas)."""
    if request.param == "redis":
        return {"presence": "redis", "redis_url": request.getfixturevalue("redis_server").url}
    cluster = request.getfixturevalue("redis_cluster")
    return {"presence": "redis", "redis_url": cluster.url, "redis_prefix": f"t{uuid.uuid4().hex}"}


async def test_missed_takeover_message_is_reconciled_from_the_store(
    shared_engine: dict[str, Any],
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    wait: Wait,
) -> None:
    """B takes a stream over from A and its ``takeover`` message is lost: A's next
    maintenance pass reads the owner from the store and stops exporting the stream
    (it used to stay: active_streams and stream_info counted on both)."""
    a = await replicas(**shared_engine)
    b = await replicas(**shared_engine)
    sid = new_stream_id()
    await a.service.registry.start(sid, "test-1", "live")
    b.service.registry._store = DroppingStore(b.service.registry._store)
    await b.service.registry.start(sid, "test-1", "live")
    assert active(b) == 1.0 and info(b, sid) == 1.0
    await wait(lambda: sid not in a.service.registry.owned(), what="A reconciled")
    assert active(a) == 0.0 and info(a, sid) is None
    assert active(b) == 1.0 and info(b, sid) == 1.0
    record = await a.service.registry.get(sid)
    assert record is not None and record.owner == b.settings.replica_id
    assert await b.service.registry.end(sid, reason="publish_done")
    assert ended_count(b) == 1.0 and ended_count(a) == 0.0
