"""Real nginx-rtmp (Debian) pushing real ffmpeg streams to the receiver."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nova_streaming.ingest.nginx_conf import NginxRtmpConfig, write_nginx_config
from nova_streaming.ingest.peers import TrustedPeers
from nova_streaming.ingest.publish_auth import PublishDecision, decide_publish, parse_callback_form
from nova_streaming.ingest.receiver import StopReason
from nova_streaming.tokens import publish_token

SECRET = "test-secret"
pytestmark = pytest.mark.slow


class CallbackServer:
    """A tiny on_publish endpoint applying decide_publish; records forms and decisions."""

    def __init__(self) -> None:
        self.forms: list[dict[str, list[str]]] = []
        self.decisions: list[PublishDecision] = []
        trusted = TrustedPeers.parse("127.0.0.1/32,::1/128")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.forms.append(parse_callback_form(body))
                if self.path.endswith("/on_publish"):
                    decision = decide_publish(
                        body, self.client_address[0], secret=SECRET, trusted=trusted
                    )
                    outer.decisions.append(decision)
                    status = decision.http_status
                else:
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CallbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    with CallbackServer() as server:
        yield server


@pytest.fixture
async def stack(
    tmp_path: Path,
    make_receiver: Any,
    callbacks: CallbackServer,
    nginx_runner: Any,
    port_finder: Any,
) -> Any:
    """nginx-rtmp on free ports, on_publish to the callback server, push to a receiver."""
    receiver = await make_receiver(ingest_timeout=10.0)
    rtmp_port, stat_port = port_finder(), port_finder()
    config = NginxRtmpConfig(
        prefix=tmp_path,
        rtmp_port=rtmp_port,
        rtmp_listen="127.0.0.1",
        stat_port=stat_port,
        callback_base=f"http://127.0.0.1:{callbacks.port}",
        push_urls=(f"rtmp://127.0.0.1:{receiver.port}/live",),
    )
    conf = write_nginx_config(config)
    with nginx_runner(tmp_path, conf, rtmp_port, stat_port) as nginx:
        yield receiver, nginx


async def publish(port: int, name: str, query: str, size: str, seconds: int = 4) -> int:
    """Run ffmpeg publishing a test pattern and tone; return its exit code."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "30",
        "-b:v",
        "1500k",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-f",
        "flv",
        f"rtmp://127.0.0.1:{port}/live/{name}?{query}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(("size", "quality"), [("1280x720", "720p"), ("1920x1080", "1080p")])
async def test_ffmpeg_through_nginx(
    stack: Any, sink: Any, callbacks: CallbackServer, wait: Any, size: str, quality: str
) -> None:
    """ffmpeg -> nginx (on_publish allowed) -> push -> receiver: publish, quality from
    onMetaData, frames with non-negative lag, plausible bitrate, stop after ffmpeg exits."""
    receiver, nginx = stack
    stream_id = str(uuid.uuid4())
    query = f"token={publish_token(SECRET, stream_id)}&stream_type=pre-recorded"
    code = await publish(nginx.rtmp_port, stream_id, query, size)
    assert code == 0
    decision = callbacks.decisions[0]
    assert decision.allowed and decision.stream_type == "pre-recorded"
    form = callbacks.forms[0]
    assert form["call"] == ["publish"] and form["name"] == [stream_id]
    assert form["type"][0] == "live"
    await wait(lambda: len(sink.stops) == 1, what="stop after ffmpeg exits")
    session, reason = sink.stops[0]
    assert reason is StopReason.CLOSED
    assert [s.stream_id for s in sink.starts] == [stream_id]
    assert session.stream_name == stream_id
    assert session.quality == quality
    assert sink.metadata and sink.metadata[0][1]["height"] == float(size.split("x")[1])
    frames = sink.frames_of(stream_id)
    assert len(frames) >= 60  # 4 s at 30 fps, minus what nginx relays before push is up
    assert all(f.lag_seconds >= 0 and f.quality == quality for f in frames)
    assert max(f.lag_seconds for f in frames) < 5
    rates = [kbps for _, _, kbps in sink.bitrates]
    assert rates and 300 < max(rates) < 6000
    assert sink.error_count("protocol_error") == 0
    assert receiver.sessions == []


async def test_bad_token_dropped_by_nginx(
    stack: Any, sink: Any, callbacks: CallbackServer, wait: Any
) -> None:
    """A bad token gets 403 from on_publish: ffmpeg fails and the receiver sees nothing."""
    _receiver, nginx = stack
    stream_id = str(uuid.uuid4())
    code = await publish(nginx.rtmp_port, stream_id, "token=deadbeef", "640x360", seconds=2)
    assert code != 0
    assert callbacks.decisions and callbacks.decisions[0].reason == "bad_token"
    await asyncio.sleep(0)  # nothing to wait for: the receiver must have seen nothing
    assert sink.starts == [] and sink.frames == []


async def test_rtmp_stat_served_on_loopback(stack: Any) -> None:
    """The rendered config serves rtmp_stat XML on the loopback stat port."""
    _receiver, nginx = stack

    def fetch() -> bytes:
        url = f"http://127.0.0.1:{nginx.stat_port}/stat"
        with contextlib.closing(urllib.request.urlopen(url, timeout=10)) as resp:
            return bytes(resp.read())

    body = await asyncio.to_thread(fetch)
    assert b"<rtmp>" in body
