"""An instance taken for dead while it was alive (every heartbeat failing through a Redis
Cluster failover longer than the TTL) and reaped by another replica after it came back:
its counts must stay in the global sum, above all in the final count read at an end.

This is the sequence that made the chaos scenario ``cluster_failover`` record one
replica's share of the viewers; it is replayed step by step (no background loops) on a
real Redis, so it happens every run, not in half of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import redis
from prometheus_client import CollectorRegistry

from nova_streaming.presence.redis import RedisPresence
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings
from nova_testing.redis_server import RedisServer


def engine(
    make_settings: Callable[..., Settings], url: str, clock: Callable[[], float] | None = None
) -> RedisPresence:
    settings = make_settings(presence="redis", redis_url=url)
    if clock is None:
        return RedisPresence(settings, ServiceMetrics(CollectorRegistry()))
    return RedisPresence(settings, ServiceMetrics(CollectorRegistry()), clock=clock)


class Clock:
    """The engines' monotonic clock, moved by hand: a TTL passes only when a step says
    so, never because the machine was slow between two steps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def two_replicas(
    make_settings: Callable[..., Settings],
    server: RedisServer,
    sid: str,
    clock: Callable[[], float] | None = None,
    *,
    b_crashes: bool = False,
) -> AsyncIterator[tuple[RedisPresence, RedisPresence, redis.Redis]]:
    """A with 3 viewers of ``sid``, B with 2, each synced once, and a plain client of
    the server. At the end both withdraw, unless ``b_crashes``: a crashed B withdraws
    nothing, its connection is only closed."""
    a = engine(make_settings, server.url, clock)
    b = engine(make_settings, server.url, clock)
    client = server.client()
    try:
        a.set_local(sid, 3)
        b.set_local(sid, 2)
        await a._sync_once()
        await b._sync_once()
        yield a, b, client
    finally:
        client.close()
        await a.stop()
        if not b_crashes:
            await b.stop()
        elif b._client is not None:
            await b._client.aclose()


async def test_reap_of_an_instance_back_from_the_dead_keeps_its_counts(
    redis_server: RedisServer,
    make_settings: Callable[..., Settings],
    new_stream_id: Callable[[], str],
) -> None:
    """A sees B dead, B comes back (lapsed: full rewrite), then A's reap of B runs: the
    end's fresh read on A still counts B's viewers, and B's next sync leaves them there."""
    sid = new_stream_id()
    async with two_replicas(make_settings, redis_server, sid) as (a, b, client):
        assert (await a.refresh([sid]))[sid] == 5
        # The failover: B's deadline passes with no heartbeat getting through.
        client.zadd(a.global_key("replicas"), {b.instance_id: 1})
        _, dead = await a._heartbeat()  # A is back first and finds B dead
        assert dead == [b.instance_id]
        await b._sync_once()  # B is back: lapsed, it rewrites its counts
        await a._reap_instance(dead[0])  # A's sync goes on to reap B
        # The stream ends now: the owner A reads the final count.
        assert (await a.refresh([sid]))[sid] == 5
        await b._sync_once()
        await a._sync_once()
        assert (await a.refresh([sid]))[sid] == 5
        assert a.global_count(sid) == 5


async def test_instance_back_during_its_reap_rewrites_its_counts(
    redis_server: RedisServer,
    make_settings: Callable[..., Settings],
    new_stream_id: Callable[[], str],
) -> None:
    """B comes back while A's reap is deleting its counts (after A checked it dead): the
    reap marks it, and B's next heartbeat makes it rewrite every count."""
    sid = new_stream_id()
    async with two_replicas(make_settings, redis_server, sid) as (a, b, client):
        # A's reap deleted B's field (the deletes ran before B's heartbeat got through)...
        client.hdel(a.stream_key("presence", sid), b.instance_id)
        # ... and B is live when the reap leaves the set: marked, not forgotten.
        await a._reap_instance(b.instance_id)
        await b._sync_once()
        assert (await a.refresh([sid]))[sid] == 5


async def test_replica_back_from_a_shared_outage_does_not_reap_the_others(
    redis_server: RedisServer,
    make_settings: Callable[..., Settings],
    new_stream_id: Callable[[], str],
) -> None:
    """Every deadline lapsed at once (the heartbeats' master failed over): the first
    replica back finds the other dead but, cut off itself until now, leaves its counts
    and its entry alone; the other's next heartbeat makes its count count again."""
    sid = new_stream_id()
    async with two_replicas(make_settings, redis_server, sid) as (a, b, client):
        replicas = a.global_key("replicas")
        client.zadd(replicas, {a.instance_id: 1, b.instance_id: 1})
        await a._sync_once()  # A is back first: B looks dead
        assert client.hget(a.stream_key("presence", sid), b.instance_id) == "2"
        assert client.zscore(replicas, b.instance_id) is not None
        await b._sync_once()
        assert (await a.refresh([sid]))[sid] == 5


async def test_first_replica_back_from_a_shared_outage_still_counts_the_others(
    redis_server: RedisServer,
    make_settings: Callable[..., Settings],
    new_stream_id: Callable[[], str],
) -> None:
    """Every deadline lapsed at once (the heartbeats' master failed over). A is back
    first; B, alive, is back a moment later. In between, A's reads (an end's final count
    above all) still count B's viewers: B was live when A's heartbeats last held, and
    nothing since says it died. This window recorded half the final viewers in the chaos
    scenario ``cluster_failover`` (failed before the fix: 3 instead of 5)."""
    clock = Clock()
    sid = new_stream_id()
    async with two_replicas(make_settings, redis_server, sid, clock) as (a, b, client):
        await a._sync_once()  # steady state: each has seen the other live
        replicas = a.global_key("replicas")
        client.zadd(replicas, {a.instance_id: 1, b.instance_id: 1})
        clock.now += 0.5
        await a._sync_once()  # A is back first: B's deadline has lapsed too
        assert (await a.refresh([sid]))[sid] == 5  # what an end would record
        assert a.global_count(sid) == 5  # what A's API and its viewers see
        await b._sync_once()  # B is back
        await a._sync_once()
        assert (await a.refresh([sid]))[sid] == 5
        assert (await b.refresh([sid]))[sid] == 5


async def test_replica_dead_through_a_shared_outage_leaves_the_count_a_ttl_after_it(
    redis_server: RedisServer,
    make_settings: Callable[..., Settings],
    new_stream_id: Callable[[], str],
) -> None:
    """The other side of the rule above: B really died during the outage. A counts it
    for at most a TTL after A's heartbeats hold again, then B's viewers leave the count
    and A reaps it."""
    clock = Clock()
    sid = new_stream_id()
    async with two_replicas(make_settings, redis_server, sid, clock, b_crashes=True) as (
        a,
        b,
        client,
    ):
        await a._sync_once()
        client.zadd(a.global_key("replicas"), {a.instance_id: 1, b.instance_id: 1})
        clock.now += a.settings.presence_ttl  # the outage, as long as a TTL
        await a._sync_once()
        assert a.global_count(sid) == 5
        clock.now += a.settings.presence_ttl  # B never came back
        await a._sync_once()
        assert a.global_count(sid) == 3
        assert (await a.refresh([sid]))[sid] == 3
        assert client.hget(a.stream_key("presence", sid), b.instance_id) is None  # reaped
        assert client.zscore(a.global_key("replicas"), b.instance_id) is None
