"""Fixtures for the ingest integration tests: a recording sink, a receiver on a free
loopback port, a crafted RTMP publisher, and real nginx-rtmp."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nova_streaming.ingest import amf0
from nova_streaming.ingest.chunks import (
    MSG_AUDIO,
    MSG_COMMAND_AMF0,
    MSG_DATA_AMF0,
    MSG_SET_CHUNK_SIZE,
    MSG_VIDEO,
    ChunkReader,
    ChunkWriter,
    Message,
    control_message,
)
from nova_streaming.ingest.receiver import IngestReceiver, IngestSession, StopReason, VideoFrame

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


async def wait_for(
    condition: Callable[[], bool], limit: float = WAIT_SECONDS, what: str = "condition"
) -> None:
    """Poll ``condition`` until true; fail the test after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A currently free loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


class RtmpPublisher:
    """A crafted RTMP client: handshake, connect/createStream/publish, then media with
    timestamps chosen by the test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.chunks = ChunkWriter()
        self.incoming = ChunkReader()
        self.messages: list[Message] = []

    @classmethod
    async def open(cls, port: int) -> RtmpPublisher:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def handshake(self) -> None:
        c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
        self.writer.write(b"\x03" + c1)
        s0s1s2 = await asyncio.wait_for(self.reader.readexactly(1 + 1536 * 2), WAIT_SECONDS)
        assert s0s1s2[0] == 3
        self.writer.write(s0s1s2[1 : 1 + 1536])  # C2 echoes S1

    async def _until(self, predicate: Callable[[Message], bool]) -> Message:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            for msg in self.messages:
                if predicate(msg):
                    self.messages.remove(msg)
                    return msg
            data = await asyncio.wait_for(self.reader.read(65536), deadline - time.monotonic())
            if not data:
                raise ConnectionError("receiver closed the connection")
            self.messages.extend(self.incoming.feed(data))

    async def command(self, *values: object, stream_id: int = 0) -> None:
        body = amf0.encode(*values)  # type: ignore[arg-type]
        self.writer.write(self.chunks.message(3, MSG_COMMAND_AMF0, stream_id, 0, body))
        await self.writer.drain()

    async def result(self, name: str) -> list[amf0.AmfValue]:
        msg = await self._until(
            lambda m: m.type_id == MSG_COMMAND_AMF0 and amf0.decode(m.payload)[0] == name
        )
        return amf0.decode(msg.payload)

    async def publish(self, name: str, *, chunk_size: int = 4096) -> None:
        """Handshake, connect, createStream, publish; waits for the replies."""
        await self.handshake()
        if chunk_size != 128:
            self.writer.write(control_message(MSG_SET_CHUNK_SIZE, chunk_size))
            self.chunks.chunk_size = chunk_size
        await self.command("connect", 1, {"app": "live", "type": "nonprivate"})
        connect = await self.result("_result")
        assert connect[3]["code"] == "NetConnection.Connect.Success"  # type: ignore[index]
        await self.command("createStream", 2, None)
        created = await self.result("_result")
        stream_id = int(created[3])  # type: ignore[arg-type]
        await self.command("publish", 3, None, name, "live", stream_id=stream_id)
        status = await self.result("onStatus")
        assert status[3]["code"] == "NetStream.Publish.Start"  # type: ignore[index]

    async def metadata(self, values: dict[str, object], set_data_frame: bool = False) -> None:
        body = (
            (amf0.encode("@setDataFrame") if set_data_frame else b"")
            + amf0.encode("onMetaData")
            + amf0.encode_ecma_array(values)
        )
        self.writer.write(self.chunks.message(5, MSG_DATA_AMF0, 1, 0, body))
        await self.writer.drain()

    def video(self, timestamp: int, size: int = 2000, keyframe: bool = False) -> None:
        head = bytes((0x17 if keyframe else 0x27, 0x01, 0, 0, 0))
        self.writer.write(
            self.chunks.message(6, MSG_VIDEO, 1, timestamp, head + bytes(max(size - 5, 0)))
        )

    def video_config(self, timestamp: int = 0) -> None:
        self.writer.write(self.chunks.message(6, MSG_VIDEO, 1, timestamp, b"\x17\x00\x00\x00\x00"))

    def audio(self, timestamp: int, size: int = 300) -> None:
        self.writer.write(
            self.chunks.message(4, MSG_AUDIO, 1, timestamp, b"\xaf\x01" + bytes(size - 2))
        )

    async def drain(self) -> None:
        await self.writer.drain()

    async def closed_by_peer(self) -> bool:
        """True once the receiver has closed the connection (EOF or reset)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), WAIT_SECONDS):
                pass
        except (ConnectionError, OSError):
            return True
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@pytest.fixture
async def publishers() -> AsyncIterator[Callable[[int], Awaitable[RtmpPublisher]]]:
    """Open crafted publishers; all closed at teardown."""
    opened: list[RtmpPublisher] = []

    async def factory(port: int) -> RtmpPublisher:
        pub = await RtmpPublisher.open(port)
        opened.append(pub)
        return pub

    yield factory
    for pub in opened:
        await pub.close()


@dataclass
class NginxProcess:
    prefix: Path
    rtmp_port: int
    stat_port: int
    process: subprocess.Popen[bytes]

    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def run_nginx(prefix: Path, conf: Path, rtmp_port: int, stat_port: int) -> Iterator[NginxProcess]:
    """Run nginx in the foreground in its own process group; always stopped."""
    process = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    nginx = NginxProcess(prefix, rtmp_port, stat_port, process)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"nginx exited: {stderr}\n{nginx.error_log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", rtmp_port), timeout=0.2),
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not listen: {nginx.error_log()}")
            time.sleep(0.05)
        yield nginx
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stray workers of the group
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def wait() -> Callable[..., Awaitable[None]]:
    """The polling helper ``wait(condition, limit=..., what=...)``."""
    return wait_for


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

        import uvicorn
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
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.server = uvicorn.Server(uvicorn_config(self.app, self.settings, log_level="warning"))
        self.task: asyncio.Task[None] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ingest_port(self) -> int:
        return self.settings.ingest_port

    def sample(self, name: str, **labels: str) -> float:
        """A sample's value, 0 when absent."""
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def errors(self, error_type: str) -> float:
        return self.sample("nova_streaming_broadcast_errors_total", error_type=error_type)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError("service exited during start")
            if time.monotonic() > deadline:
                raise RuntimeError("service did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        self.sock.close()

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
