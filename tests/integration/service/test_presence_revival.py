"""An instance taken for dead while it was alive (every heartbeat failing through a Redis
Cluster failover longer than the TTL) and reaped by another replica after it came back:
its counts must stay in the global sum, above all in the final count read at an end.

This is the sequence that made the chaos scenario ``cluster_failover`` record one
replica's share of the viewers; it is replayed step by step (no background loops) on a
real Redis, so it happens every run, not in half of them.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from nova_streaming.presence.redis import RedisPresence
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings
from nova_testing.redis_server import RedisServer


def engine(make_settings: Callable[..., Settings], url: str) -> RedisPresence:
    settings = make_settings(presence="redis", redis_url=url)
    return RedisPresence(settings, ServiceMetrics(CollectorRegistry()))


async def test_reap_of_an_instance_back_from_the_dead_keeps_its_counts(
    redis_server: RedisServer,
    make_settings: Callable[..., Settings],
    new_stream_id: Callable[[], str],
) -> None:
    """A sees B dead, B comes back (lapsed: full rewrite), then A's reap of B runs: the
    end's fresh read on A still counts B's viewers, and B's next sync leaves them there."""
    a = engine(make_settings, redis_server.url)
    b = engine(make_settings, redis_server.url)
    sid = new_stream_id()
    client = redis_server.client()
    try:
        a.set_local(sid, 3)
        b.set_local(sid, 2)
        await a._sync_once()
        await b._sync_once()
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
    finally:
        client.close()
        for e in (a, b):
            await e.stop()


async def test_instance_back_during_its_reap_rewrites_its_counts(
    redis_server: RedisServer,
    make_settings: Callable[..., Settings],
    new_stream_id: Callable[[], str],
) -> None:
    """B comes back while A's reap is deleting its counts (after A checked it dead): the
    reap marks it, and B's next heartbeat makes it rewrite every count."""
    a = engine(make_settings, redis_server.url)
    b = engine(make_settings, redis_server.url)
    sid = new_stream_id()
    client = redis_server.client()
    try:
        a.set_local(sid, 3)
        b.set_local(sid, 2)
        await a._sync_once()
        await b._sync_once()
        # A's reap deleted B's field (the deletes ran before B's heartbeat got through)...
        client.hdel(a.stream_key("presence", sid), b.instance_id)
        # ... and B is live when the reap leaves the set: marked, not forgotten.
        await a._reap_instance(b.instance_id)
        await b._sync_once()
        assert (await a.refresh([sid]))[sid] == 5
    finally:
        client.close()
        for e in (a, b):
            await e.stop()
