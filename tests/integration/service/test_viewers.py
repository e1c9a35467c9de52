"""The viewer WebSocket contract (design section 6), on the memory and the Redis engine,
with real ``websockets`` clients against a replica served by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from nova_testing.ws_messages import recv_json
from streaming_metrics import definitions as d

Replicas = Callable[..., Awaitable[Any]]
Wait = Callable[..., Awaitable[Any]]


async def recv_until(
    ws: ClientConnection, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    while True:
        msg = await recv_json(ws)
        if predicate(msg):
            return msg


async def close_code(ws: ClientConnection, seconds: float = 10.0) -> int | None:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), seconds)
    assert ws.close_code is not None or ws.protocol.close_rcvd is None
    return ws.close_code


def connections(replica: Any, sid: str) -> float | None:
    return replica.sample(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": sid})


async def test_non_uuid_stream_id_closes_4400(engine: dict[str, Any], replicas: Replicas) -> None:
    """A stream ID that is not a UUID is closed with 4400 and creates no series."""
    replica = await replicas(**engine)
    async with connect(replica.ws("not-a-uuid")) as ws:
        assert await close_code(ws) == 4400
    assert (
        replica.sample("nova_streaming_websocket_rejected_total", {"reason": "invalid_stream_id"})
        == 1.0
    )
    assert replica.metrics.tracked_streams == 0


async def test_unknown_stream_closes_4404(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """A well-formed ID of a stream that is not active is closed with 4404, no series."""
    replica = await replicas(**engine)
    sid = new_stream_id()
    async with connect(replica.ws(sid)) as ws:
        assert await close_code(ws) == 4404
    assert connections(replica, sid) is None
    assert replica.metrics.tracked_streams == 0


async def test_hello_and_coalesced_viewer_counts(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """Viewers get hello with the count, then viewers messages as others join and leave;
    the connections gauge and the owner's peak follow."""
    replica = await replicas(**engine)
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as first:
        hello = await recv_json(first)
        assert hello == {"type": "hello", "stream_id": sid, "viewers": 1}
        async with connect(replica.ws(sid)) as second:
            assert (await recv_json(second))["viewers"] == 2
            update = await recv_until(first, lambda m: m["type"] == "viewers")
            assert update == {"type": "viewers", "stream_id": sid, "viewers": 2}
            assert connections(replica, sid) == 2.0
            assert replica.sample(d.PEAK_VIEWERS.name, {"stream_id": sid}) == 2.0
        update = await recv_until(first, lambda m: m["type"] == "viewers")
        assert update["viewers"] == 1
        await wait(lambda: connections(replica, sid) == 1.0, what="one viewer left")
    await wait(lambda: connections(replica, sid) == 0.0, what="no viewers")
    assert replica.sample(d.PEAK_VIEWERS.name, {"stream_id": sid}) == 2.0
    assert replica.service.presence.global_count(sid) == 0


async def test_stream_ended_while_watching(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """Ending a stream sends stream_ended then closes 1000; the end is observed once with
    the final viewer count and the stream's info series goes."""
    replica = await replicas(**engine)
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    clients = [await connect(replica.ws(sid)) for _ in range(3)]
    try:
        for ws in clients:
            await recv_json(ws)
        assert await replica.service.registry.end(sid, reason="publish_done") is True
        for ws in clients:
            msg = await recv_until(ws, lambda m: m["type"] == "stream_ended")
            assert msg == {"type": "stream_ended", "stream_id": sid, "reason": "publish_done"}
            assert await close_code(ws) == 1000
    finally:
        for ws in clients:
            await ws.close()
    assert await replica.service.registry.end(sid) is False
    await wait(lambda: connections(replica, sid) == 0.0, what="viewers uncounted")
    labels = {"stream_type": "live"}
    assert replica.sample(d.STREAM_DURATION_SECONDS.name + "_count", labels) == 1.0
    assert replica.sample(d.VIEWERS_TOTAL.name + "_sum", {"region": "test-1"}) == 3.0
    assert replica.sample(d.ACTIVE_STREAMS.name, {"region": "test-1"}) == 0.0
    info = {"stream_id": sid, "region": "test-1", "stream_type": "live"}
    assert replica.sample(d.STREAM_INFO.name, info) is None
    # A viewer arriving after the end is refused.
    async with connect(replica.ws(sid)) as late:
        assert await close_code(late) == 4404


async def test_connection_cap_answers_1013(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """Beyond NOVA_MAX_CONNECTIONS a viewer is closed with 1013 and not counted."""
    replica = await replicas(max_connections=2, **engine)
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as a, connect(replica.ws(sid)) as b:
        await recv_json(a)
        await recv_json(b)
        async with connect(replica.ws(sid)) as c:
            assert await close_code(c) == 1013
        assert connections(replica, sid) == 2.0
        assert (
            replica.sample("nova_streaming_websocket_rejected_total", {"reason": "over_capacity"})
            == 1.0
        )


async def test_client_that_never_reads_is_dropped(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """A viewer that stops reading stops answering pings and is dropped and uncounted,
    while a reading viewer of the same stream stays."""
    replica = await replicas(ws_ping_interval=0.2, ws_ping_timeout=0.5, **engine)
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    # max_queue=1: once one message is buffered the client stops reading the socket,
    # so it never sees a ping again (the library's own reader pauses).
    stuck = await connect(replica.ws(sid), max_queue=1, ping_interval=None, close_timeout=0.2)

    async def churn() -> None:
        # Count updates keep arriving, so the stuck client's queue overflows.
        while True:
            async with connect(replica.ws(sid)) as extra:
                await recv_json(extra)
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.3)

    try:
        async with connect(replica.ws(sid)) as reader:
            await recv_json(reader)
            churner = asyncio.create_task(churn())
            try:
                # Reader + stuck are 2 at least; 1 only once the stuck one is gone.
                await wait(lambda: replica.service.hub.total == 1, within=15, what="stuck dropped")
            finally:
                churner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await churner
            await wait(lambda: connections(replica, sid) == 1.0, what="only the reader")
            assert replica.service.hub.local_viewers(sid) == 1
            await recv_until(reader, lambda m: m["type"] == "viewers" and m["viewers"] == 1)
    finally:
        await stuck.close()


async def test_server_shutdown_uncounts_every_viewer(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """Stopping the server closes every viewer and records each disconnection."""
    replica = await replicas(**engine)
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    clients = [await connect(replica.ws(sid)) for _ in range(5)]
    for ws in clients:
        await recv_json(ws)
    assert connections(replica, sid) == 5.0
    await replica.stop()
    for ws in clients:
        code = await close_code(ws)
        assert code in (1001, 1012)
    assert connections(replica, sid) == 0.0
    assert replica.service.hub.total == 0


async def test_thousand_concurrent_joins_and_leaves_are_exact(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """1,000 viewers joining and leaving at once: every one counted once and uncounted
    once; the gauges, the peak and the global count end exactly right."""
    replica = await replicas(**engine)
    streams = [new_stream_id(), new_stream_id()]
    for sid in streams:
        await replica.service.registry.start(sid, "test-1", "live")
    n = 1000
    hold = asyncio.Event()
    joined = 0
    all_joined = asyncio.Event()

    async def viewer(i: int) -> None:
        nonlocal joined
        sid = streams[i % 2]
        async with connect(replica.ws(sid), open_timeout=60) as ws:
            hello = await recv_json(ws, seconds=60)
            assert hello["type"] == "hello"
            joined += 1
            if joined == n:
                all_joined.set()
            if i % 8 < 2:
                return  # a quarter leave at once, while others still join
            await hold.wait()

    tasks = [asyncio.create_task(viewer(i)) for i in range(n)]
    await asyncio.wait_for(all_joined.wait(), 120)
    expected = {sid: n // 2 - n // 8 for sid in streams}
    for sid in streams:
        await wait(lambda s=sid: connections(replica, s) == float(expected[s]), what="joins")
        await wait(
            lambda s=sid: replica.service.presence.global_count(s) == expected[s],
            what="global count",
        )
    hold.set()
    await asyncio.gather(*tasks)
    for sid in streams:
        await wait(lambda s=sid: connections(replica, s) == 0.0, what="all left")
        assert replica.service.presence.global_count(sid) == 0
        peak = replica.sample(d.PEAK_VIEWERS.name, {"stream_id": sid})
        assert peak is not None and expected[sid] <= peak <= n // 2
    assert replica.service.hub.total == 0


async def test_viewer_messages_are_discarded_and_oversize_ones_close_it(
    engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """Text a viewer sends is read and ignored (it stays counted); a message over the
    64 KiB cap closes that viewer (1009) and uncounts it, nothing else changes."""
    replica = await replicas(**engine)
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid), max_size=None) as chatty, connect(replica.ws(sid)) as quiet:
        await recv_json(chatty)
        await recv_json(quiet)
        for _ in range(200):
            await chatty.send("x" * 1000)
        await chatty.send(b"\x00" * 60_000)
        # uvicorn reads on only after the app took the previous message: the pong proves
        # the endpoint consumed everything above.
        await asyncio.wait_for(await chatty.ping(), 10)
        assert connections(replica, sid) == 2.0
        await chatty.send("y" * (64 * 1024 + 1))
        assert await close_code(chatty) == 1009
        await wait(lambda: connections(replica, sid) == 1.0, what="oversize viewer uncounted")
        assert replica.service.hub.total == 1
        await asyncio.wait_for(await quiet.ping(), 10)


async def test_a_joiner_whose_hello_differs_hears_the_settled_count(
    replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """The last broadcast said 2; a third viewer joins (hello 3) and another leaves in
    the same update interval, so the count is 2 again: the next update still tells the
    joiner 2 (it used to compare with the last broadcast only and send nothing, leaving
    the joiner on 3 for good). Ticks are driven by hand: no timing involved."""
    replica = await replicas(presence="memory", viewer_update_interval=3600.0)
    hub = replica.service.hub
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as first, connect(replica.ws(sid)) as second:
        assert (await recv_json(first))["viewers"] == 1
        assert (await recv_json(second))["viewers"] == 2
        hub.tick()
        assert (await recv_json(first))["viewers"] == 2
        async with connect(replica.ws(sid)) as joiner:
            assert (await recv_json(joiner))["viewers"] == 3
            await second.close()
            await wait(lambda: hub.local_viewers(sid) == 2, what="second left")
            hub.tick()
            update = await recv_json(joiner)
            assert update == {"type": "viewers", "stream_id": sid, "viewers": 2}
            assert (await recv_json(first))["viewers"] == 2
