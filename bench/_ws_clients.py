"""Many idle WebSocket viewers in one process, as cheap as possible (not what is measured).

A raw client: the HTTP upgrade, then a minimal frame parser on an ``asyncio.Protocol``
(no task per connection), answering pings so the servers' keep-alive never drops a
viewer, and stamping with ``time.monotonic()`` (system-wide ``CLOCK_MONOTONIC``, so
comparable with the server process's stamps) the first text frame each viewer gets
after ``arm``. Commands on stdin, one JSON reply each:

- ``{"cmd": "connect", "total": N, "batch": B}``: open viewers (B at a time) until N;
- ``{"cmd": "texts", "min": K, "timeout": S}``: wait until every viewer got K text frames;
- ``{"cmd": "arm"}`` then ``{"cmd": "collect", "timeout": S}``: when the armed frame
  reached every viewer (``first``/``last`` monotonic stamps, how many received it);
- ``{"cmd": "close"}``, ``{"cmd": "quit"}``.

Example::

    .venv/bin/python -m bench._ws_clients 127.0.0.1 8080 /ws/streams/<uuid>
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from bench._procs import commands, emit, raise_nofile

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_OP_TEXT = 1
_OP_CLOSE = 8
_OP_PING = 9


class Viewer(asyncio.Protocol):
    """One raw WebSocket client connection."""

    def __init__(self, request: bytes, state: Clients) -> None:
        self.request = request
        self.state = state
        self.buf = bytearray()
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.texts = 0
        self.mark: float | None = None
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before the upgrade"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.buf
        buf += data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(bytes(buf[:40]).decode("latin-1")))
                return
            del buf[: end + 4]
            self.open = True
            self.upgraded.set_result(None)
        while len(buf) >= 2:
            op = buf[0] & 0x0F
            size = buf[1] & 0x7F
            pos = 2
            if size == 126:
                if len(buf) < 4:
                    return
                size = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size = int.from_bytes(buf[2:10], "big")
                pos = 10
            if len(buf) < pos + size:
                return
            if op == _OP_TEXT:
                self.texts += 1
                if self.state.armed and self.mark is None:
                    self.mark = now
            elif op == _OP_PING and self.transport is not None:
                payload = bytes(buf[pos : pos + size])
                # A client frame must be masked; an all-zero mask leaves the bytes as is.
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + bytes(4) + payload)
            elif op == _OP_CLOSE and self.transport is not None:
                self.open = False
                self.transport.close()
            del buf[: pos + size]


class Clients:
    """The viewers of one target URL and the commands over them."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host = host
        self.port = port
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {_KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.viewers: list[Viewer] = []
        self.failed = 0
        self.armed = False

    async def _one(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, viewer = await loop.create_connection(
                lambda: Viewer(self.request, self), self.host, self.port
            )
            await asyncio.wait_for(viewer.upgraded, 30)
        except (TimeoutError, OSError):
            self.failed += 1
            return
        self.viewers.append(viewer)

    async def connect(self, total: int, batch: int) -> dict[str, Any]:
        t0 = time.monotonic()
        while len(self.viewers) < total and self.failed < max(10, total // 100):
            n = min(batch, total - len(self.viewers))
            await asyncio.gather(*(self._one() for _ in range(n)))
        return {
            "connected": len(self.viewers),
            "failed": self.failed,
            "seconds": time.monotonic() - t0,
        }

    async def texts(self, minimum: int, limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if all(v.texts >= minimum for v in self.viewers):
                break
            await asyncio.sleep(0.05)
        ready = sum(1 for v in self.viewers if v.texts >= minimum)
        return {"ready": ready, "open": sum(v.open for v in self.viewers)}

    def arm(self) -> dict[str, Any]:
        for viewer in self.viewers:
            viewer.mark = None
        self.armed = True
        return {"armed": len(self.viewers)}

    async def collect(self, limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if all(v.mark is not None for v in self.viewers if v.open):
                break
            await asyncio.sleep(0.01)
        self.armed = False
        marks = [v.mark for v in self.viewers if v.mark is not None]
        return {
            "received": len(marks),
            "open": sum(v.open for v in self.viewers),
            "first": min(marks) if marks else None,
            "last": max(marks) if marks else None,
        }

    async def close(self) -> dict[str, Any]:
        for viewer in self.viewers:
            if viewer.transport is not None:
                viewer.transport.close()
        self.viewers.clear()
        await asyncio.sleep(0.2)
        return {"closed": True}


async def run(host: str, port: int, path: str) -> None:
    """Answer commands until ``quit`` or end of input, then close every viewer."""
    clients = Clients(host, port, path)
    emit({"ready": True})
    try:
        async for command in commands():
            cmd = command.get("cmd")
            if cmd == "connect":
                emit(await clients.connect(int(command["total"]), int(command.get("batch", 200))))
            elif cmd == "texts":
                emit(await clients.texts(int(command["min"]), float(command["timeout"])))
            elif cmd == "arm":
                emit(clients.arm())
            elif cmd == "collect":
                emit(await clients.collect(float(command["timeout"])))
            elif cmd == "close":
                emit(await clients.close())
            else:
                emit({"error": f"unknown command {cmd!r}"})
    finally:
        await clients.close()


def main(argv: list[str]) -> int:
    """``python -m bench._ws_clients HOST PORT PATH``."""
    if len(argv) != 3:
        print("usage: python -m bench._ws_clients HOST PORT PATH", file=sys.stderr)
        return 2
    raise_nofile()
    asyncio.run(run(argv[0], int(argv[1]), argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
