"""The duration of a stream that ends because no re-push came: up to when its media
stopped (the relay's drop, or a dead owner's last heartbeat), never including the grace
spent waiting. On every path: the owner's own grace timer (memory, one Redis, Redis
Cluster), another replica's sweep, and a same-id restart's ``owner_lost`` end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from nova_streaming.registry import StreamEnded
from streaming_metrics import definitions as d

Replicas = Callable[..., Awaitable[Any]]
Wait = Callable[..., Awaitable[Any]]


def duration_sum(replica: Any) -> float | None:
    return replica.sample(d.STREAM_DURATION_SECONDS.name + "_sum", {"stream_type": "live"})


async def test_grace_end_counts_the_duration_up_to_the_interruption(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """Published 40 s, then the relay drops and nothing comes back: the owner's grace
    end records 40 s, however late (on the wall clock) the grace runs out."""
    clock = [1_000.0]
    replica = await replicas(**engine)
    registry = replica.service.registry
    registry._wall = lambda: clock[0]
    events: list[StreamEnded] = []
    registry.add_end_listener(events.append)
    sid = new_stream_id()
    await registry.start(sid, "test-1", "live")
    clock[0] += 40.0
    assert await registry.interrupt(sid, 0.3, reason="rtmp_connection_failed")
    clock[0] += 100.0  # the wall clock when the grace runs out, well after the drop
    await wait(lambda: events, what="grace end")
    assert events == [StreamEnded(sid, "rtmp_connection_failed", 0, 40.0)]
    assert duration_sum(replica) == 40.0


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_engine(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The engines with more than one replica: one Redis, a Redis Cluster."""
    if request.param == "redis":
        return {"presence": "redis", "redis_url": request.getfixturevalue("redis_server").url}
    cluster = request.getfixturevalue("redis_cluster")
    return {
        "presence": "redis",
        "redis_url": cluster.url,
        "redis_prefix": f"t{uuid.uuid4().hex[:10]}",
    }


async def test_sweep_end_counts_the_duration_up_to_the_interruption(
    shared_engine: dict[str, Any],
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    wait: Wait,
) -> None:
    """The owner's own grace timer never runs: another replica's sweep ends the stream
    and records the duration up to the drop the store recorded, not up to its sweep."""
    owner = await replicas(**shared_engine)
    other = await replicas(**shared_engine)
    owner_clock, other_clock = [1_000.0], [1_000.0]
    owner.service.registry._wall = lambda: owner_clock[0]
    other.service.registry._wall = lambda: other_clock[0]
    events: list[StreamEnded] = []
    other.service.registry.add_end_listener(events.append)
    sid = new_stream_id()
    await owner.service.registry.start(sid, "test-1", "live")
    owner_clock[0] += 40.0
    assert await owner.service.registry.interrupt(sid, 0.3, reason="rtmp_connection_failed")
    owner.service.registry._timers.pop(sid).cancel()  # the owner's timer does not run
    other_clock[0] += 4_000.0  # the sweeper's clock: long past the grace and its margin
    await wait(lambda: events, what="sweep end")
    assert events == [StreamEnded(sid, "rtmp_connection_failed", 0, 40.0)]
    assert duration_sum(other) == 40.0


async def test_live_owner_taken_for_dead_records_its_own_drop(
    shared_engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """An owner taken for dead (its stream orphaned with its last heartbeat as the media
    stop) whose relay then really drops: the end counts up to the drop it reports."""
    clock = [1_000.0]
    owner = await replicas(**shared_engine)
    registry = owner.service.registry
    registry._wall = lambda: clock[0]
    registry.store._wall = lambda: clock[0]
    registry._loop_task.cancel()  # no re-assert in between: the orphan mark stays
    events: list[StreamEnded] = []
    registry.add_end_listener(events.append)
    sid = new_stream_id()
    await registry.start(sid, "test-1", "live")
    clock[0] += 40.0
    await registry.store._orphan_streams_of(owner.service.presence.instance_id)
    orphan = await registry.get(sid)
    assert orphan is not None and orphan.orphaned and orphan.interrupted_at is not None
    clock[0] += 10.0
    assert await registry.interrupt(sid, 0.3, reason="rtmp_connection_failed")
    await wait(lambda: events, what="grace end")
    assert events == [StreamEnded(sid, "rtmp_connection_failed", 0, 50.0)]


async def test_same_id_restart_ends_old_streams_at_the_last_heartbeat(
    shared_engine: dict[str, Any],
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    wait: Wait,
) -> None:
    """A replica with an explicit id dies (its loops stop, nothing cleaned up) and comes
    back under the same id once its heartbeat has lapsed: its old stream ends as
    ``owner_lost`` with the duration up to the interruption time the store recorded
    (the old process's last heartbeat plus two sync intervals, before the restart), not
    up to the restart plus the grace."""
    same = {**shared_engine, "replica_id": f"pod-{uuid.uuid4().hex[:6]}", "stream_grace": 3.0}
    old = await replicas(**same)
    sid = new_stream_id()
    record = await old.service.registry.start(sid, "test-1", "live")
    presence = old.service.presence
    beat = await _deadline(presence)
    await wait(lambda: _beat_after(presence, beat), what="a heartbeat while it streams")
    for task in [*presence._tasks, old.service.registry._loop_task]:
        task.cancel()  # the crash: no heartbeat, no cleanup
    await wait(lambda: _not(presence.instance_alive(presence.instance_id)), what="heartbeat lapsed")
    restarted_at = time.time()
    new = await replicas(**same)
    events: list[StreamEnded] = []
    new.service.registry.add_end_listener(events.append)
    orphan = await wait(lambda: _orphaned(new, sid), what="the old stream orphaned")
    assert orphan.interrupted_at is not None
    assert record.started_at <= orphan.interrupted_at < restarted_at
    await wait(lambda: events, within=15, what="owner_lost end")
    [ended] = events
    assert ended.reason == "owner_lost"
    assert ended.duration_seconds == pytest.approx(orphan.interrupted_at - record.started_at)


async def _not(value: Awaitable[Any]) -> bool:
    return not await value


async def _orphaned(replica: Any, sid: str) -> Any:
    record = await replica.service.registry.get(sid)
    return record if record is not None and record.orphaned else None


async def _deadline(presence: Any) -> float:
    [score] = await presence.commands(
        [("zscore", presence.global_key("replicas"), presence.instance_id)]
    )
    return float(score)


async def _beat_after(presence: Any, deadline: float) -> bool:
    return await _deadline(presence) > deadline
