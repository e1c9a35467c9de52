"""A TCP load balancer on loopback: what a Kubernetes Service is to the replicas.

nginx-rtmp pushes every stream to one address (``user-service:1936``) and calls its
callbacks on one address (``user-service:8080``); the Service spreads connections over
the replicas whose readiness is up. Here the harness keeps the backend list (a replica
leaves it when it is stopped, as an endpoint leaves when its readiness drops) and a
connection goes to the next backend, round robin, skipping any that refuses.

Example::

    balancer = Balancer("ingest")
    await balancer.start()
    balancer.backends = [1937, 1938]
    ...  # nginx pushes to 127.0.0.1:balancer.port
    await balancer.stop()
"""

from __future__ import annotations

import asyncio
import contextlib

HOST = "127.0.0.1"
_CHUNK = 65536


class Balancer:
    """Round-robin TCP proxy from a free loopback port to ``backends`` (ports)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.backends: list[int] = []
        self.port = 0
        self.connections = 0
        self.refused = 0
        self._next = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on a free loopback port (``self.port``)."""
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and cut every relayed connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        for task in list(self._pipes):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(max(1, len(self.backends))):
            if not self.backends:
                return None
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                return await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
            except (OSError, TimeoutError):
                self.refused += 1
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            writer.close()
            return
        self.connections += 1
        up_reader, up_writer = upstream
        tasks = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(tasks)
        try:
            # Either side closing ends the relay (a dead replica drops nginx's push).
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                self._pipes.discard(task)
            for w in (writer, up_writer):
                w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
