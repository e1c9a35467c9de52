"""Fixtures for the service tests: Redis on a free loopback port, in-process replicas
served by uvicorn on free ports, and helpers to wait on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from prometheus_client import CollectorRegistry

from nova_streaming.app import create_app
from nova_streaming.runner import uvicorn_config
from nova_streaming.service import Service
from nova_streaming.settings import Settings
from streaming_metrics import StreamingMetrics

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
_replica_ids = itertools.count(1)


def free_port() -> int:
    """A port nothing listens on right now (bind 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 (no persistence), restartable on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="nova-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on {self.port}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh Redis per test, always stopped."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


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

    def __init__(self, settings: Settings) -> None:
        self.metrics = StreamingMetrics(
            CollectorRegistry(),
            series_linger_seconds=settings.series_linger,
            max_tracked_streams=settings.max_tracked_streams,
            regions=[settings.region],
        )
        self.app = create_app(settings, metrics=self.metrics)
        self.service: Service = self.app.state.service
        self.settings = settings
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn_config(self.app, settings, log_level="warning")
        config.backlog = 4096
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, stream_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/streams/{stream_id}"

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels or {})

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        deadline = time.monotonic() + 15
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError("replica exited during start")
            if time.monotonic() > deadline:
                raise RuntimeError("replica did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.task = None
        self.sock.close()

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http, timeout=5) as client:
            return await client.get(path)


@pytest.fixture
async def replicas() -> AsyncIterator[Callable[..., Awaitable[Replica]]]:
    """Start replicas with ``await replicas(**settings)``; all are stopped at the end."""
    started: list[Replica] = []

    async def make(**changes: Any) -> Replica:
        replica = Replica(build_settings(**changes))
        await replica.start()
        started.append(replica)
        return replica

    try:
        yield make
    finally:
        for replica in reversed(started):
            await replica.stop()


@pytest.fixture(params=["memory", "redis"])
def engine(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings selecting each presence engine in turn (contract tests run on both)."""
    if request.param == "memory":
        return {"presence": "memory"}
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"presence": "redis", "redis_url": server.url}


async def wait_for(
    condition: Callable[[], Any], *, within: float = 10.0, message: str = "condition"
) -> Any:
    """Poll ``condition`` (sync or async) until truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        last = result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message} (last: {last!r})")
        await asyncio.sleep(0.02)


@pytest.fixture
def new_stream_id() -> Callable[[], str]:
    """Fresh stream UUIDs."""
    return lambda: str(uuid.uuid4())


@pytest.fixture
def wait() -> Callable[..., Awaitable[Any]]:
    """``await wait(lambda: cond, message=...)``: poll with a deadline."""
    return wait_for


@pytest.fixture
def free_ports() -> Callable[[], int]:
    """Free loopback ports for servers this test starts as subprocesses."""
    return free_port
