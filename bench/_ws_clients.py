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
from bench._ws_wire import OP_CLOSE, OP_PING, OP_TEXT, next_frame, pong, upgrade_request

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


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
        while (frame := next_frame(buf)) is not None:
            op, payload = frame
            if op == OP_TEXT:
                self.texts += 1
                if self.state.armed and self.mark is None:
                    self.mark = now
            elif op == OP_PING and self.transport is not None:
                self.transport.write(pong(payload))
            elif op == OP_CLOSE and self.transport is not None:
                self.open = False
                self.transport.close()


class Clients:
    """The viewers of one target URL and the commands over them."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host = host
        self.port = port
        self.request = upgrade_request(host, port, path, _KEY)
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
