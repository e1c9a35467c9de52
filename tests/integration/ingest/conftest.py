"""Fixtures for the ingest integration tests: a recording sink, a receiver on a free
loopback port, real nginx-rtmp, and the whole service with the ingest wired in (the
crafted RTMP publisher fixture is in the parent conftest)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nova_streaming.ingest.receiver import IngestReceiver, IngestSession, StopReason, VideoFrame
from nova_testing.nginx import NginxProcess, run_nginx
from nova_testing.ports import free_port
from nova_testing.uvicorn_server import UvicornServer
from nova_testing.waiting import wait_for

WAIT_SECONDS = 15.0


@dataclass
class RecordingSink:
    """An IngestSink that records every call, for assertions."""

    starts: list[IngestSession] = field(default_factory=list)
    stops: list[tuple[IngestSession, StopReason]] = field(default_factory=list)
    frames: list[tuple[IngestSession, VideoFrame]] = field(default_factory=list)
    metadata: list[tuple[IngestSession, dict[str, object]]] = field(default_factory=list)
    bitrates: list[tuple[IngestSession, str, float]] = field(default_factory=list)
    errors: list[tuple[IngestSession | None, str, int, str]] = field(default_factory=list)

    def on_publish_start(self, session: IngestSession) -> bool | None:
        self.starts.append(session)
        return None

    def on_metadata(self, session: IngestSession, metadata: Mapping[str, object]) -> None:
        self.metadata.append((session, dict(metadata)))

    def on_video_frame(self, session: IngestSession, frame: VideoFrame) -> None:
        self.frames.append((session, frame))

    def on_bitrate(self, session: IngestSession, quality: str, kbps: float) -> None:
        self.bitrates.append((session, quality, kbps))

    def on_publish_stop(self, session: IngestSession, reason: StopReason) -> None:
        self.stops.append((session, reason))

    def on_error(
        self, session: IngestSession | None, error_type: str, count: int, detail: str
    ) -> None:
        self.errors.append((session, error_type, count, detail))

    def error_count(self, error_type: str) -> int:
        return sum(count for _, kind, count, _ in self.errors if kind == error_type)

    def frames_of(self, stream_id: str) -> list[VideoFrame]:
        return [frame for session, frame in self.frames if session.stream_id == stream_id]


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


ReceiverFactory = Callable[..., Awaitable[IngestReceiver]]


@pytest.fixture
async def make_receiver(sink: RecordingSink) -> AsyncIterator[ReceiverFactory]:
    """Start receivers on free loopback ports (always stopped at teardown)."""
    started: list[IngestReceiver] = []

    async def factory(**kwargs: object) -> IngestReceiver:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 0)
        receiver = IngestReceiver(sink, **kwargs)  # type: ignore[arg-type]
        await receiver.start()
        started.append(receiver)
        return receiver

    yield factory
    for receiver in started:
        await receiver.stop()


@pytest.fixture
def wait() -> Callable[..., Awaitable[None]]:
    """The polling helper ``wait(condition, within=..., what=...)`` (15 s by default)."""
    return functools.partial(wait_for, within=WAIT_SECONDS)


@pytest.fixture
def nginx_runner() -> Callable[..., contextlib.AbstractContextManager[NginxProcess]]:
    """The nginx context manager ``run_nginx(prefix, conf, rtmp_port, stat_port)``."""
    return run_nginx


@pytest.fixture
def port_finder() -> Callable[[], int]:
    """A function returning a free loopback port."""
    return free_port


# --- the whole service (app + ingest extension) on free ports ---------------------------

SERVICE_SECRET = "service-test-secret"


class ServiceUnderTest:
    """The service app with the ingest extension, served by uvicorn in this process."""

    def __init__(self, **changes: object) -> None:
        import uuid

        from prometheus_client import CollectorRegistry

        from nova_streaming.app import create_app
        from nova_streaming.ingest import service_extension
        from nova_streaming.ingest.extension import ingest_component
        from nova_streaming.runner import uvicorn_config
        from nova_streaming.settings import Settings
        from streaming_metrics import StreamingMetrics

        base: dict[str, object] = {
            "region": "test-1",
            "host": "127.0.0.1",
            "metrics_host": "127.0.0.1",
            "ingest_port": free_port(),
            "publish_secret": SERVICE_SECRET,
            "replica_id": f"ingest-test-{uuid.uuid4().hex[:8]}",
            "ingest_timeout": 10.0,
            "stream_grace": 5.0,
            "presence_ttl": 2.0,
            "viewer_update_interval": 0.2,
        }
        base.update(changes)
        self.settings = Settings(**base)  # type: ignore[arg-type]
        self.metrics = StreamingMetrics(CollectorRegistry(), regions=[self.settings.region])
        self.app = create_app(
            self.settings, metrics=self.metrics, extensions=[service_extension(self.settings)]
        )
        self.service = self.app.state.service
        self.component = ingest_component(self.app)
        self.server = UvicornServer(
            uvicorn_config(self.app, self.settings, log_level="warning"), name="service"
        )
        self.port = self.server.port

    @property
    def http(self) -> str:
        return self.server.http

    @property
    def ingest_port(self) -> int:
        return self.settings.ingest_port

    def sample(self, name: str, **labels: str) -> float:
        """A sample's value, 0 when absent."""
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def errors(self, error_type: str) -> float:
        return self.sample("nova_streaming_broadcast_errors_total", error_type=error_type)

    async def start(self) -> None:
        await self.server.start(within=WAIT_SECONDS)

    async def stop(self) -> None:
        await self.server.stop()

    async def post(self, path: str, body: str) -> int:
        import httpx

        async with httpx.AsyncClient(base_url=self.http, timeout=10) as client:
            response = await client.post(
                path, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
            )
            return response.status_code

    async def get_json(self, path: str) -> object:
        import httpx

        async with httpx.AsyncClient(base_url=self.http, timeout=10) as client:
            return (await client.get(path)).json()


@pytest.fixture
async def make_service() -> AsyncIterator[Callable[..., Awaitable[ServiceUnderTest]]]:
    """Start services with ``await make_service(**settings)``; all stopped at teardown."""
    started: list[ServiceUnderTest] = []

    async def factory(**changes: object) -> ServiceUnderTest:
        service = ServiceUnderTest(**changes)
        started.append(service)
        await service.start()
        return service

    yield factory
    for service in reversed(started):
        await service.stop()


@pytest.fixture
def service_nginx(
    tmp_path: Path,
) -> Iterator[Callable[[ServiceUnderTest], NginxProcess]]:
    """``service_nginx(service)``: nginx-rtmp calling back ``service`` and pushing to its
    receiver (one push target), on free ports; stopped at teardown."""
    from nova_streaming.ingest.nginx_conf import NginxRtmpConfig, write_nginx_config

    stack = contextlib.ExitStack()

    def start(service: ServiceUnderTest) -> NginxProcess:
        prefix = tmp_path / f"nginx-{service.port}"
        rtmp_port, stat_port = free_port(), free_port()
        config = NginxRtmpConfig(
            prefix=prefix,
            rtmp_port=rtmp_port,
            rtmp_listen="127.0.0.1",
            stat_port=stat_port,
            callback_base=service.http,
            push_urls=(f"rtmp://127.0.0.1:{service.ingest_port}/live",),
            push_reconnect="1s",
            drop_idle_publisher="30s",
        )
        conf = write_nginx_config(config)
        return stack.enter_context(run_nginx(prefix, conf, rtmp_port, stat_port))

    with stack:
        yield start
