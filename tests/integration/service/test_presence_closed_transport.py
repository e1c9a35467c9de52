"""A Redis connection closed under a command, on uvloop (the service's event loop).

When a failover or a timeout makes redis-py drop connections, another command may still
write on one of them. On uvloop that write raises ``RuntimeError`` ("the handler is
closed"), or ``AttributeError`` when the writer is already dropped, not a
``ConnectionError`` (redis-py #4217 normalizes it, unmerged): it escaped
the engine's failure handling, so a viewer's WebSocket got a 500, a sync lost its queued
drops, and an end whose final-count read hit it was never recorded. The engine must
count it as one failed Redis call (``PresenceUnavailable``) and reconnect on the next.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
import uvloop
from prometheus_client import CollectorRegistry
from redis.asyncio.cluster import RedisCluster

from nova_streaming.presence import PresenceUnavailable
from nova_streaming.presence.redis import RedisPresence
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings
from nova_testing.redis_cluster import RedisClusterServer
from nova_testing.redis_server import RedisServer


def test_a_write_on_a_connection_closed_under_it_is_a_redis_failure(
    redis_server: RedisServer,
    make_settings: Callable[..., Settings],
    new_stream_id: Callable[[], str],
) -> None:
    """The pooled connection's transport is closed behind redis-py's back (what a
    concurrent disconnect does): the next read fails as PresenceUnavailable, counted,
    and the one after it reconnects and reads the count."""
    sid = new_stream_id()

    async def scenario() -> None:
        metrics = ServiceMetrics(CollectorRegistry())
        engine = RedisPresence(make_settings(presence="redis", redis_url=redis_server.url), metrics)
        try:
            engine.set_local(sid, 2)
            await engine._sync_once()
            client = engine._redis()
            [conn] = client.connection_pool._available_connections
            conn._writer.transport.close()
            with pytest.raises(PresenceUnavailable):
                await engine.refresh([sid])
            failures = metrics.presence_errors.labels(operation="read")._value.get()
            assert failures == 1
            assert await engine.refresh([sid]) == {sid: 2}
        finally:
            await engine.stop()

    uvloop.run(scenario())


def test_a_cluster_node_disconnected_under_concurrent_reads_fails_them_as_redis_failures(
    redis_cluster: RedisClusterServer,
    make_settings: Callable[..., Settings],
) -> None:
    """What redis-py's Cluster client does to itself after a timeout or a failover:
    it disconnects a node's connections while other commands are in flight on them.
    Swept over where the disconnect falls (after 0..29 loop turns), 5 concurrent reads
    each time: every read answers the count or fails as PresenceUnavailable, never with
    the client's own race errors (RuntimeError, AttributeError on the dropped writer:
    the latter escaped before the fix, 500s on the WebSocket joins)."""
    sids = [str(uuid.uuid4()) for _ in range(10)]
    prefix = f"t{uuid.uuid4().hex[:10]}"
    escaped: list[BaseException] = []

    async def scenario() -> None:
        settings = make_settings(presence="redis", redis_url=redis_cluster.url, redis_prefix=prefix)
        engine = RedisPresence(settings, ServiceMetrics(CollectorRegistry()))
        try:
            for sid in sids:
                engine.set_local(sid, 2)
            await engine._sync_once()
            for turns in range(30):
                reads = [asyncio.ensure_future(engine.refresh(sids)) for _ in range(5)]
                for _ in range(turns):
                    await asyncio.sleep(0)
                client = engine._redis()
                assert isinstance(client, RedisCluster)
                for node in client.get_nodes():
                    await node.disconnect()
                for read in reads:
                    try:
                        assert await read == dict.fromkeys(sids, 2)
                    except PresenceUnavailable:
                        pass
                    except Exception as exc:
                        escaped.append(exc)
            assert await engine.refresh(sids) == dict.fromkeys(sids, 2)
        finally:
            await engine.stop()

    uvloop.run(scenario())
    assert not escaped, {type(e).__name__ for e in escaped}
