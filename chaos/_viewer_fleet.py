"""A fleet of real WebSocket viewers in one child process: the clients' own ground truth.

Each wanted viewer is a *slot*: it targets one stream, connects to one of the replica
ports it was given (round robin), and, like a browser player, reconnects to another
replica when the server goes away (1001, 1012, 1013, or the TCP connection dropping
without a close frame, 1006). It stops for good on 1000 (after ``stream_ended``) and on
4400/4404. The fleet knows at every moment how many of its connections are open (the
HTTP upgrade answered 101 and the connection is not closed): that is the figure the
service's global viewer count must equal once the fleet is settled (no slot between two
connections).

A raw client (HTTP upgrade, then a minimal frame parser on an ``asyncio.Protocol``, no
task per connection) keeps 10,000 viewers and 1,000 joins+leaves per second affordable
in one process. A *slow* viewer never answers pings and reads its socket only in short
bursts: the server is expected to drop it (keep-alive timeout), not to buffer for it.

Commands (one JSON object per line on stdin, one JSON reply each; see
:mod:`bench._procs`):

- ``{"cmd": "ports", "ports": [P, ...]}``: replica HTTP ports for new connections;
- ``{"cmd": "hold", "stream": S, "n": N, "slow": false}``: add N viewers of S, wait
  (bounded) until they are open;
- ``{"cmd": "release", "stream": S, "n": N}``: close N viewers of S (clean close);
- ``{"cmd": "churn", "stream": S, "rate": R, "seconds": T}``: for T seconds, R/2 leaves
  and R/2 joins per second on S (the number held stays the same);
- ``{"cmd": "settle", "timeout": T}``: wait until no slot is reconnecting;
- ``{"cmd": "count"}``: open viewers per stream, slots reconnecting, close codes seen;
- ``{"cmd": "close_all"}``, ``{"cmd": "quit"}``.

Example::

    .venv/bin/python -m chaos._viewer_fleet 127.0.0.1
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import sys
import time
from typing import Any

from bench._procs import commands, emit, raise_nofile
from bench._ws_wire import (
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    close_frame,
    next_frame,
    pong,
    upgrade_request,
)

# Close codes after which a player reconnects (to another replica).
RECONNECT_CODES = frozenset({1001, 1006, 1011, 1012, 1013})
_SLOW_PAUSE = 2.0
_SLOW_READ = 0.2


class Slot:
    """One wanted viewer of one stream, across its successive connections."""

    def __init__(self, fleet: Fleet, stream: str, *, slow: bool) -> None:
        self.fleet = fleet
        self.stream = stream
        self.slow = slow
        self.conn: Conn | None = None
        self.active = True
        self.last_port: int | None = None
        self.connects = 0

    def connect(self) -> None:
        """Open a connection to the next replica port (another one than the last)."""
        if not self.active:
            return
        port = self.fleet.next_port(avoid=self.last_port)
        if port is None:
            self.fleet.loop.call_later(0.2, self.connect)
            return
        self.last_port = port
        self.connects += 1
        self.fleet.loop.create_task(self._open(port))

    async def _open(self, port: int) -> None:
        fleet = self.fleet
        try:
            await fleet.loop.create_connection(lambda: Conn(self, port), fleet.host, port)
        except OSError:
            fleet.failed_connects += 1
            fleet.loop.call_later(0.1 + random.random() * 0.2, self.connect)

    def lost(self, conn: Conn, code: int) -> None:
        """A connection ended with ``code``: reconnect, or end the slot."""
        if self.conn is conn:
            self.conn = None
        self.fleet.closes[code] += 1
        if not self.active:
            return
        if code in RECONNECT_CODES and not (self.slow and conn.was_open):
            self.fleet.reconnects += 1
            self.fleet.loop.call_later(0.05 + random.random() * 0.25, self.connect)
        else:
            # Ended (1000 stream_ended, 44xx), or a slow consumer dropped: no retry.
            self.active = False
            self.fleet.slots[self.stream].discard(self)
            if self.slow and conn.was_open:
                self.fleet.slow_dropped += 1

    def release(self) -> None:
        """The viewer leaves: clean close, no reconnect."""
        self.active = False
        self.fleet.slots[self.stream].discard(self)
        if self.conn is not None:
            self.conn.close(1000)


class Conn(asyncio.Protocol):
    """One raw WebSocket client connection of a slot."""

    def __init__(self, slot: Slot, port: int) -> None:
        self.slot = slot
        self.port = port
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.was_open = False
        self.code: int | None = None
        self.reported = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.slot.conn = self
        host = self.slot.fleet.host
        transport.write(upgrade_request(host, self.port, f"/ws/streams/{self.slot.stream}"))
        if not self.slot.active:
            self.close(1000)

    def _slow_cycle(self) -> None:
        # Read in short bursts: the server's writes back up while paused.
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.resume_reading()
        loop = self.slot.fleet.loop
        loop.call_later(_SLOW_READ, self._slow_pause)

    def _slow_pause(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.pause_reading()
        self.slot.fleet.loop.call_later(_SLOW_PAUSE, self._slow_cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        fleet = self.slot.fleet
        if self.upgraded:
            self.upgraded = False
            fleet.open[self.slot.stream] -= 1
        if not self.reported:
            self.reported = True
            self.slot.lost(self, self.code if self.code is not None else 1006)

    def close(self, code: int) -> None:
        """Send a close frame (masked, as a client must) and close the TCP connection."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.code is None:
            self.code = code  # closed by this side: not an abnormal close
        if self.upgraded:
            self.transport.write(close_frame(code.to_bytes(2, "big")))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.was_open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                # Refused before the upgrade: 5xx is worth a retry elsewhere, 4xx is not.
                status = bytes(buf[9:12])
                refused = 4000 + (int(status) if status.isdigit() else 0)
                self.code = 1013 if status.startswith(b"5") else refused
                assert self.transport is not None
                self.transport.close()
                return
            del buf[: end + 4]
            self.was_open = True
            self.upgraded = True
            self.slot.fleet.open[self.slot.stream] += 1
            if self.slot.slow:
                self._slow_pause()
        while (frame := next_frame(buf)) is not None:
            op, payload = frame
            if op == OP_TEXT:
                self.slot.fleet.texts += 1
            elif op == OP_PING and self.transport is not None and not self.slot.slow:
                self.transport.write(pong(payload))
            elif op == OP_CLOSE and self.transport is not None:
                self.code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if self.upgraded:
                    self.upgraded = False
                    self.slot.fleet.open[self.slot.stream] -= 1
                self.transport.write(close_frame(payload[:2]))
                self.transport.close()
                return


class Fleet:
    """Every slot of the child, the ports they use and the ground-truth counts."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.loop = asyncio.get_running_loop()
        self.ports: list[int] = []
        self._next = 0
        self.slots: dict[str, set[Slot]] = collections.defaultdict(set)
        self.open: collections.Counter[str] = collections.Counter()
        self.closes: collections.Counter[int] = collections.Counter()
        self.reconnects = 0
        self.failed_connects = 0
        self.slow_dropped = 0
        self.texts = 0

    def next_port(self, avoid: int | None = None) -> int | None:
        """The next replica port, round robin, skipping ``avoid`` when there is another."""
        if not self.ports:
            return None
        for _ in range(len(self.ports)):
            port = self.ports[self._next % len(self.ports)]
            self._next += 1
            if port != avoid or len(self.ports) == 1:
                return port
        return self.ports[0]

    def pending(self) -> int:
        """Slots that want a connection and have no open one right now."""
        return sum(
            1
            for slots in self.slots.values()
            for slot in slots
            if slot.active and (slot.conn is None or not slot.conn.upgraded)
        )

    async def settle(self, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while self.pending():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def hold(self, stream: str, n: int, slow: bool, batch: int = 250) -> dict[str, Any]:
        for start in range(0, n, batch):
            for _ in range(min(batch, n - start)):
                slot = Slot(self, stream, slow=slow)
                self.slots[stream].add(slot)
                slot.connect()
            await asyncio.sleep(0.05)
        settled = await self.settle(60)
        return {"settled": settled, **self.count()}

    def release(self, stream: str, n: int) -> dict[str, Any]:
        slots = [s for s in self.slots[stream] if not s.slow][:n]
        for slot in slots:
            slot.release()
        return {"released": len(slots)}

    async def churn(self, stream: str, rate: float, seconds: float) -> dict[str, Any]:
        tick = 0.05
        per_tick = rate / 2 * tick
        carry = 0.0
        joins = leaves = 0
        deadline = time.monotonic() + seconds
        next_tick = time.monotonic()
        while time.monotonic() < deadline:
            carry += per_tick
            k = int(carry)
            carry -= k
            candidates = [s for s in self.slots[stream] if not s.slow and s.conn is not None]
            for slot in random.sample(candidates, min(k, len(candidates))):
                slot.release()
                leaves += 1
            for _ in range(k):
                slot = Slot(self, stream, slow=False)
                self.slots[stream].add(slot)
                slot.connect()
                joins += 1
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        return {"joins": joins, "leaves": leaves}

    def count(self) -> dict[str, Any]:
        return {
            "open": dict(self.open),
            "wanted": {s: sum(1 for x in v if x.active) for s, v in self.slots.items()},
            "pending": self.pending(),
            "closes": {str(k): v for k, v in self.closes.items()},
            "reconnects": self.reconnects,
            "failed_connects": self.failed_connects,
            "slow_dropped": self.slow_dropped,
            "texts": self.texts,
        }

    async def close_all(self) -> dict[str, Any]:
        for slots in list(self.slots.values()):
            for slot in list(slots):
                slot.release()
        await asyncio.sleep(0.2)
        return self.count()


async def run(host: str) -> None:
    """Answer commands until ``quit`` or end of input, then close every viewer."""
    fleet = Fleet(host)
    emit({"ready": True, "pid": os.getpid()})
    try:
        async for command in commands():
            cmd = command.get("cmd")
            if cmd == "ports":
                fleet.ports = [int(p) for p in command["ports"]]
                emit({"ports": fleet.ports})
            elif cmd == "hold":
                emit(
                    await fleet.hold(
                        str(command["stream"]), int(command["n"]), bool(command.get("slow"))
                    )
                )
            elif cmd == "release":
                emit(fleet.release(str(command["stream"]), int(command["n"])))
            elif cmd == "churn":
                emit(
                    await fleet.churn(
                        str(command["stream"]), float(command["rate"]), float(command["seconds"])
                    )
                )
            elif cmd == "settle":
                settled = await fleet.settle(float(command.get("timeout", 30)))
                emit({"settled": settled, **fleet.count()})
            elif cmd == "count":
                emit(fleet.count())
            elif cmd == "close_all":
                emit(await fleet.close_all())
            else:
                emit({"error": f"unknown command {cmd!r}"})
    finally:
        await fleet.close_all()


def main(argv: list[str]) -> int:
    """``python -m chaos._viewer_fleet HOST``."""
    if len(argv) != 1:
        print("usage: python -m chaos._viewer_fleet HOST", file=sys.stderr)
        return 2
    raise_nofile()
    asyncio.run(run(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
