"""Hostile traffic generators: forged callbacks, a port scan, malformed RTMP, an API flood,
timestamp jumps. Untrusted traffic comes from 127.0.0.2 (loopback, outside the
replicas' ``NOVA_TRUSTED_PEERS`` of 127.0.0.1/32), trusted from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time

import httpx

from nova_streaming.ingest.callbacks import ON_PUBLISH_DONE_PATH, ON_PUBLISH_PATH
from nova_streaming.tokens import publish_token
from nova_testing.rtmp_publisher import RtmpPublisher

UNTRUSTED = "127.0.0.2"
TRUSTED = "127.0.0.1"
FORM = {"content-type": "application/x-www-form-urlencoded"}


async def forged_callbacks(port: int, stream_id: str, secret: str, n: int) -> dict[int, int]:
    """``n`` on_publish and ``n`` on_publish_done from an untrusted address, bodies exactly
    as nginx would send them (a valid token even); returns status -> count."""
    statuses: dict[int, int] = {}
    transport = httpx.AsyncHTTPTransport(local_address=UNTRUSTED)
    token = publish_token(secret, stream_id)
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:
        for i in range(n):
            for path, call in (
                (ON_PUBLISH_PATH, "publish"),
                (ON_PUBLISH_DONE_PATH, "publish_done"),
            ):
                body = f"app=live&addr=127.0.0.1&call={call}&name={stream_id}&token={token}"
                if call == "publish":
                    body += "&type=live"
                try:
                    response = await client.post(
                        f"http://127.0.0.1:{port}{path}", content=f"{body}&n={i}", headers=FORM
                    )
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                except httpx.HTTPError:
                    statuses[0] = statuses.get(0, 0) + 1
    return statuses


async def _connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5
    )


async def _closed_by_peer(reader: asyncio.StreamReader, within: float = 10.0) -> bool:
    """True once the other side closed (EOF or reset) within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


async def port_scan(port: int, n: int) -> int:
    """``n`` connect-and-close probes of ``port`` from the untrusted address (a SYN scan
    as far as the application can tell); returns how many connected."""
    connected = 0
    for _ in range(n):
        with contextlib.suppress(OSError, TimeoutError):
            _, writer = await _connect(port, UNTRUSTED)
            connected += 1
            writer.close()
    return connected


def _garbage_cases() -> list[bytes]:
    """Malformed RTMP openings: bad version, truncated handshake, chunk nonsense."""
    c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
    bad_chunk = b"\x03" + c1 + c1 + bytes((0x02,)) + b"\xff\xff\xff" + b"\xff\xff\xff" + b"\x14"
    return [
        b"\x06" + os.urandom(1536),  # unknown RTMP version
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # HTTP to the RTMP port
        b"\x03" + os.urandom(700),  # handshake cut short, then silence
        bad_chunk + os.urandom(4096),  # handshake, then an absurd chunk header and noise
        os.urandom(8192),
    ]


async def malformed_rtmp(port: int, source: str) -> tuple[int, int]:
    """Every malformed opening once from ``source``; returns (sent, closed by the peer
    within 10 s, the truncated handshake's silence aside)."""
    sent = closed = 0
    for data in _garbage_cases():
        try:
            reader, writer = await _connect(port, source)
        except (OSError, TimeoutError):
            continue
        sent += 1
        try:
            writer.write(data)
            with contextlib.suppress(OSError):
                await writer.drain()
            if await _closed_by_peer(reader):
                closed += 1
        finally:
            writer.close()
    return sent, closed


async def api_flood(ports: list[int], concurrency: int, seconds: float) -> dict[int, int]:
    """``concurrency`` clients GETting /api/v1/streams as fast as answered, for ``seconds``,
    spread over ``ports``, from the untrusted address; returns status -> count."""
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    transport = httpx.AsyncHTTPTransport(local_address=UNTRUSTED)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(transport=transport, timeout=10, limits=limits) as client:

        async def worker(i: int) -> None:
            url = f"http://127.0.0.1:{ports[i % len(ports)]}/api/v1/streams"
            while time.monotonic() < deadline:
                try:
                    status = (await client.get(url)).status_code
                except httpx.HTTPError:
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return statuses


async def _callback(http_port: int, path: str, stream_id: str, secret: str) -> int:
    call = "publish" if path == ON_PUBLISH_PATH else "publish_done"
    body = f"app=live&addr=127.0.0.1&call={call}&name={stream_id}"
    body += f"&type=live&token={publish_token(secret, stream_id)}" if call == "publish" else ""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"http://127.0.0.1:{http_port}{path}", content=body, headers=FORM
        )
    return response.status_code


async def timestamp_jumps(
    http_port: int,
    ingest_port: int,
    stream_id: str,
    secret: str,
    *,
    fps: int,
    seconds: float,
    jump_frames: int,
) -> int:
    """Act as nginx for one crafted broadcaster, straight to a replica (trusted address):
    on_publish, then a relay whose video runs ``seconds`` at ``fps``, jumps forward by
    ``jump_frames`` frame intervals, runs on, jumps back to the start of its timeline,
    runs on; then the relay closes and on_publish_done ends the stream. Returns the
    number of jumps (discontinuities) sent."""
    status = await _callback(http_port, ON_PUBLISH_PATH, stream_id, secret)
    if status != 200:
        raise RuntimeError(f"chaos: on_publish for the jumping stream answered {status}")
    pub = await RtmpPublisher.open(ingest_port)
    try:
        await pub.publish(stream_id)
        await pub.metadata({"width": 320.0, "height": 240.0, "framerate": float(fps)})
        pub.video_config(0)
        interval = 1000 // fps
        frames = max(1, int(seconds * fps))
        ts = 0

        async def play(start: int) -> int:
            t0 = time.monotonic()
            for i in range(frames):
                pub.video(start + i * interval, size=800, keyframe=i % fps == 0)
                await pub.drain()
                await asyncio.sleep(max(0.0, t0 + (i + 1) / fps - time.monotonic()))
            return start + frames * interval

        ts = await play(ts)
        ts = await play(ts + jump_frames * interval)  # forward jump
        await play(max(0, ts - (jump_frames + 2 * frames) * interval))  # backwards jump
    finally:
        await pub.close()
    await _callback(http_port, ON_PUBLISH_DONE_PATH, stream_id, secret)
    return 2
