"""A local stand-in for a Kubernetes Service in front of service replicas: TCP ports that
forward each new connection to a *ready* replica.

Like kube-proxy with the endpoints controller: every backend's ``/readyz`` is polled;
a new connection goes to the first backend (in the given order) whose last answer was
200, and connections already open stay where they are when a backend turns unready.
nginx-rtmp's ``push`` names one URL; pointed at a router port, its re-push after a
replica drains lands on another replica, as it would behind ``user-service:1936``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx


@dataclass
class Backend:
    """One replica: its readiness URL and its port for each router port name."""

    name: str
    ready_url: str
    ports: Mapping[str, int]
    statuses: list[int | None] = field(default_factory=list)
    """Every distinct readiness answer in order (None: no answer)."""
    ready: bool = False


class ServiceRouter:
    """Listen on a free loopback port per name in ``ports``; route by readiness.

    Example::

        router = ServiceRouter([Backend("a", a_ready, {"http": 8080, "ingest": 1936})],
                               ports=("http", "ingest"))
        await router.start()
        router.port("ingest")       # push nginx here
        await router.stop()
    """

    def __init__(
        self, backends: Sequence[Backend], ports: Sequence[str], *, poll: float = 0.05
    ) -> None:
        self.backends = list(backends)
        self._names = tuple(ports)
        self._poll = poll
        self._servers: dict[str, asyncio.Server] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self.routed: list[tuple[str, str]] = []
        """(port name, backend name) of every connection routed, in order."""

    def port(self, name: str) -> int:
        """The router's listening port for ``name``."""
        return int(self._servers[name].sockets[0].getsockname()[1])

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)

    def ready(self) -> list[str]:
        """Names of the backends seen ready at the last poll."""
        return [b.name for b in self.backends if b.ready]

    async def start(self) -> None:
        for name in self._names:
            self._servers[name] = await asyncio.start_server(
                lambda r, w, n=name: self._accept(n, r, w), "127.0.0.1", 0
            )
        self._poller = asyncio.create_task(self._poll_loop())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for server in self._servers.values():
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in self._servers.values():
            await server.wait_closed()

    async def _poll_loop(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                for backend in self.backends:
                    status: int | None
                    try:
                        status = (await client.get(backend.ready_url)).status_code
                    except httpx.HTTPError:
                        status = None
                    if not backend.statuses or backend.statuses[-1] != status:
                        backend.statuses.append(status)
                    backend.ready = status == 200
                await asyncio.sleep(self._poll)

    def _accept(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.create_task(self._serve(name, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        target = next((b for b in self.backends if b.ready), None)
        try:
            if target is None:
                return  # no ready endpoint: the client retries, as against a Service
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", target.ports[name]
                )
            except OSError:
                return
            self.routed.append((name, target.name))
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF or a reset, then close the writer (both directions end)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
