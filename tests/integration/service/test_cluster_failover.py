"""A Redis Cluster master failover under live viewers (3 masters + 3 replicas): the
master holding a stream's slot is SIGKILLed (by the PID the fixture started), its replica
is promoted, and the viewer counts are exact again and the stream ends exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from websockets.asyncio.client import ClientConnection, connect

from nova_streaming.presence import PresenceUnavailable
from nova_streaming.presence.redis import RedisPresence
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings
from nova_testing.redis_cluster import RedisClusterServer
from streaming_metrics import definitions as d

pytestmark = pytest.mark.slow

Replicas = Callable[..., Awaitable[Any]]
Wait = Callable[..., Awaitable[Any]]


@pytest.fixture
def failover_cluster() -> Iterator[RedisClusterServer]:
    """3 masters, each with one replica; a node is taken for failed after 1 s."""
    cluster = RedisClusterServer(masters=3, replicas=1, node_timeout_ms=1000)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def until_count(ws: ClientConnection, count: int) -> None:
    """Read hello/viewers messages until one reports ``count``."""
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert msg["type"] in ("hello", "viewers"), msg
        if msg["viewers"] == count:
            return


async def until_ended(ws: ClientConnection) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if msg["type"] == "stream_ended":
            return msg


def promoted(cluster: RedisClusterServer, key: str, victim: Any) -> bool:
    """A live node serves ``key``'s slot and every live node reports the cluster ok."""
    try:
        if cluster.master_of(key) is victim:
            return False
        RedisClusterServer.wait_ok(cluster.live_nodes(), within=0.0)
    except RuntimeError:
        return False
    return True


async def test_master_failover_keeps_counts_exact_and_ends_once(
    failover_cluster: RedisClusterServer,
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    wait: Wait,
) -> None:
    """Kill the master of the stream's slot with 5 viewers on two replicas: after the
    promotion both replicas count exactly 5, a leave is counted exactly, and an end
    asked of the non-owner ends the stream exactly once."""
    engine = {"presence": "redis", "redis_url": failover_cluster.url}
    owner = await replicas(**engine)
    other = await replicas(**engine)
    sid = new_stream_id()
    await owner.service.registry.start(sid, "test-1", "live")
    clients = [await connect(owner.ws(sid)) for _ in range(2)]
    clients += [await connect(other.ws(sid)) for _ in range(3)]
    try:
        for ws in clients:
            await until_count(ws, 5)
        key = f"nova:stream:{{{sid}}}"
        victim = failover_cluster.master_of(key)
        victim.kill()
        await wait(lambda: promoted(failover_cluster, key, victim), within=60, what="promotion")
        for replica in (owner, other):
            await wait(
                lambda r=replica: r.service.presence.global_count(sid) == 5,
                within=30,
                what="exact count after the failover",
            )
        assert await other.service.presence.refresh([sid]) == {sid: 5}
        assert await other.service.registry.is_active(sid)

        await clients.pop().close()  # one of the other replica's viewers leaves
        for ws in clients:
            await until_count(ws, 4)
        assert await owner.service.presence.refresh([sid]) == {sid: 4}
        for replica in (owner, other):
            await wait(lambda r=replica: r.service.presence.ready, what="presence ready")

        assert await other.service.registry.end(sid, reason="publish_done") is True
        for ws in clients:
            assert (await until_ended(ws))["reason"] == "publish_done"
    finally:
        for ws in clients:
            await ws.close()
    # Exactly one observation cluster-wide: normally the owner's; the caller's own if the
    # owner could not answer within the route timeout while the cluster settled.
    count = d.STREAM_DURATION_SECONDS.name + "_count"
    ends = [r.sample(count, {"stream_type": "live"}) or 0.0 for r in (owner, other)]
    assert sorted(ends) == [0.0, 1.0]
    finals = [r.sample(d.VIEWERS_TOTAL.name + "_sum", {"region": "test-1"}) for r in (owner, other)]
    assert sorted(f or 0.0 for f in finals) == [0.0, 4.0]
    for replica in (owner, other):
        assert replica.sample(d.ACTIVE_STREAMS.name, {"region": "test-1"}) == 0.0
    assert not await owner.service.registry.is_active(sid)
    assert await other.service.registry.end(sid) is False


class ManualClock:
    """A monotonic clock moved by hand (the presence engines' ``clock``): the TTL a
    replica waits after its own outage cannot run out because the machine was slow."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def back(engine: RedisPresence) -> bool:
    """One sync step of ``engine``, as its sync loop would retry it; True once it held."""
    try:
        await engine._sync_once()
    except PresenceUnavailable:
        return False
    return True


async def test_failover_of_the_heartbeats_master_keeps_every_live_replica_counted(
    failover_cluster: RedisClusterServer,
    make_settings: Callable[..., Settings],
    new_stream_id: Callable[[], str],
    wait: Wait,
) -> None:
    """The master of ``{nova}`` (every heartbeat) is SIGKILLed and stays down longer than
    the TTL, so every replica's deadline lapses. Replica A is back first; B, alive, is
    not yet. A's fresh read (what an end records as the final viewers) must still count
    B's viewers. Before the fix it read 3 of 5: the chaos scenario's "150 of 300"."""
    clock = ManualClock()
    settings = {"presence": "redis", "redis_url": failover_cluster.url}
    a = RedisPresence(make_settings(**settings), ServiceMetrics(CollectorRegistry()), clock=clock)
    b = RedisPresence(make_settings(**settings), ServiceMetrics(CollectorRegistry()), clock=clock)
    sid = new_stream_id()
    try:
        a.set_local(sid, 3)
        b.set_local(sid, 2)
        await a._sync_once()
        await b._sync_once()
        await a._sync_once()  # steady state: each has seen the other live
        assert (await a.refresh([sid]))[sid] == 5
        victim = failover_cluster.master_of(a.global_key("replicas"))
        failover_cluster.wait_replicated(victim)  # the kill loses no write of theirs
        victim.kill()
        await back(a)  # A's heartbeat fails: an outage of A's own too
        key = a.global_key("replicas")
        await wait(lambda: promoted(failover_cluster, key, victim), within=60, what="promotion")

        async def lapsed() -> bool:
            """Neither deadline is in the future any more (Redis's clock)."""
            try:
                return not (
                    await a.instance_alive(a.instance_id) or await a.instance_alive(b.instance_id)
                )
            except PresenceUnavailable:
                return False  # A's client has not found the promoted master yet

        await wait(lapsed, within=30, what="every deadline lapsed through the outage")
        await wait(lambda: back(a), within=30, what="A's first sync after the failover")
        assert not await a.instance_alive(b.instance_id)  # B is not back yet
        assert (await a.refresh([sid]))[sid] == 5  # the final count an end would record
        assert a.global_count(sid) == 5
        await wait(lambda: back(b), within=30, what="B's first sync after the failover")
        await back(a)
        assert (await a.refresh([sid]))[sid] == 5
        assert (await b.refresh([sid]))[sid] == 5
    finally:
        for e in (a, b):
            await e.stop()
