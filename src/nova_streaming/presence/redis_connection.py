"""Clients for the Redis engine: one node or a Redis Cluster, and the pub/sub subscriber.

The only module besides :mod:`nova_streaming.presence.redis` that imports ``redis``.

Classic pub/sub (PUBLISH/SUBSCRIBE) is cluster-wide in Redis Cluster: a message published
on any node reaches subscribers on every node, so the subscriber is a plain connection
to one node, moved to the next known node when its node fails.
"""

from __future__ import annotations

from typing import TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from nova_streaming.presence.redis_url import RedisTarget

__all__ = ["RedisClient", "connect", "subscriber"]

RedisClient: TypeAlias = "aioredis.Redis | RedisCluster"


def connect(target: RedisTarget, timeout: float) -> RedisClient:
    """A client for ``target`` (nothing is contacted until the first command)."""
    # One immediate retry hides a pooled connection that a restart or a failover broke;
    # longer outages surface and are counted by the engine's own loops.
    retry = Retry(NoBackoff(), 1)
    if not target.cluster:
        return aioredis.Redis.from_url(
            target.url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=retry,
        )
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=retry,
    )


def subscriber(
    client: RedisClient, target: RedisTarget, attempt: int, timeout: float
) -> tuple[aioredis.Redis, bool, int]:
    """A connection to SUBSCRIBE on, whether the caller must close it, and how many
    nodes there are to try.

    One node: the shared client. Cluster: a plain connection to one known node, the
    next one on each ``attempt``, so a failed node is left for the next.
    """
    if not isinstance(client, RedisCluster):
        return client, False, 1
    nodes = sorted({(n.host, int(n.port)) for n in client.get_nodes()} | set(target.nodes))
    host, port = nodes[attempt % len(nodes)]
    node = aioredis.Redis(
        host=host,
        port=port,
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    return node, True, len(nodes)
