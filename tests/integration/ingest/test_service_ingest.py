"""The whole service with the ingest wired in: uvicorn app (memory engine), real
nginx-rtmp calling its callbacks and pushing to its receiver, real ffmpeg, crafted
RTMP publishers and real WebSocket viewers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from websockets.asyncio.client import connect

from nova_streaming.tokens import publish_token
from nova_testing.ffmpeg import ffmpeg, stop_ffmpeg
from nova_testing.waiting import wait_for
from streaming_metrics import definitions as d

pytestmark = pytest.mark.slow

SECRET = "service-test-secret"  # the service fixture's publish secret
LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS.name
DURATION = d.STREAM_DURATION_SECONDS.name
BITRATE = d.QUALITY_BITRATE_KBPS.name
ACTIVE = d.ACTIVE_STREAMS.name
DROPS = d.STREAM_FRAME_DROPS.name
LAG = d.STREAM_INGEST_LAG_SECONDS.name


def latency_exemplars(service: Any, quality: str) -> dict[str, dict[str, str]]:
    """The exemplar labels of each latency bucket of ``quality`` that holds one."""
    return {
        sample.labels["le"]: sample.exemplar.labels
        for family in service.metrics.registry.collect()
        for sample in family.samples
        if sample.name == f"{LATENCY}_bucket"
        and sample.labels["quality"] == quality
        and sample.exemplar is not None
    }


async def active_ids(service: Any) -> list[str]:
    return [r.stream_id for r in await service.service.registry.list_active()]


def publish_form(stream_id: str, token: str, **extra: str) -> str:
    """An on_publish body the way nginx sends it (its fields, then the URL's query)."""
    fields = {"app": "live", "addr": "127.0.0.1", "call": "publish", "name": stream_id}
    fields.update({"type": "live", "token": token, **extra})
    return "&".join(f"{k}={v}" for k, v in fields.items())


@pytest.mark.parametrize(
    ("size", "quality", "stream_type"),
    [("1280x720", "720p", "live"), ("1920x1080", "1080p", "pre-recorded")],
)
async def test_ffmpeg_broadcast_lifecycle(
    make_service: Any, service_nginx: Any, size: str, quality: str, stream_type: str
) -> None:
    """ffmpeg -> nginx -> service: active in registry and API, lag per frame at the right
    quality, bitrate gauge, a viewer gets hello; stopping ffmpeg ends the stream once with
    its real duration."""
    service = await make_service()
    nginx = service_nginx(service)
    sid = str(uuid.uuid4())
    query = f"token={publish_token(SECRET, sid)}&stream_type={stream_type}"
    launched = time.time()
    async with ffmpeg(nginx.rtmp_port, sid, query, size) as proc:
        await wait_for(lambda: service.service.registry.is_active(sid), what="stream active")
        active_seen = time.time()
        listed = await service.get_json("/api/v1/streams")
        [stream] = [s for s in listed["streams"] if s["stream_id"] == sid]
        assert stream["stream_type"] == stream_type and stream["region"] == "test-1"
        assert service.sample(ACTIVE, region="test-1") == 1
        await wait_for(
            lambda: service.sample(f"{LATENCY}_count", quality=quality) >= 25, what="frames"
        )
        count = service.sample(f"{LATENCY}_count", quality=quality)
        # Plausible lag on loopback: nearly every frame under a second.
        assert service.sample(f"{LATENCY}_bucket", quality=quality, le="1.0") >= count * 0.9
        assert service.sample(f"{LATENCY}_count", quality="unknown") == 0
        kbps = await wait_for(
            lambda: service.sample(BITRATE, stream_id=sid, quality=quality), what="bitrate"
        )
        assert 100 < kbps < 10_000
        async with connect(f"ws://127.0.0.1:{service.port}/ws/streams/{sid}") as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert hello["type"] == "hello" and hello["stream_id"] == sid
            assert hello["viewers"] == 1
        await asyncio.sleep(1.0)  # a measurable duration
        await stop_ffmpeg(proc)
        stopped = time.time()
        await wait_for(
            lambda: service.sample(f"{DURATION}_count", stream_type=stream_type), what="end"
        )
        ended_seen = time.time()
    assert not await service.service.registry.is_active(sid)
    assert service.sample(ACTIVE, region="test-1") == 0
    assert service.sample(f"{DURATION}_count", stream_type=stream_type) == 1
    duration = service.sample(f"{DURATION}_sum", stream_type=stream_type)
    assert stopped - active_seen - 1.0 <= duration <= ended_seen - launched + 1.0
    for error_type in ("rtmp_connection_failed", "timeout", "auth_rejected", "protocol_error"):
        assert service.errors(error_type) == 0, error_type
    await asyncio.sleep(0.5)  # nothing else may happen after the end
    assert service.sample(f"{DURATION}_count", stream_type=stream_type) == 1


async def test_refused_publishes_are_counted_and_start_nothing(
    make_service: Any, service_nginx: Any
) -> None:
    """A bad token and a non-UUID name through nginx: 403, nothing active, auth_rejected
    counted once each. A callback from an address outside the allow-list: 403, counted
    only in untrusted_requests_total{endpoint}, never as a broadcast error."""
    service = await make_service()
    nginx = service_nginx(service)
    sid = str(uuid.uuid4())
    async with ffmpeg(nginx.rtmp_port, sid, "token=" + "0" * 64, "320x240", 3) as proc:
        assert await asyncio.wait_for(proc.wait(), 30) != 0
    async with ffmpeg(nginx.rtmp_port, "not-a-uuid", "token=abc", "320x240", 3) as proc:
        assert await asyncio.wait_for(proc.wait(), 30) != 0
    await wait_for(lambda: service.errors("auth_rejected") >= 2, what="two rejections")
    assert await active_ids(service) == []

    # Only ::1 may call back: a call from 127.0.0.1, even with a valid token, is refused.
    strict = await make_service(trusted_peers=(__import__("ipaddress").ip_network("::1/128"),))
    good = publish_form(sid, publish_token(SECRET, sid))
    assert await strict.post("/rtmp/on_publish", good) == 403
    assert await strict.post("/rtmp/on_publish", good) == 403
    assert await strict.post("/rtmp/on_publish_done", good) == 403
    untrusted = "nova_streaming_untrusted_requests_total"
    assert strict.sample(untrusted, endpoint="on_publish") == 2
    assert strict.sample(untrusted, endpoint="on_publish_done") == 1
    for error_type in ("auth_rejected", "rtmp_connection_failed", "protocol_error"):
        assert strict.errors(error_type) == 0, error_type
    assert await strict.service.registry.authorization(sid) is None
    await asyncio.sleep(0.5)  # late on_publish_done calls from nginx count nothing
    assert service.errors("auth_rejected") == 2
    assert await active_ids(service) == [] and await active_ids(strict) == []


async def test_crafted_publisher_drops_lag_timeout_and_refusal(
    make_service: Any, publishers: Any
) -> None:
    """Through the service's receiver: exact frame_drop counts, an injected delay shows
    as lag, silence ends the stream as one timeout; a relay nobody authorized is refused
    and counted."""
    service = await make_service(ingest_timeout=1.0)
    sid = str(uuid.uuid4())
    assert await service.post("/rtmp/on_publish", publish_form(sid, "bad")) == 403
    assert await service.post("/rtmp/on_publish", publish_form(sid, publish_token(SECRET, sid)))
    assert service.errors("auth_rejected") == 1

    pub = await publishers(service.ingest_port)
    await pub.publish(f"{sid}_480p")
    await wait_for(lambda: service.service.registry.is_active(sid), what="active")
    await pub.metadata({"width": 854.0, "height": 480.0, "framerate": 25.0})
    pub.video_config(0)
    # 25 fps = 40 ms: frames 10..14 missing (5 drops), 20 alone (a 2-interval gap: not
    # counted), 30 and 31 (2 drops).
    timestamps = [i * 40 for i in range(40) if not (10 <= i < 15 or i in (20, 30, 31))]
    for ts in timestamps:
        pub.video(ts, keyframe=ts == 0)
        await pub.drain()
    sent = len(timestamps)
    await wait_for(
        lambda: service.sample(f"{LATENCY}_count", quality="480p") == sent, what="frames"
    )
    assert service.errors("frame_drop") == 7
    # The owner's per-stream drop counter saw the same drops; the lag window has frames.
    assert service.sample(DROPS, stream_id=sid) == 7
    assert latency_exemplars(service, "480p").keys() <= {"0.001", "0.005", "0.01", "0.025"}
    # The next frame is 40 ms of media later but arrives 400+ ms later: lag >= 0.36 s.
    await asyncio.sleep(0.4)
    pub.video(40 * 40)
    await pub.drain()
    await wait_for(
        lambda: service.sample(f"{LATENCY}_count", quality="480p") == sent + 1, what="late frame"
    )
    assert service.sample(f"{LATENCY}_bucket", quality="480p", le="0.25") == sent
    assert service.errors("frame_drop") == 7
    # Slower than 0.25 s: the frame names its stream as the exemplar of its bucket.
    slow = {le: labels for le, labels in latency_exemplars(service, "480p").items()}
    assert {"stream_id": sid} in [slow.get("0.5"), slow.get("1.0")], slow
    # The owner's lag gauge: p95 of the stream's ~35 frames, so the one late frame
    # (the top 3%) is not it; a gauge exists once a second with frames has closed.
    registry = service.metrics.registry
    await wait_for(
        lambda: registry.get_sample_value(LAG, {"stream_id": sid}) is not None, what="lag"
    )
    lag = registry.get_sample_value(LAG, {"stream_id": sid})
    assert lag is not None and 0.0 <= lag < 0.36

    # Silence: the receiver times out, closes, and the stream ends as one timeout.
    assert await pub.closed_by_peer()
    await wait_for(lambda: service.sample(f"{DURATION}_count", stream_type="live") == 1, what="end")
    assert not await service.service.registry.is_active(sid)
    assert service.errors("timeout") == 1
    assert service.errors("rtmp_connection_failed") == 0

    # A relay of a stream on_publish never authorized: refused, counted, nothing active.
    stranger = str(uuid.uuid4())
    pub2 = await publishers(service.ingest_port)
    await pub2.handshake()
    await pub2.command("connect", 1, {"app": "live"})
    await pub2.command("createStream", 2, None)
    await pub2.command("publish", 3, None, stranger, "live", stream_id=1)
    assert await pub2.closed_by_peer()
    await wait_for(lambda: service.errors("auth_rejected") == 2, what="refusal counted")
    assert await active_ids(service) == []
    assert service.sample(f"{DURATION}_count", stream_type="live") == 1
    assert service.errors("timeout") == 1


async def test_interrupted_relay_without_repush_ends_as_connection_failure(
    make_service: Any, publishers: Any
) -> None:
    """A relay that closes with no on_publish_done and no re-push within the grace
    period ends the stream once, counted rtmp_connection_failed."""
    service = await make_service(stream_grace=0.5)
    sid = str(uuid.uuid4())
    assert await service.post("/rtmp/on_publish", publish_form(sid, publish_token(SECRET, sid)))
    pub = await publishers(service.ingest_port)
    await pub.publish(sid)
    await wait_for(lambda: service.service.registry.is_active(sid), what="active")
    await pub.close()
    await wait_for(lambda: service.errors("rtmp_connection_failed") == 1, what="connection failure")
    assert not await service.service.registry.is_active(sid)
    assert service.sample(f"{DURATION}_count", stream_type="live") == 1
    assert service.errors("timeout") == 0


async def test_receiver_restart_mid_broadcast_keeps_one_stream(
    make_service: Any, service_nginx: Any
) -> None:
    """The receiver stopped and restarted while nginx and ffmpeg keep going: nginx
    re-pushes, the stream is active again within the grace period with its original
    start, and its end is observed once."""
    service = await make_service(stream_grace=8.0)
    nginx = service_nginx(service)
    sid = str(uuid.uuid4())
    registry = service.service.registry
    async with ffmpeg(nginx.rtmp_port, sid, f"token={publish_token(SECRET, sid)}", "640x360") as p:
        await wait_for(lambda: registry.is_active(sid), what="active")
        first = await registry.get(sid)
        await wait_for(
            lambda: service.sample(f"{LATENCY}_count", quality="360p") >= 10, what="frames"
        )
        await service.component.stop_receiver()
        interrupted = await registry.get(sid)
        assert interrupted is not None and interrupted.state == "interrupted"
        await service.component.start_receiver()

        async def active_again() -> bool:
            record = await registry.get(sid)
            return record is not None and record.state == "active"

        await wait_for(active_again, what="re-push taken back", within=8.0)
        again = await registry.get(sid)
        assert again is not None and first is not None
        assert again.started_at == first.started_at
        before = service.sample(f"{LATENCY}_count", quality="360p")
        await wait_for(
            lambda: service.sample(f"{LATENCY}_count", quality="360p") > before + 10,
            what="frames after the re-push",
        )
        await stop_ffmpeg(p)
        await wait_for(
            lambda: service.sample(f"{DURATION}_count", stream_type="live") == 1, what="end"
        )
    assert not await registry.is_active(sid)
    assert service.errors("rtmp_connection_failed") == 0
    assert service.sample(ACTIVE, region="test-1") == 0
    await asyncio.sleep(1.0)  # the cancelled grace timer must not end it a second time
    assert service.sample(f"{DURATION}_count", stream_type="live") == 1
