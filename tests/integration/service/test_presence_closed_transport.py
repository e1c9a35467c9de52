"""A Redis connection closed under a command, on uvloop (the service's event loop).

When a failover or a timeout makes redis-py drop connections, another command may still
write on one of them. On uvloop that write raises ``RuntimeError`` ("the handler is
closed"), not a ``ConnectionError`` (redis-py #4217 normalizes it, unmerged): it escaped
the engine's failure handling, so a viewer's WebSocket got a 500, a sync lost its queued
drops, and an end whose final-count read hit it was never recorded. The engine must
count it as one failed Redis call (``PresenceUnavailable``) and reconnect on the next.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import uvloop
from prometheus_client import CollectorRegistry

from nova_streaming.presence import PresenceUnavailable
from nova_streaming.presence.redis import RedisPresence
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings
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
