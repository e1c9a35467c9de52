"""Fixtures for the multi-replica tests: service replicas with the ingest wired in, all
sharing one Redis, in this process (each with its own StreamingMetrics on a fresh
CollectorRegistry) or as ``nova-streaming serve`` subprocesses (to SIGKILL or SIGSTOP).

Redis and the crafted RTMP publishers come from the parent conftest's fixtures; the
servers behind them, nginx and the in-process uvicorn runner from ``nova_testing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from nova_streaming.app import create_app
from nova_streaming.ingest import service_extension
from nova_streaming.ingest.extension import ingest_component
from nova_streaming.ingest.nginx_conf import NginxRtmpConfig, write_nginx_config
from nova_streaming.runner import uvicorn_config
from nova_streaming.settings import Settings
from nova_testing.nginx import NginxProcess, run_nginx
from nova_testing.ports import free_port
from nova_testing.redis_server import RedisServer
from nova_testing.rtmp_publisher import RtmpPublisher
from nova_testing.uvicorn_server import UvicornServer
from streaming_metrics import StreamingMetrics

SECRET = "replicas-test-secret"
REGION = "test-1"
VENV_BIN = Path(sys.executable).parent
# Short timings: a dead replica's heartbeat expires in TTL, its streams are reaped
# `stream_grace` later; the sync interval is min(1, TTL/4).
TTL = 1.2
GRACE = 1.0
# Starts of a replica process whose port was taken before it could bind it.
_BIND_ATTEMPTS = 3


def settings_for(redis_url: str, **changes: Any) -> Settings:
    """Replica settings on Redis with short timings and free ports."""
    base: dict[str, Any] = {
        "region": REGION,
        "presence": "redis",
        "redis_url": redis_url,
        "host": "127.0.0.1",
        "metrics_host": "127.0.0.1",
        "ingest_port": free_port(),
        "publish_secret": SECRET,
        "replica_id": f"replica-{uuid.uuid4().hex[:8]}",
        "presence_ttl": TTL,
        "stream_grace": GRACE,
        "ingest_timeout": 10.0,
        "viewer_update_interval": 0.2,
        "ws_ping_interval": 5.0,
        "ws_ping_timeout": 5.0,
    }
    base.update(changes)
    return Settings(**base)


class Replica:
    """One replica (app + ingest extension) served by uvicorn in this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = StreamingMetrics(CollectorRegistry(), regions=[settings.region])
        self.app = create_app(
            settings, metrics=self.metrics, extensions=[service_extension(settings)]
        )
        self.service = self.app.state.service
        self.registry = self.service.registry
        self.component = ingest_component(self.app)
        # The receiver binds a port of the kernel's choosing at start: a port picked free
        # beforehand could be taken by another process before the bind.
        self.component.port = 0
        self.server = UvicornServer(
            uvicorn_config(self.app, settings, log_level="warning"), name="replica"
        )
        self.port = self.server.port

    @property
    def http(self) -> str:
        return self.server.http

    @property
    def ingest_port(self) -> int:
        """The RTMP receiver's bound port (once started)."""
        receiver = self.component.receiver
        if receiver is None:
            raise RuntimeError("replica not started: its ingest port is chosen at start")
        return receiver.port

    def ws(self, stream_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/streams/{stream_id}"

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()


class ReplicaExited(RuntimeError):
    """A replica process ended before it was ready; ``output`` is what it logged."""

    def __init__(self, replica_id: str, returncode: int, output: str) -> None:
        super().__init__(f"replica {replica_id} exited: {returncode}\n{output[-3000:]}")
        self.output = output

    @property
    def port_taken(self) -> bool:
        """It failed to bind a port (EADDRINUSE): another process took a port between
        ``free_port()`` and the replica's bind (uvicorn exits 3, the metrics server 1)."""
        return "[Errno 98]" in self.output


class ReplicaProcess:
    """``nova-streaming serve`` (ingest included) as a subprocess on free ports."""

    def __init__(
        self,
        redis_url: str,
        *,
        replica_id: str,
        stream_grace: float = GRACE,
        presence_ttl: float = TTL,
        extra_args: Sequence[str] = (),
        log: Path | None = None,
    ) -> None:
        self.replica_id = replica_id
        self.log = log
        self.port, self.metrics_port, self.ingest_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_")}
        out = subprocess.DEVNULL if log is None else log.open("ab")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "nova-streaming"),
                "serve",
                "--presence=redis",
                f"--redis-url={redis_url}",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--metrics-host=127.0.0.1",
                f"--metrics-port={self.metrics_port}",
                f"--ingest-port={self.ingest_port}",
                f"--region={REGION}",
                f"--publish-secret={SECRET}",
                f"--presence-ttl={presence_ttl}",
                f"--stream-grace={stream_grace}",
                "--viewer-update-interval=0.2",
                f"--replica-id={replica_id}",
                "--log-level=warning",
                *extra_args,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        if log is not None:
            out.close()  # the child has its own descriptor

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        """Return once ``/readyz`` answers 200; :class:`ReplicaExited` (with the output,
        when logged) if the process ends first."""
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                if self.proc.poll() is not None:
                    output = self.log.read_text(errors="replace") if self.log else ""
                    raise ReplicaExited(self.replica_id, self.proc.returncode, output)
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.http + "/readyz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica {self.replica_id} not ready")
                await asyncio.sleep(0.05)

    async def scrape(self) -> str:
        """The replica's /metrics text."""
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        response.raise_for_status()
        return response.text

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            # A SIGSTOPped process must be continued to act on SIGTERM.
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(timeout=10)


class Cluster:
    """Everything a multi-replica test starts, on one Redis; stopped at teardown."""

    secret = SECRET
    ttl = TTL
    grace = GRACE

    def __init__(
        self,
        redis: RedisServer,
        publishers: Callable[[int], Awaitable[RtmpPublisher]],
        stack: contextlib.ExitStack,
        tmp_path: Path,
    ) -> None:
        self.redis = redis
        self.replicas: list[Replica] = []
        self.processes: list[ReplicaProcess] = []
        self._publishers = publishers
        self._stack = stack
        self._tmp = tmp_path
        self._started = 0

    async def replica(self, **changes: Any) -> Replica:
        """An in-process replica (settings overridable), started."""
        replica = Replica(settings_for(self.redis.url, **changes))
        self.replicas.append(replica)
        await replica.start()
        return replica

    async def process(
        self, replica_id: str, *, log: Path | None = None, **kwargs: Any
    ) -> ReplicaProcess:
        """A ``nova-streaming serve`` subprocess replica, ready (its output goes to
        ``log``, by default a file under the test's tmp_path).

        Its three ports are picked free, but another process on the machine may bind
        one before the replica does; then the replica is started again on new ports
        (the failed attempt's output is kept beside ``log``, as ``*.port-taken-N``)."""
        self._started += 1
        log = log or self._tmp / f"{replica_id}-{self._started}.log"
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            proc = ReplicaProcess(self.redis.url, replica_id=replica_id, log=log, **kwargs)
            self.processes.append(proc)
            try:
                await proc.ready()
            except ReplicaExited as exc:
                if not exc.port_taken or attempt == _BIND_ATTEMPTS:
                    raise
                log.rename(log.with_name(f"{log.name}.port-taken-{attempt}"))
                continue
            return proc
        raise AssertionError("unreachable")

    async def publisher(self, port: int) -> RtmpPublisher:
        """A crafted RTMP publisher connected to ``port`` (closed at teardown)."""
        return await self._publishers(port)

    def nginx(self, callback_base: str, push_port: int) -> NginxProcess:
        """nginx-rtmp calling back ``callback_base`` and pushing to ``push_port``."""
        prefix = self._tmp / f"nginx-{push_port}"
        rtmp_port, stat_port = free_port(), free_port()
        config = NginxRtmpConfig(
            prefix=prefix,
            rtmp_port=rtmp_port,
            rtmp_listen="127.0.0.1",
            stat_port=stat_port,
            callback_base=callback_base,
            push_urls=(f"rtmp://127.0.0.1:{push_port}/live",),
            push_reconnect="1s",
            drop_idle_publisher="30s",
        )
        conf = write_nginx_config(config)
        return self._stack.enter_context(run_nginx(prefix, conf, rtmp_port, stat_port))

    async def close(self) -> None:
        """Stop everything, each part even when an earlier one failed to stop (a replica
        that does not stop in time must not leave the others or nginx running); the
        first failure is raised at the end."""
        failures: list[BaseException] = []
        try:
            self._stack.close()
        except Exception as exc:
            failures.append(exc)
        for replica in reversed(self.replicas):
            try:
                await replica.stop()
            except Exception as exc:
                failures.append(exc)
        for proc in self.processes:
            try:
                proc.kill()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


@pytest.fixture
async def cluster(
    redis_server: RedisServer,
    publishers: Callable[[int], Awaitable[RtmpPublisher]],
    tmp_path: Path,
) -> AsyncIterator[Cluster]:
    """Replicas (in-process and subprocess), nginx and publishers on one fresh Redis."""
    stack = contextlib.ExitStack()
    cluster = Cluster(redis_server, publishers, stack, tmp_path)
    try:
        yield cluster
    finally:
        await cluster.close()
