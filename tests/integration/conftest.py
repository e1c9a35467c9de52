"""Fixtures shared by every integration suite (pytest applies them to all the
subdirectories): a fresh Redis and crafted RTMP publishers. The classes behind them live
in the ``nova_testing`` package."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from nova_testing.redis_server import RedisServer
from nova_testing.rtmp_publisher import RtmpPublisher


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh Redis per test, always stopped."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.cleanup()


@pytest.fixture
async def publishers() -> AsyncIterator[Callable[[int], Awaitable[RtmpPublisher]]]:
    """Open crafted publishers with ``await publishers(port)``; all closed at teardown."""
    opened: list[RtmpPublisher] = []

    async def factory(port: int) -> RtmpPublisher:
        pub = await RtmpPublisher.open(port)
        opened.append(pub)
        return pub

    yield factory
    for pub in opened:
        await pub.close()
