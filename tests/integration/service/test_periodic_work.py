"""Periodic Redis work is O(changes): idle replicas do not touch every active stream on
every maintenance pass (issue 9, item 6). Watched with Redis' own MONITOR."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis

from nova_testing.redis_server import RedisServer

pytestmark = pytest.mark.slow

Replicas = Callable[..., Awaitable[Any]]
Wait = Callable[..., Awaitable[Any]]


class Monitor:
    """Every command Redis executes (Lua's included), recorded from a MONITOR thread."""

    def __init__(self, server: RedisServer) -> None:
        self._client = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.commands.append(str(self._monitor.next_command()["command"]))
            except (redis.RedisError, OSError, ValueError):
                return

    def close(self) -> None:
        """Stop recording (the MONITOR connection is closed)."""
        self._stop.set()
        self._client.connection_pool.disconnect()
        self._thread.join(timeout=10)


@pytest.fixture
def monitor(redis_server: RedisServer) -> Iterator[Callable[[], Monitor]]:
    """Start MONITOR recorders with ``monitor()``; all closed at teardown."""
    started: list[Monitor] = []

    def start() -> Monitor:
        started.append(Monitor(redis_server))
        return started[-1]

    yield start
    for m in started:
        m.close()


async def test_idle_replicas_do_not_scan_the_active_streams(
    redis_server: RedisServer,
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    monitor: Callable[[], Monitor],
    wait: Wait,
) -> None:
    """A owns 100 live streams; B and C have no viewers and own nothing. Over several of
    their sync and maintenance passes, Redis executes no command on any stream record
    (the old owner_lost reaper read every stream, on every replica, every second)."""
    engine = {"presence": "redis", "redis_url": redis_server.url}
    owner = await replicas(**engine)
    for _ in range(100):
        await owner.service.registry.start(new_stream_id(), "test-1", "live")
    # The owner's own per-pass reconciliation reads its streams: stop it for the window.
    loop_task = owner.service.registry._loop_task
    assert loop_task is not None
    loop_task.cancel()
    idle = [await replicas(**engine), await replicas(**engine)]
    passes = [0, 0]
    for n, replica in enumerate(idle):
        sync_once = replica.service.presence._sync_once

        async def counted(n: int = n, sync_once: Any = sync_once) -> None:
            await sync_once()
            passes[n] += 1

        replica.service.presence._sync_once = counted
    await wait(lambda: min(passes) >= 1, what="first passes")
    watch = monitor()
    start = list(passes)
    await wait(lambda: min(p - s for p, s in zip(passes, start, strict=True)) >= 4, what="passes")
    watch.close()
    assert watch.commands, "MONITOR saw the replicas' heartbeats"
    touching = [c for c in watch.commands if ":stream:" in c]
    assert touching == [], touching[:5]
