"""Several replicas sharing one Redis: global counts, who exports what (design section
3), a replica killed without cleanup, and Redis going away and coming back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from nova_testing.ws_messages import recv_json
from streaming_metrics import definitions as d
from streaming_metrics import start_metrics_server

Replicas = Callable[..., Awaitable[Any]]
Wait = Callable[..., Awaitable[Any]]

VENV_BIN = Path(sys.executable).parent


async def until_count(ws: ClientConnection, count: int) -> None:
    """Read messages until one reports ``count`` viewers."""
    while True:
        msg = await recv_json(ws)
        if msg.get("viewers") == count:
            return


async def scrape(replica: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics of the replica over HTTP, as {(sample name, labels): value}."""
    server = start_metrics_server(0, "127.0.0.1", replica.metrics.registry)
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"http://127.0.0.1:{server.port}/metrics")).text
    finally:
        server.close()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def series(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def redis_engine(redis_server: Any) -> dict[str, Any]:
    return {"presence": "redis", "redis_url": redis_server.url}


async def test_two_replicas_share_counts_and_export_by_role(
    redis_engine: dict[str, Any], replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """Viewers on both replicas all see the global count; the owner exports the stream's
    owner series, the other only its local connections; an end asked of the non-owner
    is carried out by the owner, exactly once."""
    owner = await replicas(**redis_engine)
    other = await replicas(**redis_engine)
    sid = new_stream_id()
    await owner.service.registry.start(sid, "test-1", "live")
    clients = [await connect(owner.ws(sid)) for _ in range(2)]
    clients += [await connect(other.ws(sid)) for _ in range(3)]
    try:
        for ws in clients:
            await asyncio.wait_for(until_count(ws, 5), 10)
        for replica in (owner, other):
            assert replica.service.presence.global_count(sid) == 5
        await wait(
            lambda: owner.sample(d.PEAK_VIEWERS.name, {"stream_id": sid}) == 5.0,
            what="owner peak from the global count",
        )
        api = (await other.get(f"/api/v1/streams/{sid}")).json()
        assert api["viewers"] == 5 and api["region"] == "test-1"

        mine, theirs = await scrape(owner), await scrape(other)
        info = {"stream_id": sid, "region": "test-1", "stream_type": "live"}
        assert series(mine, d.ACTIVE_STREAMS.name, region="test-1") == 1.0
        assert series(mine, d.STREAM_INFO.name, **info) == 1.0
        assert series(mine, d.PEAK_VIEWERS.name, stream_id=sid) == 5.0
        assert series(mine, d.WEBSOCKET_CONNECTIONS.name, stream_id=sid) == 2.0
        assert series(theirs, d.ACTIVE_STREAMS.name, region="test-1") == 0.0
        assert series(theirs, d.STREAM_INFO.name, **info) is None
        assert series(theirs, d.PEAK_VIEWERS.name, stream_id=sid) is None
        assert series(theirs, d.WEBSOCKET_CONNECTIONS.name, stream_id=sid) == 3.0

        assert await other.service.registry.end(sid, reason="publish_done") is True
        for ws in clients:
            while (msg := await recv_json(ws))["type"] != "stream_ended":
                pass
            assert msg["reason"] == "publish_done"
    finally:
        for ws in clients:
            await ws.close()
    count = d.STREAM_DURATION_SECONDS.name + "_count"
    assert owner.sample(count, {"stream_type": "live"}) == 1.0
    assert not other.sample(count, {"stream_type": "live"})
    assert owner.sample(d.VIEWERS_TOTAL.name + "_sum", {"region": "test-1"}) == 5.0
    assert owner.sample(d.ACTIVE_STREAMS.name, {"region": "test-1"}) == 0.0
    for replica in (owner, other):
        await wait(
            lambda r=replica: r.sample(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": sid}) == 0.0,
            what="connections released",
        )


@contextlib.contextmanager
def subprocess_replica(
    redis_url: str, ports: tuple[int, int, int], replica_id: str, extra: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_")}
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "nova-streaming"),
            "serve",
            "--presence=redis",
            f"--redis-url={redis_url}",
            "--host=127.0.0.1",
            f"--port={ports[0]}",
            "--metrics-host=127.0.0.1",
            f"--metrics-port={ports[1]}",
            # serve also starts the RTMP receiver: never its default port in a test
            f"--ingest-port={ports[2]}",
            "--region=test-1",
            "--presence-ttl=1.6",
            "--viewer-update-interval=0.2",
            f"--replica-id={replica_id}",
            "--log-level=warning",
            *extra,  # later flags win
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


async def wait_http(url: str, wait: Wait) -> None:
    async def up() -> bool:
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    await wait(up, within=20, what=f"{url} up")


async def heartbeat_deadline(url: str, replica: Any, replica_id: str) -> tuple[float, float]:
    """``(heartbeat deadline of replica_id's instance, server time now)`` in ms, from
    the presence's sorted set of instances (deadline 0 once the instance was reaped)."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        key = replica.service.presence.global_key("replicas")
        entries = await client.zrange(key, 0, -1, withscores=True)
        seconds, micros = await client.time()
    finally:
        await client.aclose()
    scores = [score for member, score in entries if member.startswith(f"{replica_id}#".encode())]
    return max(scores, default=0.0), seconds * 1000 + micros / 1000


async def test_killed_replica_viewers_leave_the_global_count(
    redis_engine: dict[str, Any],
    replicas: Replicas,
    redis_server: Any,
    new_stream_id: Callable[[], str],
    wait: Wait,
    free_ports: Callable[[], int],
) -> None:
    """A replica SIGKILLed with viewers connected (no cleanup at all): its viewers leave
    the global count within the presence TTL, and the owner's peak stays."""
    owner = await replicas(**redis_engine)
    sid = new_stream_id()
    await owner.service.registry.start(sid, "test-1", "live")
    port, metrics_port, ingest_port = free_ports(), free_ports(), free_ports()
    with subprocess_replica(redis_server.url, (port, metrics_port, ingest_port), "doomed") as proc:
        await wait_http(f"http://127.0.0.1:{port}/readyz", wait)
        remote = [await connect(f"ws://127.0.0.1:{port}/ws/streams/{sid}") for _ in range(4)]
        local = await connect(owner.ws(sid))
        try:
            await asyncio.wait_for(until_count(local, 5), 10)
            async with httpx.AsyncClient(timeout=5) as client:
                metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            assert f'nova_streaming_websocket_connections{{stream_id="{sid}"}} 4.0' in metrics
            # "Within the TTL" without a clock in the test: every heartbeat sets the
            # instance's deadline (Redis server time) to now + TTL (1.6 s), so the last
            # one before the kill expires at most a TTL after it; the viewers leave once
            # that deadline has passed, by no cleanup of the killed process.
            deadline_ms, now_ms = await heartbeat_deadline(redis_server.url, owner, "doomed")
            assert 0 < deadline_ms - now_ms <= 1600
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            await wait(
                lambda: owner.service.presence.global_count(sid) == 1,
                what="dead replica's viewers expired",
            )
            last_deadline_ms, dropped_ms = await heartbeat_deadline(
                redis_server.url, owner, "doomed"
            )
            assert dropped_ms >= last_deadline_ms  # dropped by the deadline, not before
            await asyncio.wait_for(until_count(local, 1), 10)
            assert owner.sample(d.PEAK_VIEWERS.name, {"stream_id": sid}) == 5.0
            assert await owner.service.registry.is_active(sid)
        finally:
            await local.close()
            for ws in remote:
                ws.transport.abort()


@pytest.mark.slow
async def test_same_id_restart_on_a_cluster_drops_the_old_viewers_at_start(
    redis_cluster: Any,
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    wait: Wait,
    free_ports: Callable[[], int],
) -> None:
    """On the Redis Cluster: a replica subprocess with an explicit id and 4 viewers is
    SIGKILLed and restarted under the same id (presence TTL 30 s): once it is ready the
    global count is exact, long before the old heartbeat would have expired."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    owner = await replicas(presence="redis", redis_url=redis_cluster.url, redis_prefix=prefix)
    sid = new_stream_id()
    await owner.service.registry.start(sid, "test-1", "live")
    extra = (f"--redis-prefix={prefix}", "--presence-ttl=30")
    local = await connect(owner.ws(sid))
    try:
        ports = (free_ports(), free_ports(), free_ports())
        with subprocess_replica(redis_cluster.url, ports, "pod-7", extra) as proc:
            await wait_http(f"http://127.0.0.1:{ports[0]}/readyz", wait)
            remote = [
                await connect(f"ws://127.0.0.1:{ports[0]}/ws/streams/{sid}") for _ in range(4)
            ]
            await asyncio.wait_for(until_count(local, 5), 10)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            for ws in remote:
                ws.transport.abort()
        ports = (free_ports(), free_ports(), free_ports())
        with subprocess_replica(redis_cluster.url, ports, "pod-7", extra):
            await wait_http(f"http://127.0.0.1:{ports[0]}/readyz", wait)
            assert await owner.service.presence.refresh([sid]) == {sid: 1}
            await asyncio.wait_for(until_count(local, 1), 10)
            assert await owner.service.registry.is_active(sid)
    finally:
        await local.close()


async def test_redis_outage_keeps_serving_and_converges(
    redis_engine: dict[str, Any],
    replicas: Replicas,
    redis_server: Any,
    new_stream_id: Callable[[], str],
    wait: Wait,
) -> None:
    """With Redis stopped, connected viewers stay, /readyz is 503 and failures are
    counted; after Redis restarts (empty), the stream is restored by its owner and the
    counts converge exactly on every replica."""
    a = await replicas(**redis_engine)
    b = await replicas(**redis_engine)
    sid = new_stream_id()
    await a.service.registry.start(sid, "test-1", "live")
    clients = [await connect(a.ws(sid)) for _ in range(2)]
    clients += [await connect(b.ws(sid)) for _ in range(2)]
    try:
        for ws in clients:
            await asyncio.wait_for(until_count(ws, 4), 10)
        redis_server.stop()
        for replica in (a, b):
            await wait(lambda r=replica: _status(r, "/readyz", 503), what="not ready during outage")
        errors = b.sample("nova_streaming_presence_errors_total", {"operation": "heartbeat"})
        assert errors is not None and errors > 0
        assert b.sample("nova_streaming_presence_up") == 0.0
        # Viewers keep being served; one more joins the known stream and one leaves.
        late = await connect(b.ws(sid))
        clients.append(late)
        assert (await recv_json(late))["type"] == "hello"
        await clients.pop(0).close()
        assert (await a.get("/healthz")).status_code == 200

        redis_server.start()
        for replica in (a, b):
            await wait(lambda r=replica: _status(r, "/readyz", 200), what="ready again")
        for replica in (a, b):
            await wait(
                lambda r=replica: r.service.presence.global_count(sid) == 4,
                what="converged global count",
            )
        assert await b.service.registry.is_active(sid)
        for ws in clients:
            await asyncio.wait_for(until_count(ws, 4), 10)
        assert a.sample(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": sid}) == 1.0
        assert b.sample(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": sid}) == 3.0
    finally:
        for ws in clients:
            await ws.close()


async def _status(replica: Any, path: str, code: int) -> bool:
    return bool((await replica.get(path)).status_code == code)
