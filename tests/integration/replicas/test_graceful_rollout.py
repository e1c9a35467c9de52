"""A rolling restart loses no viewer count and no stream (design section 9, last point).

Two ``nova-streaming serve`` replicas share a real Redis. nginx-rtmp relays an ffmpeg
broadcast and calls back through a :class:`~nova_testing.service_router.ServiceRouter`,
the local stand-in for the Kubernetes Service ``user-service``: new connections go to
the first replica whose ``/readyz`` answers 200 (A, then B once A is unready), open
connections stay where they are. nginx's ``push`` names one URL and cannot fail over to
another port by itself; behind a Service it does not need to, and here the router plays
that part, driven only by the replicas' own readiness. So the hand-over exercised is the
real one: A closes its relay at SIGTERM, nginx re-pushes after ``push_reconnect`` to the
same URL, the router (having seen A's 503) sends it to B, and B takes the stream over.
Nothing in the test switches anything by hand.

Real WebSocket viewers (three on A, two on B) reconnect to the other replica when
closed with 1001, as a client behind a load balancer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from nova_streaming.tokens import publish_token
from nova_testing.ffmpeg import ffmpeg, stop_ffmpeg
from nova_testing.service_router import Backend, ServiceRouter
from nova_testing.waiting import wait_for
from streaming_metrics import definitions as d

pytestmark = pytest.mark.slow

REGION = "test-1"
GOING_AWAY = 1001
# A's whole shutdown budget; the hand-over itself needs about push_reconnect (1 s).
SHUTDOWN_GRACE = 20.0
# Interruption grace: long enough for nginx's re-push (1 s) under load.
STREAM_GRACE = 5.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(proc: Any) -> Samples:
    """A replica process's /metrics as ``{(sample, sorted labels): value}``."""
    out: Samples = {}
    for family in text_string_to_metric_families(await proc.scrape()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def stream_api(proc: Any, stream_id: str) -> dict[str, Any] | None:
    """``GET /api/v1/streams/{id}`` on a replica (the global registry view)."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{proc.http}/api/v1/streams/{stream_id}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


class ReconnectingViewer:
    """A WebSocket viewer that, closed with 1001 (going away), reconnects to the other
    replica; it stops on any other close. Records every close code and count seen."""

    def __init__(self, urls: dict[str, str], first: str) -> None:
        self.urls = urls
        self.on = first
        self.connected = False
        self.closes: list[int | None] = []
        self.counts: list[int] = []
        self.ended: str | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @property
    def last(self) -> int | None:
        return self.counts[-1] if self.counts else None

    async def _run(self) -> None:
        for _attempt in range(10):
            code: int | None = None
            try:
                async with connect(self.urls[self.on]) as ws:
                    try:
                        async for raw in ws:
                            msg = json.loads(raw)
                            if msg["type"] in ("hello", "viewers"):
                                self.connected = True
                                self.counts.append(msg["viewers"])
                            elif msg["type"] == "stream_ended":
                                self.ended = msg["reason"]
                    except ConnectionClosed:
                        pass
                    code = ws.close_code
            except OSError:
                code = None  # refused: try the other replica
            self.connected = False
            self.closes.append(code)
            if code not in (GOING_AWAY, None):
                return
            self.on = next(name for name in self.urls if name != self.on)
        raise AssertionError(f"viewer gave up after closes {self.closes}")


async def test_sigterm_drains_viewers_and_hands_the_stream_over(
    cluster: Any, tmp_path: Path
) -> None:
    """SIGTERM to the replica that owns a live stream and has viewers: /readyz goes 503
    while it still serves; its viewers get 1001 and reconnect to the other replica,
    where the global count is exact; the stream stays active and is taken over by the
    other replica with its original start time; the replica exits by itself within
    its grace; the broadcaster's later stop ends the stream exactly once, with the
    duration of the whole broadcast."""
    a_log = tmp_path / "replica-a.log"
    a = await cluster.process(
        "rollout-a",
        stream_grace=STREAM_GRACE,
        extra_args=[f"--shutdown-grace={SHUTDOWN_GRACE:g}", "--log-level=info"],
        log=a_log,
    )
    b = await cluster.process("rollout-b", stream_grace=STREAM_GRACE, log=tmp_path / "b.log")
    router = ServiceRouter(
        [
            Backend("a", f"{a.http}/readyz", {"http": a.port, "ingest": a.ingest_port}),
            Backend("b", f"{b.http}/readyz", {"http": b.port, "ingest": b.ingest_port}),
        ],
        ports=("http", "ingest"),
    )
    await router.start()
    viewers: list[ReconnectingViewer] = []
    try:
        await wait_for(lambda: router.ready() == ["a", "b"], what="both replicas routable")
        nginx = cluster.nginx(f"http://127.0.0.1:{router.port('http')}", router.port("ingest"))
        sid = str(uuid.uuid4())
        token = publish_token(cluster.secret, sid)
        async with ffmpeg(
            nginx.rtmp_port, sid, f"token={token}", seconds=120, fps=15, bitrate="300k"
        ) as broadcaster:
            # The relay lands on A (first ready endpoint), which owns the stream.
            async def a_owns() -> bool:
                return value(await scrape(a), d.ACTIVE_STREAMS.name, region=REGION) == 1

            await wait_for(a_owns, what="A owns the stream")
            first = await stream_api(b, sid)
            assert first is not None and first["state"] == "active"
            urls = {"a": f"ws://127.0.0.1:{a.port}/ws/streams/{sid}"}
            urls["b"] = f"ws://127.0.0.1:{b.port}/ws/streams/{sid}"
            viewers = [ReconnectingViewer(urls, "a") for _ in range(3)]
            viewers += [ReconnectingViewer(urls, "b") for _ in range(2)]
            for viewer in viewers:
                viewer.start()
            await wait_for(
                lambda: all(v.connected and v.last == 5 for v in viewers),
                what="five viewers see five",
            )
            on_a = viewers[:3]

            a.signal(signal.SIGTERM)

            # (a) unready while still serving: the router got A's 503 answer.
            await wait_for(lambda: 503 in router.backend("a").statuses, what="A answers 503")
            # (b) A's viewers were closed with 1001 and reconnected to B.
            await wait_for(
                lambda: all(v.on == "b" and v.connected for v in on_a), what="viewers moved"
            )
            assert all(v.closes == [GOING_AWAY] for v in on_a), [v.closes for v in on_a]
            assert all(v.closes == [] for v in viewers[3:])

            # (c) B takes the stream over: nginx re-pushed it through the router.
            async def b_owns() -> bool:
                samples = await scrape(b)
                info = {"stream_id": sid, "region": REGION, "stream_type": "live"}
                return (
                    value(samples, d.ACTIVE_STREAMS.name, region=REGION) == 1
                    and value(samples, d.STREAM_INFO.name, **info) == 1
                )

            await wait_for(b_owns, what="B owns the stream")
            assert ("ingest", "b") in router.routed
            # (d) A exits by itself, within its grace (the deadline of this wait).
            await wait_for(lambda: a.proc.poll() is not None, within=SHUTDOWN_GRACE + 5)
            assert a.proc.returncode == -signal.SIGTERM
            a_text = a_log.read_text()
            assert "drain done: 1 stream(s) handed over" in a_text, a_text
            assert "Traceback" not in a_text, a_text

            # The stream never ended: active on B with its original start time.
            record = await stream_api(b, sid)
            assert record is not None
            assert record["state"] == "active"
            assert record["started_at"] == first["started_at"]
            # The global count is exact once A is gone: the five viewers, all on B.
            await wait_for(lambda: all(v.last == 5 for v in viewers), what="every viewer sees five")
            samples = await scrape(b)
            assert value(samples, d.WEBSOCKET_CONNECTIONS.name, stream_id=sid) == 5
            assert (await stream_api(b, sid) or {}).get("viewers") == 5
            assert (
                value(samples, d.STREAM_DURATION_SECONDS.name + "_count", stream_type="live") == 0
            )
            assert all(v.ended is None for v in viewers)

            await stop_ffmpeg(broadcaster)
            stopped = time.time()
            await wait_for(
                lambda: all(v.ended == "publish_done" for v in viewers), what="stream_ended"
            )
        start = datetime.fromisoformat(first["started_at"]).timestamp()
        samples = await scrape(b)
        count_name = d.STREAM_DURATION_SECONDS.name + "_count"
        assert value(samples, count_name, stream_type="live") == 1
        # The one end covers the whole broadcast, from A's start.
        duration = value(samples, d.STREAM_DURATION_SECONDS.name + "_sum", stream_type="live")
        assert duration >= stopped - start - 1.0
        assert value(samples, d.ACTIVE_STREAMS.name, region=REGION) == 0
        # Past the interruption grace (the relay nginx closed at the end): no second end,
        # and the hand-over was never counted as a failed connection.
        await asyncio.sleep(STREAM_GRACE + 0.5)
        samples = await scrape(b)
        assert value(samples, count_name, stream_type="live") == 1
        errors = d.BROADCAST_ERRORS.name + "_total"
        assert value(samples, errors, error_type="rtmp_connection_failed") == 0
    finally:
        for viewer in viewers:
            await viewer.stop()
        await router.stop()


async def test_a_stream_nobody_takes_over_does_not_hold_the_exit_past_the_grace(
    cluster: Any, tmp_path: Path
) -> None:
    """Alone on Redis, the owner of a relayed stream gets SIGTERM: no replica re-pushes,
    so the drain waits for the take-over only until its deadline, then the process
    exits by itself within its grace, leaving the stream interrupted (not ended) for a
    later re-push or the survivors' reaper."""
    grace = 4.0
    log = tmp_path / "alone.log"
    alone = await cluster.process(
        "rollout-alone",
        stream_grace=60.0,
        extra_args=[f"--shutdown-grace={grace:g}", "--log-level=info"],
        log=log,
    )
    sid = str(uuid.uuid4())
    form = f"app=live&addr=127.0.0.1&call=publish&name={sid}&type=live"
    form += f"&token={publish_token(cluster.secret, sid)}"
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(
            f"{alone.http}/rtmp/on_publish",
            content=form,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200
    relay = await cluster.publisher(alone.ingest_port)
    await relay.publish(sid)
    relay.video_config(0)
    relay.video(0, size=500, keyframe=True)
    await relay.drain()

    async def owned() -> bool:
        return value(await scrape(alone), d.ACTIVE_STREAMS.name, region=REGION) == 1

    await wait_for(owned, what="the replica owns the stream")
    alone.signal(signal.SIGTERM)
    await wait_for(lambda: alone.proc.poll() is not None, within=grace + 5, what="exit")
    assert alone.proc.returncode == -signal.SIGTERM
    text = log.read_text()
    assert "drain over with 1 stream(s) not taken over" in text, text
    assert "Traceback" not in text, text
    # The next replica sees the stream interrupted (waiting for a re-push), not ended.
    later = await cluster.process("rollout-later", stream_grace=60.0)
    record = await stream_api(later, sid)
    assert record is not None and record["state"] == "interrupted"
