"""Fixtures for the service tests: in-process replicas served by uvicorn on free ports,
both presence engines, and helpers to wait on conditions (Redis comes from the parent
conftest)."""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from nova_streaming.app import create_app
from nova_streaming.runner import uvicorn_config
from nova_streaming.service import Component, Service
from nova_streaming.settings import Settings
from nova_testing.ports import free_port
from nova_testing.redis_cluster import RedisClusterServer
from nova_testing.redis_server import RedisServer
from nova_testing.uvicorn_server import UvicornServer
from nova_testing.waiting import wait_for
from streaming_metrics import StreamingMetrics

_replica_ids = itertools.count(1)


def build_settings(**changes: Any) -> Settings:
    """Settings with short timings so tests run in seconds."""
    base: dict[str, Any] = {
        "region": "test-1",
        "host": "127.0.0.1",
        "metrics_host": "127.0.0.1",
        "replica_id": f"test-replica-{next(_replica_ids)}-{uuid.uuid4().hex[:6]}",
        "presence_ttl": 1.6,
        "viewer_update_interval": 0.2,
        "ws_ping_interval": 5.0,
        "ws_ping_timeout": 5.0,
        "stream_grace": 0.5,
        "series_linger": 60.0,
    }
    base.update(changes)
    return Settings(**base)


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Build test settings: ``make_settings(presence="redis", ...)``."""
    return build_settings


class Replica:
    """One app instance served by uvicorn in this process on a free port."""

    def __init__(self, settings: Settings, components: Sequence[Component] = ()) -> None:
        self.metrics = StreamingMetrics(
            CollectorRegistry(),
            series_linger_seconds=settings.series_linger,
            max_tracked_streams=settings.max_tracked_streams,
            regions=[settings.region],
        )
        self.app = create_app(settings, metrics=self.metrics, components=components)
        self.service: Service = self.app.state.service
        self.settings = settings
        config = uvicorn_config(self.app, settings, log_level="warning")
        config.backlog = 4096
        self.server = UvicornServer(config, name="replica")
        self.port = self.server.port

    @property
    def http(self) -> str:
        return self.server.http

    def ws(self, stream_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/streams/{stream_id}"

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels or {})

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http, timeout=5) as client:
            return await client.get(path)


@pytest.fixture
async def replicas() -> AsyncIterator[Callable[..., Awaitable[Replica]]]:
    """Start replicas with ``await replicas(**settings)``; all are stopped at the end."""
    started: list[Replica] = []

    async def make(components: Sequence[Component] = (), **changes: Any) -> Replica:
        replica = Replica(build_settings(**changes), components)
        await replica.start()
        started.append(replica)
        return replica

    try:
        yield make
    finally:
        # Each one is stopped even when an earlier one failed to; the first failure wins.
        failures: list[BaseException] = []
        for replica in reversed(started):
            try:
                await replica.stop()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer]:
    """One 3-master Redis Cluster for the whole session (tests isolate themselves by
    key prefix); always stopped."""
    cluster = RedisClusterServer(masters=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def engine(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings selecting each engine in turn: the presence/registry contract runs on
    memory, one Redis and a 3-master Redis Cluster."""
    if request.param == "memory":
        return {"presence": "memory"}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return {"presence": "redis", "redis_url": server.url}
    cluster: RedisClusterServer = request.getfixturevalue("redis_cluster")
    # The cluster outlives the test: a prefix of its own keeps tests apart.
    return {
        "presence": "redis",
        "redis_url": cluster.url,
        "redis_prefix": f"t{uuid.uuid4().hex[:10]}",
    }


@pytest.fixture
def new_stream_id() -> Callable[[], str]:
    """Fresh stream UUIDs."""
    return lambda: str(uuid.uuid4())


@pytest.fixture
def wait() -> Callable[..., Awaitable[Any]]:
    """``await wait(lambda: cond, what=...)``: poll with a deadline (10 s by default)."""
    return functools.partial(wait_for, within=10.0)


@pytest.fixture
def free_ports() -> Callable[[], int]:
    """Free loopback ports for servers this test starts as subprocesses."""
    return free_port
