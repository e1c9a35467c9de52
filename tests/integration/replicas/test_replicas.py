"""Multi-replica paths of the service and the RTMP ingest (design sections 3, 5, 6):
an authorization and an end crossing replicas, who exports what, the owner killed
(take-over by a re-push, or the owner_lost reaper), an owner that does not answer a
routed end, and two renditions of one stream. Real Redis, nginx-rtmp, ffmpeg, crafted
RTMP relays, WebSocket viewers; replicas in this process or as subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from nova_streaming.tokens import publish_token
from nova_testing.ffmpeg import ffmpeg, stop_ffmpeg
from nova_testing.waiting import wait_for
from streaming_metrics import definitions as d

pytestmark = pytest.mark.slow

REGION = "test-1"
ACTIVE = d.ACTIVE_STREAMS.name
INFO = d.STREAM_INFO.name
PEAK = d.PEAK_VIEWERS.name
CONNECTIONS = d.WEBSOCKET_CONNECTIONS.name
BITRATE = d.QUALITY_BITRATE_KBPS.name
LATENCY_COUNT = d.RTMP_INGESTION_LATENCY_SECONDS.name + "_count"
DURATION_COUNT = d.STREAM_DURATION_SECONDS.name + "_count"
DURATION_SUM = d.STREAM_DURATION_SECONDS.name + "_sum"
ERRORS = d.BROADCAST_ERRORS.name + "_total"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# --- helpers ---------------------------------------------------------------------------


def parse_metrics(text: str) -> Samples:
    """Exposition text as ``{(sample name, sorted labels): value}``."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def stream_series(replica: Any, stream_id: str) -> set[str]:
    """Names of the samples a replica exports with ``stream_id`` as a label."""
    return {
        sample.name
        for family in replica.metrics.registry.collect()
        for sample in family.samples
        if sample.labels.get("stream_id") == stream_id
    }


def count(replica: Any, name: str, **labels: str) -> float:
    return float(replica.sample(name, **labels) or 0.0)


async def post(base: str, path: str, body: str) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.post(
            path, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        return response.status_code


def callback_form(secret: str, stream_id: str, call: str = "publish") -> str:
    """An on_publish / on_publish_done body as nginx sends it (its fields, then the query)."""
    fields = {"app": "live", "addr": "127.0.0.1", "call": call, "name": stream_id}
    if call == "publish":
        fields["type"] = "live"
    fields["token"] = publish_token(secret, stream_id)
    return "&".join(f"{k}={v}" for k, v in fields.items())


async def recv_json(ws: ClientConnection, seconds: float = 15.0) -> dict[str, Any]:
    data = await asyncio.wait_for(ws.recv(), seconds)
    assert isinstance(data, str)
    result: dict[str, Any] = json.loads(data)
    return result


async def until_viewers(ws: ClientConnection, viewers: int) -> None:
    """Read until a hello/viewers message reports ``viewers``."""
    while (msg := await recv_json(ws)).get("viewers") != viewers:
        assert msg["type"] in ("hello", "viewers"), msg


async def until_ended(ws: ClientConnection) -> dict[str, Any]:
    """Read until ``stream_ended`` (nothing but counts may come before it)."""
    while (msg := await recv_json(ws))["type"] != "stream_ended":
        assert msg["type"] in ("hello", "viewers"), msg
    return msg


def relay_ffmpeg(
    rtmp_port: int, name: str, secret: str
) -> contextlib.AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """ffmpeg publishing a small 15 fps pattern as ``name`` through nginx, with the token
    of its stream (``name`` may carry a ``_quality`` suffix); always stopped."""
    token = publish_token(secret, name.split("_", 1)[0])
    return ffmpeg(rtmp_port, name, f"token={token}", seconds=120, fps=15, bitrate="300k")


@contextlib.asynccontextmanager
async def feeding(pub: Any, start_ms: int = 0) -> AsyncIterator[None]:
    """A crafted relay sending 25 fps video (keyframe first) until the block exits."""

    async def feed() -> None:
        pub.video_config(start_ms)
        ts = start_ms
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                pub.video(ts, size=500, keyframe=ts == start_ms)
                await pub.drain()
                ts += 40
                await asyncio.sleep(0.04)

    task = asyncio.create_task(feed())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def last_heartbeat(cluster: Any, replica_id: str) -> float:
    """When the (just killed) process of ``replica_id`` last heartbeated, in seconds on
    the machine's clock: its deadline in ``{nova}:replicas`` minus the TTL (before
    the reaper removes it, a TTL after that heartbeat)."""
    redis = cluster.redis.client()
    try:
        entries = redis.zrange("{nova}:replicas", 0, -1, withscores=True)
    finally:
        redis.close()
    [deadline_ms] = [score for member, score in entries if member.startswith(f"{replica_id}#")]
    return float(deadline_ms) / 1000 - cluster.ttl


async def owner_of(replica: Any, stream_id: str) -> str | None:
    record = await replica.registry.get(stream_id)
    return None if record is None else str(record.owner)


# --- 1. authorization and end crossing replicas ----------------------------------------


async def test_publish_authorized_on_one_replica_is_owned_and_ended_by_the_receiver(
    cluster: Any,
) -> None:
    """nginx calls back replica A and pushes to B: B owns the stream and alone exports
    its owner series, A exports only its viewers' connections, every viewer sees the
    global count, and on_publish_done at A ends it on B exactly once."""
    a = await cluster.replica()
    b = await cluster.replica()
    nginx = cluster.nginx(a.http, b.ingest_port)
    sid = str(uuid.uuid4())
    async with relay_ffmpeg(nginx.rtmp_port, sid, cluster.secret) as proc:
        await wait_for(lambda: sid in b.registry.owned(), what="B owns the relayed stream")
        assert sid not in a.registry.owned()
        assert await a.registry.authorization(sid) == "live"
        viewers = [await connect(a.ws(sid)) for _ in range(2)]
        viewers.append(await connect(b.ws(sid)))
        try:
            for ws in viewers:
                await until_viewers(ws, 3)
            await wait_for(lambda: count(b, PEAK, stream_id=sid) == 3, what="B's peak")
            await wait_for(lambda: count(b, BITRATE, stream_id=sid, quality="240p") > 0)
            await wait_for(lambda: count(b, LATENCY_COUNT, quality="240p") >= 10)

            info = {"stream_id": sid, "region": REGION, "stream_type": "live"}
            assert count(b, ACTIVE, region=REGION) == 1
            assert count(b, INFO, **info) == 1
            assert count(b, CONNECTIONS, stream_id=sid) == 1
            assert count(a, ACTIVE, region=REGION) == 0
            assert count(a, CONNECTIONS, stream_id=sid) == 2
            assert stream_series(a, sid) == {CONNECTIONS}
            assert count(a, LATENCY_COUNT, quality="240p") == 0
            assert {INFO, PEAK, BITRATE, CONNECTIONS} <= stream_series(b, sid)

            await stop_ffmpeg(proc)
            for ws in viewers:
                assert (await until_ended(ws))["reason"] == "publish_done"
        finally:
            for ws in viewers:
                await ws.close()
    await wait_for(lambda: count(b, DURATION_COUNT, stream_type="live") == 1, what="end on B")
    assert not await a.registry.is_active(sid)
    # Past the interruption grace of the closed relay: nothing ends a second time.
    await asyncio.sleep(cluster.grace + 0.5)
    assert count(b, DURATION_COUNT, stream_type="live") == 1
    assert count(a, DURATION_COUNT, stream_type="live") == 0
    for replica in (a, b):
        assert count(replica, ACTIVE, region=REGION) == 0
        for error_type in ("rtmp_connection_failed", "timeout", "auth_rejected"):
            assert count(replica, ERRORS, error_type=error_type) == 0, error_type
    await wait_for(lambda: count(a, CONNECTIONS, stream_id=sid) == 0, what="A's viewers gone")


# --- 2. owner death and take-over ------------------------------------------------------


async def test_owner_killed_mid_broadcast_is_taken_over_keeping_its_start(cluster: Any) -> None:
    """The owning replica is SIGKILLed; the relay re-pushed to another replica (after the
    owner's heartbeat expired) continues the stream with its original start time, and
    the end is observed once, covering the whole broadcast."""
    owner = await cluster.process("owner-takeover")
    b = await cluster.replica(stream_grace=5.0)
    sid = str(uuid.uuid4())
    assert await post(b.http, "/rtmp/on_publish", callback_form(cluster.secret, sid)) == 200
    relay = await cluster.publisher(owner.ingest_port)
    await relay.publish(sid)
    async with feeding(relay):
        await wait_for(lambda: owner_of(b, sid), what="stream registered")
        assert await owner_of(b, sid) == "owner-takeover"
        first = await b.registry.get(sid)
        viewer = await connect(b.ws(sid))
        try:
            await until_viewers(viewer, 1)
            owner_metrics = parse_metrics(await owner.scrape())
            assert value(owner_metrics, ACTIVE, region=REGION) == 1
            assert value(owner_metrics, LATENCY_COUNT, quality="unknown") > 0
            owner.kill()
            # nginx re-pushes after push_reconnect; here once the owner is seen dead.
            redis = cluster.redis.client()
            try:
                await wait_for(
                    lambda: redis.hget(f"nova:stream:{{{sid}}}", "orphaned") == "1",
                    what="the owner seen dead",
                )
            finally:
                redis.close()
            repush = await cluster.publisher(b.ingest_port)
            await repush.publish(sid)
            async with feeding(repush, start_ms=60_000):
                await wait_for(lambda: sid in b.registry.owned(), what="taken over")
                record = await b.registry.get(sid)
                assert record is not None and first is not None
                assert record.started_at == first.started_at
                assert record.owner == b.settings.replica_id and record.state == "active"
                assert count(b, ACTIVE, region=REGION) == 1
                await wait_for(lambda: count(b, LATENCY_COUNT, quality="unknown") > 5)
                before = time.time()
                done = callback_form(cluster.secret, sid, call="publish_done")
                assert await post(b.http, "/rtmp/on_publish_done", done) == 200
                after = time.time()
            assert (await until_ended(viewer))["reason"] == "publish_done"
        finally:
            await viewer.close()
    assert count(b, DURATION_COUNT, stream_type="live") == 1
    duration = count(b, DURATION_SUM, stream_type="live")
    assert before - first.started_at <= duration <= after - first.started_at
    assert count(b, ACTIVE, region=REGION) == 0
    await asyncio.sleep(cluster.grace + 0.5)  # no reaper or grace end comes later
    assert count(b, DURATION_COUNT, stream_type="live") == 1
    assert count(b, ERRORS, error_type="rtmp_connection_failed") == 0


# --- 3. the owner_lost reaper ----------------------------------------------------------


async def test_dead_owner_without_repush_is_reaped_once_by_a_survivor(cluster: Any) -> None:
    """The owner is SIGKILLed and nothing re-pushes: after the heartbeat TTL and the
    grace, exactly one survivor ends the stream (owner_lost), every survivor's
    active_streams is back to 0 and the viewers on both survivors get stream_ended."""
    owner = await cluster.process("owner-reaped")
    b = await cluster.replica()
    c = await cluster.replica()
    sid = str(uuid.uuid4())
    assert await post(c.http, "/rtmp/on_publish", callback_form(cluster.secret, sid)) == 200
    relay = await cluster.publisher(owner.ingest_port)
    await relay.publish(sid)
    async with feeding(relay):
        await wait_for(lambda: owner_of(b, sid), what="stream registered")
        started = await b.registry.get(sid)
        assert started is not None and started.owner == "owner-reaped"
        viewers = [await connect(b.ws(sid)), await connect(c.ws(sid))]
        try:
            for ws in viewers:
                await until_viewers(ws, 2)
            owner.kill()
            last_seen = last_heartbeat(cluster, "owner-reaped")
            for ws in viewers:
                assert (await until_ended(ws))["reason"] == "owner_lost"
        finally:
            for ws in viewers:
                await ws.close()
    survivors = (b, c)
    await wait_for(
        lambda: sum(count(r, DURATION_COUNT, stream_type="live") for r in survivors) == 1,
        what="one end observed",
    )
    [ender] = [r for r in survivors if count(r, DURATION_COUNT, stream_type="live")]
    # The end carries the duration up to the dead owner's last heartbeat (when it was
    # last seen alive), from the stream's real start; 10 ms for the heartbeat's
    # millisecond resolution on Redis's clock.
    duration = count(ender, DURATION_SUM, stream_type="live")
    assert duration >= last_seen - started.started_at - 0.01
    assert count(ender, d.VIEWERS_TOTAL.name + "_count", region=REGION) == 1
    assert not await b.registry.is_active(sid)
    await asyncio.sleep(cluster.grace + 0.5)  # the other survivor must not end it again
    assert sum(count(r, DURATION_COUNT, stream_type="live") for r in survivors) == 1
    for replica in survivors:
        assert count(replica, ACTIVE, region=REGION) == 0
        assert count(replica, INFO, stream_id=sid, region=REGION, stream_type="live") == 0
        await wait_for(lambda r=replica: count(r, CONNECTIONS, stream_id=sid) == 0)


# --- 4. a routed end the owner does not answer -----------------------------------------


async def test_routed_end_to_a_stopped_owner_falls_back_once(cluster: Any) -> None:
    """on_publish_done reaching a replica while the owner is SIGSTOPped: after the 2 s
    route timeout the caller ends the stream itself (one observation, its own active
    gauge nets 0); the owner, continued, hands the stream over without observing."""
    owner = await cluster.process("owner-paused")
    # A long grace: the owner_lost reaper must not beat the fallback to it.
    b = await cluster.replica(stream_grace=30.0)
    sid = str(uuid.uuid4())
    assert await post(b.http, "/rtmp/on_publish", callback_form(cluster.secret, sid)) == 200
    relay = await cluster.publisher(owner.ingest_port)
    await relay.publish(sid)
    async with feeding(relay):
        await wait_for(lambda: owner_of(b, sid), what="stream registered")
        viewer = await connect(b.ws(sid))
        try:
            await until_viewers(viewer, 1)
            owner_metrics = parse_metrics(await owner.scrape())
            assert value(owner_metrics, ACTIVE, region=REGION) == 1
            owner.signal(signal.SIGSTOP)
            try:
                done = callback_form(cluster.secret, sid, call="publish_done")
                assert await post(b.http, "/rtmp/on_publish_done", done) == 200
                assert (await until_ended(viewer))["reason"] == "publish_done"
                assert count(b, DURATION_COUNT, stream_type="live") == 1
                assert count(b, ACTIVE, region=REGION) == 0
            finally:
                owner.signal(signal.SIGCONT)
        finally:
            await viewer.close()

        async def owner_handed_over() -> bool:
            samples = parse_metrics(await owner.scrape())
            return value(samples, ACTIVE, region=REGION) == 0

        await wait_for(owner_handed_over, what="the continued owner hands over")
    await relay.close()  # the owner's relay stops after the end: not a failure
    await asyncio.sleep(cluster.grace + 0.5)
    owner_metrics = parse_metrics(await owner.scrape())
    assert value(owner_metrics, DURATION_COUNT, stream_type="live") == 0
    assert value(owner_metrics, ACTIVE, region=REGION) == 0
    assert value(owner_metrics, ERRORS, error_type="rtmp_connection_failed") == 0
    assert count(b, DURATION_COUNT, stream_type="live") == 1
    assert count(b, ACTIVE, region=REGION) == 0
    assert not await b.registry.is_active(sid)


# --- 5. two renditions of one stream ---------------------------------------------------


async def test_two_renditions_are_one_stream_with_a_bitrate_per_quality(cluster: Any) -> None:
    """``<uuid>_720p`` and ``<uuid>_1080p`` pushed at once (callbacks to A, push to B)
    are one stream on B with a bitrate per quality; the first rendition's
    on_publish_done does not end it, the last one's ends it once."""
    a = await cluster.replica()
    b = await cluster.replica()
    nginx = cluster.nginx(a.http, b.ingest_port)
    sid = str(uuid.uuid4())

    def relays() -> set[str]:
        assert b.component.receiver is not None
        return {s.stream_name for s in b.component.receiver.sessions if s.stream_id == sid}

    async with (
        relay_ffmpeg(nginx.rtmp_port, f"{sid}_720p", cluster.secret) as p720,
        relay_ffmpeg(nginx.rtmp_port, f"{sid}_1080p", cluster.secret) as p1080,
    ):
        await wait_for(lambda: len(relays()) == 2, what="both renditions relayed to B")
        await wait_for(lambda: sid in b.registry.owned(), what="B owns the stream")
        for quality in ("720p", "1080p"):
            await wait_for(lambda q=quality: count(b, BITRATE, stream_id=sid, quality=q) > 0)
            await wait_for(lambda q=quality: count(b, LATENCY_COUNT, quality=q) > 5)
        assert [r.stream_id for r in await a.registry.list_active()] == [sid]
        assert count(b, ACTIVE, region=REGION) == 1
        assert count(a, ACTIVE, region=REGION) == 0
        assert count(b, LATENCY_COUNT, quality="240p") == 0
        viewer = await connect(a.ws(sid))
        try:
            await until_viewers(viewer, 1)
            await stop_ffmpeg(p720)
            await wait_for(lambda: relays() == {f"{sid}_1080p"}, what="720p relay closed")
            await wait_for(
                lambda: f"{sid}_720p" in b.component.finished_renditions(sid),
                what="720p's on_publish_done reached the owner",
            )
            assert await b.registry.is_active(sid)
            assert count(b, DURATION_COUNT, stream_type="live") == 0
            # The finished rendition no longer carries anything.
            assert count(b, BITRATE, stream_id=sid, quality="720p") == 0
            before = count(b, LATENCY_COUNT, quality="1080p")
            await wait_for(lambda: count(b, LATENCY_COUNT, quality="1080p") > before + 5)
            assert count(b, BITRATE, stream_id=sid, quality="1080p") > 0
            await stop_ffmpeg(p1080)
            assert (await until_ended(viewer))["reason"] == "publish_done"
        finally:
            await viewer.close()
    await wait_for(lambda: count(b, DURATION_COUNT, stream_type="live") == 1, what="end on B")
    await asyncio.sleep(cluster.grace + 0.5)
    assert count(b, DURATION_COUNT, stream_type="live") == 1
    assert count(a, DURATION_COUNT, stream_type="live") == 0
    for replica in (a, b):
        assert count(replica, ACTIVE, region=REGION) == 0
        assert count(replica, ERRORS, error_type="rtmp_connection_failed") == 0


# --- 6. a restart under the same replica id --------------------------------------------


async def test_restart_under_the_same_id_clears_the_earlier_process_at_start(
    cluster: Any,
) -> None:
    """A replica with an explicit id (a StatefulSet pod) owns a stream and has viewers;
    it is SIGKILLed and restarted under the SAME id before its heartbeat would expire
    (TTL 30 s here). At start it clears what the dead process left: the old viewers leave
    the global count at once, and the stream it owned ends exactly once (owner_lost,
    after the grace) with its real start. Before, the new process kept the old heartbeat
    alive and the old viewers counted for as long as the pod lived."""
    long_ttl = 30.0
    owner = await cluster.process("pod-0", presence_ttl=long_ttl)
    b = await cluster.replica()
    sid = str(uuid.uuid4())
    assert await post(b.http, "/rtmp/on_publish", callback_form(cluster.secret, sid)) == 200
    relay = await cluster.publisher(owner.ingest_port)
    await relay.publish(sid)
    async with feeding(relay):
        await wait_for(lambda: owner_of(b, sid), what="stream registered")
        started = await b.registry.get(sid)
        assert started is not None and started.owner == "pod-0"
        viewers_at = time.time()
        remote = [await connect(f"ws://127.0.0.1:{owner.port}/ws/streams/{sid}") for _ in range(3)]
        local = await connect(b.ws(sid))
        try:
            await until_viewers(local, 4)
            owner.kill()
            killed = time.time()
            restarted = await cluster.process("pod-0", presence_ttl=long_ttl)
            # Ready means its first sync ran: the dead process is cleared already.
            assert await b.service.presence.refresh([sid]) == {sid: 1}
            assert time.time() - killed < long_ttl  # well inside the old heartbeat
            await until_viewers(local, 1)
            assert (await until_ended(local))["reason"] == "owner_lost"
        finally:
            await local.close()
            for ws in remote:
                ws.transport.abort()

    async def ends_observed() -> float:
        there = parse_metrics(await restarted.scrape())
        return count(b, DURATION_COUNT, stream_type="live") + value(
            there, DURATION_COUNT, stream_type="live"
        )

    await wait_for(lambda: _equals(ends_observed(), 1.0), what="one end observed")
    assert not await b.registry.is_active(sid)
    there = parse_metrics(await restarted.scrape())
    ender_sum = count(b, DURATION_SUM, stream_type="live") + value(
        there, DURATION_SUM, stream_type="live"
    )
    # The end carries the duration up to the dead process's last heartbeat (when it was
    # last seen), not up to the kill: that heartbeat came after the viewers connected
    # (the sync that counted them heartbeats first), so the duration is at least that
    # long, counted from the stream's real start on the dead process.
    assert ender_sum >= viewers_at - started.started_at
    assert count(b, ACTIVE, region=REGION) == 0
    assert value(there, ACTIVE, region=REGION) == 0
    assert await ends_observed() == 1.0


async def _equals(value: Awaitable[float], expected: float) -> bool:
    return await value == expected
