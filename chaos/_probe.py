"""The event-loop stall probe: a child process timing ``GET /healthz`` on every replica.

A replica answers ``/healthz`` from its event loop, so the time one request takes over
an already open keep-alive connection is bounded below by whatever kept that loop busy:
the worst answer time while a fault runs is the worst stall a viewer or a callback saw
(plus a loopback round trip, well under a millisecond). Measured from outside, in its
own process, so that nothing the service or the harness does delays the probe itself.

Commands (JSON lines, see :mod:`bench._procs`):

- ``{"cmd": "ports", "ports": [P, ...]}``: probe these HTTP ports (every 25 ms each);
- ``{"cmd": "read", "reset": true}``: worst answer time per port (ms) since the last
  reset, and how many answers were timed.

A request cut by a dying replica is not a stall: it is dropped, the probe reconnects.

Example::

    .venv/bin/python -m chaos._probe 127.0.0.1
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

from bench._procs import commands, emit

INTERVAL = 0.025
_TIMEOUT = 30.0


class Probe:
    """Probes of the current port set, with the worst times seen."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.worst: dict[int, float] = {}
        self.samples: dict[int, int] = {}

    def set_ports(self, ports: list[int]) -> None:
        for port in list(self.tasks):
            if port not in ports:
                self.tasks.pop(port).cancel()
        for port in ports:
            if port not in self.tasks:
                self.tasks[port] = asyncio.create_task(self._probe(port))

    async def _probe(self, port: int) -> None:
        request = f"GET /healthz HTTP/1.1\r\nHost: {self.host}:{port}\r\n\r\n".encode()
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            try:
                while True:
                    t0 = time.perf_counter()
                    writer.write(request)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _TIMEOUT)
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    await asyncio.wait_for(reader.readexactly(length), _TIMEOUT)
                    elapsed = time.perf_counter() - t0
                    self.worst[port] = max(self.worst.get(port, 0.0), elapsed)
                    self.samples[port] = self.samples.get(port, 0) + 1
                    if b"connection: close" in head.lower():
                        break
                    await asyncio.sleep(INTERVAL)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                await asyncio.sleep(0.1)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    def read(self, reset: bool) -> dict[str, Any]:
        result = {
            "worst_ms": {str(p): round(v * 1000, 2) for p, v in self.worst.items()},
            "samples": sum(self.samples.values()),
        }
        if reset:
            self.worst.clear()
            self.samples.clear()
        return result


async def run(host: str) -> None:
    """Answer commands until ``quit`` or end of input."""
    probe = Probe(host)
    emit({"ready": True})
    async for command in commands():
        cmd = command.get("cmd")
        if cmd == "ports":
            probe.set_ports([int(p) for p in command["ports"]])
            emit({"ports": sorted(probe.tasks)})
        elif cmd == "read":
            emit(probe.read(bool(command.get("reset", True))))
        else:
            emit({"error": f"unknown command {cmd!r}"})
    for task in probe.tasks.values():
        task.cancel()


def main(argv: list[str]) -> int:
    """``python -m chaos._probe HOST``."""
    if len(argv) != 1:
        print("usage: python -m chaos._probe HOST", file=sys.stderr)
        return 2
    asyncio.run(run(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
