"""The stream registry contract (the seam the ingest calls), on both engines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from nova_streaming.registry import INTERRUPTED, InvalidStreamId, StreamEnded
from streaming_metrics import definitions as d

Replicas = Callable[..., Awaitable[Any]]
Wait = Callable[..., Awaitable[Any]]


async def _is_none(value: Awaitable[Any]) -> bool:
    return await value is None


def active(replica: Any) -> float | None:
    return replica.sample(d.ACTIVE_STREAMS.name, {"region": "test-1"})


def duration_count(replica: Any, stream_type: str = "live") -> float | None:
    return replica.sample(d.STREAM_DURATION_SECONDS.name + "_count", {"stream_type": stream_type})


async def test_start_records_once_and_end_exactly_once(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """start() makes the stream active and counted once (even if repeated); of many
    concurrent end() calls exactly one wins and observes the duration once."""
    replica = await replicas(**engine)
    registry = replica.service.registry
    sid = new_stream_id()
    record = await registry.start(sid, "test-1", "pre-recorded")
    again = await registry.start(sid, "test-1", "pre-recorded")
    assert again.started_at == record.started_at
    assert active(replica) == 1.0
    assert await registry.is_active(sid)
    assert [r.stream_id for r in await registry.list_active()] == [sid]
    got = await registry.get(sid)
    assert got is not None and got.owner == registry.replica_id
    assert got.stream_type == "pre-recorded"
    results = await asyncio.gather(*(registry.end(sid, reason="done") for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    assert active(replica) == 0.0
    assert duration_count(replica, "pre-recorded") == 1.0
    assert not await registry.is_active(sid)
    assert await registry.get(sid) is None
    assert await registry.end(sid) is False


async def test_end_reports_real_duration_and_final_global_count(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """The end observes the duration from the original start and the global count."""
    clock = [1_000.0]
    replica = await replicas(**engine)
    registry = replica.service.registry
    registry._wall = lambda: clock[0]
    sid = new_stream_id()
    await registry.start(sid, "test-1", "live")
    replica.service.presence.set_local(sid, 7)
    clock[0] += 125.0
    events: list[StreamEnded] = []
    registry.add_end_listener(events.append)
    assert await registry.end(sid, reason="publish_done")
    assert replica.sample(d.STREAM_DURATION_SECONDS.name + "_sum", {"stream_type": "live"}) == 125.0
    assert replica.sample(d.VIEWERS_TOTAL.name + "_sum", {"region": "test-1"}) == 7.0
    assert events == [StreamEnded(sid, "publish_done", 7, 125.0)]


async def test_takeover_keeps_start_time(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """An interrupted stream restarted by a re-push keeps its original start time and is
    not counted as a second start."""
    clock = [5_000.0]
    replica = await replicas(**engine)
    registry = replica.service.registry
    registry._wall = lambda: clock[0]
    sid = new_stream_id()
    first = await registry.start(sid, "test-1", "live")
    assert await registry.interrupt(sid, 30.0)
    got = await registry.get(sid)
    assert got is not None and got.state == INTERRUPTED
    assert await registry.is_active(sid)
    clock[0] += 10.0
    second = await registry.start(sid, "test-1", "live")
    assert second.started_at == first.started_at
    assert second.state == "active"
    assert active(replica) == 1.0
    clock[0] += 20.0
    assert await registry.end(sid)
    assert replica.sample(d.STREAM_DURATION_SECONDS.name + "_sum", {"stream_type": "live"}) == 30.0


async def test_interrupt_without_repush_ends_after_grace(
    engine: dict[str, Any],
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    wait: Wait,
) -> None:
    """An interrupted stream nobody re-pushes ends with the given reason after the grace."""
    replica = await replicas(**engine)
    registry = replica.service.registry
    events: list[StreamEnded] = []
    registry.add_end_listener(events.append)
    sid = new_stream_id()
    await registry.start(sid, "test-1", "live")
    assert await registry.interrupt(sid, 0.3, reason="rtmp_connection_failed")
    await wait(lambda: events, what="grace end")
    assert events[0].reason == "rtmp_connection_failed"
    assert not await registry.is_active(sid)
    assert duration_count(replica) == 1.0
    assert active(replica) == 0.0


async def test_interrupt_of_unknown_stream_is_refused(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """interrupt() of a stream this replica does not own returns False."""
    replica = await replicas(**engine)
    assert await replica.service.registry.interrupt(new_stream_id(), 1.0) is False


async def test_authorization_reaches_the_receiver_and_expires(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """authorize() is readable through authorization() until its TTL runs out."""
    replica = await replicas(**engine)
    registry = replica.service.registry
    sid = new_stream_id()
    assert await registry.authorization(sid) is None
    await registry.authorize(sid, "pre-recorded", 0.3)
    assert await registry.authorization(sid) == "pre-recorded"
    await wait(lambda: _is_none(registry.authorization(sid)), what="authorization expired")


async def test_bad_inputs_are_rejected(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """Non-UUID IDs, unknown stream types and bad regions raise ValueError, create nothing."""
    replica = await replicas(**engine)
    registry = replica.service.registry
    with pytest.raises(InvalidStreamId):
        await registry.start("nope", "test-1", "live")
    with pytest.raises(ValueError, match="stream_type"):
        await registry.start(new_stream_id(), "test-1", "vod")
    with pytest.raises(ValueError, match="region"):
        await registry.start(new_stream_id(), "Bad Region", "live")
    with pytest.raises(InvalidStreamId):
        await registry.end("nope")
    assert await registry.list_active() == []
    assert replica.metrics.tracked_streams == 0
