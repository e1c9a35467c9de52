"""N synthetic RTMP publishers in real time, in one process, for the ingest bench.

``python -m bench._rtmp_publishers PORT`` then ``{"cmd": "publish", "names": [...]}``:
each name gets a connection that does the handshake, connect, createStream and publish
(waiting for each reply, as a real client does), then sends 2.5 Mbit/s of media
(:mod:`bench._rtmp_stream`) paced by the wall clock, all streams on one ticker. Replies
``{"published", "seconds"}`` once every stream publishes; ``{"cmd": "status"}`` tells
the bytes sent and how late the ticker ran; ``{"cmd": "quit"}`` closes them.

Example::

    .venv/bin/python -m bench._rtmp_publishers 1935
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench._procs import commands, emit, raise_nofile
from bench._rtmp_stream import FPS, StreamPlan, c0c1, c2_for
from nova_streaming.ingest import amf0
from nova_streaming.ingest.chunks import MSG_COMMAND_AMF0, ChunkReader

_TIMEOUT = 30.0


class Publisher(asyncio.Protocol):
    """One publishing connection: setup replies are parsed, later input discarded."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.reader = ChunkReader()
        self.handshaken = False
        self.replies: list[str] = []
        self.changed = asyncio.Event()
        self.closed = False
        self.media = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.changed.set()

    def data_received(self, data: bytes) -> None:
        if self.media:
            return  # acks and pings from the server: nothing a publisher must answer
        if not self.handshaken:
            self.buf += data
            if len(self.buf) < 3073:
                return
            self.handshaken = True
            data = bytes(self.buf[3073:])
            self.replies.append("handshake:" + bytes(self.buf[:3073]).hex())
        for msg in self.reader.feed(data):
            if msg.type_id == MSG_COMMAND_AMF0:
                values = amf0.decode(msg.payload)
                name = str(values[0])
                if name == "onStatus" and len(values) > 3 and isinstance(values[3], dict):
                    name += ":" + str(values[3].get("code"))
                self.replies.append(name)
        self.changed.set()

    async def until(self, prefix: str) -> str:
        """The first reply starting with ``prefix`` (removed from the list)."""
        deadline = time.monotonic() + _TIMEOUT
        while True:
            for reply in self.replies:
                if reply.startswith(prefix):
                    self.replies.remove(reply)
                    return reply
            if self.closed:
                raise ConnectionError(f"server closed the connection before {prefix}")
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)


async def publish(port: int, name: str) -> tuple[Publisher, StreamPlan]:
    """Open one connection and publish ``name`` on it."""
    loop = asyncio.get_running_loop()
    _, pub = await loop.create_connection(Publisher, "127.0.0.1", port)
    plan = StreamPlan(name=name)
    connect, create, start, metadata = plan.setup()
    pub.write(c0c1())
    s0s1s2 = bytes.fromhex((await pub.until("handshake:")).removeprefix("handshake:"))
    pub.write(c2_for(s0s1s2) + connect)
    await pub.until("_result")
    pub.write(create)
    await pub.until("_result")
    pub.write(start)
    status = await pub.until("onStatus")
    if status != "onStatus:NetStream.Publish.Start":
        raise ConnectionError(f"publish of {name} refused: {status}")
    pub.media = True
    pub.write(metadata)
    return pub, plan


class Fleet:
    """All publishers and the ticker that sends their media in real time."""

    def __init__(self, port: int) -> None:
        self.port = port
        # Each stream's media starts at its own frame 0 when it joins the ticker.
        self.streams: list[tuple[Publisher, Iterator[tuple[int, bytes]]]] = []
        self.sent = 0
        self.max_late = 0.0
        self.ticks = 0
        self.task: asyncio.Task[None] | None = None

    async def publish(self, names: list[str]) -> dict[str, Any]:
        t0 = time.monotonic()
        opened = await asyncio.gather(*(publish(self.port, n) for n in names))
        self.streams.extend((pub, plan.frames()) for pub, plan in opened)
        if self.task is None:
            self.task = asyncio.create_task(self._tick())
        return {"published": len(self.streams), "seconds": time.monotonic() - t0}

    async def _tick(self) -> None:
        start = time.monotonic()
        index = 0
        while True:
            due = start + index / FPS
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                self.max_late = max(self.max_late, now - due)
            for pub, frames in self.streams:
                _, data = next(frames)
                pub.write(data)
                self.sent += len(data)
            index += 1
            self.ticks = index

    def status(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ticks": self.ticks,
            "max_late": self.max_late,
            "closed": sum(pub.closed for pub, _ in self.streams),
        }

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for pub, _ in self.streams:
            if pub.transport is not None:
                pub.transport.close()
        await asyncio.sleep(0.1)


async def run(port: int) -> None:
    """Answer commands until ``quit`` or end of input."""
    fleet = Fleet(port)
    emit({"ready": True})
    try:
        async for command in commands():
            cmd = command.get("cmd")
            if cmd == "publish":
                try:
                    emit(await fleet.publish([str(n) for n in command["names"]]))
                except (OSError, TimeoutError) as exc:
                    emit({"error": f"publish failed: {exc}"})
            elif cmd == "status":
                emit(fleet.status())
            else:
                emit({"error": f"unknown command {cmd!r}"})
    finally:
        await fleet.close()


def main(argv: list[str]) -> int:
    """``python -m bench._rtmp_publishers PORT``."""
    if len(argv) != 1:
        print("usage: python -m bench._rtmp_publishers PORT", file=sys.stderr)
        return 2
    raise_nofile()
    asyncio.run(run(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
