"""An ASGI app served by uvicorn inside the test's event loop on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
import time

import uvicorn

from nova_testing.tasks import describe_tasks

SHUTDOWN_MARGIN = 30.0
"""Seconds a stopping app may take beyond uvicorn's graceful timeout: the ingest waits
up to 5 s for its registry steps, the registry and the presence engine a few seconds
each for their background work and last Redis calls."""


class UvicornServer:
    """``uvicorn.Server`` on a socket bound to 127.0.0.1 port 0, started and stopped in
    this process (so the test can read the app's metrics registry directly).

    Example::

        server = UvicornServer(uvicorn_config(app, settings, log_level="warning"))
        await server.start()
        try:
            ...  # talk to server.http
        finally:
            await server.stop()
    """

    def __init__(self, config: uvicorn.Config, *, name: str = "server") -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, within: float = 15.0) -> None:
        """Serve on the socket; return once uvicorn reports it started."""
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        deadline = time.monotonic() + within
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError(f"{self.name} exited during start")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            await asyncio.sleep(0.01)

    async def stop(self, within: float | None = None) -> None:
        """Ask uvicorn to exit (graceful shutdown, lifespan end) and wait; idempotent.

        The wait is bounded: uvicorn's own graceful timeout for open connections plus
        ``SHUTDOWN_MARGIN`` for the app's shutdown (its parts bound their own waits).
        Past that, the failure names every task still running, with its stack, and the
        server is forced down, instead of the test hanging until pytest-timeout."""
        if self.task is not None:
            task, self.task = self.task, None
            self.server.should_exit = True
            if within is None:
                within = (self.server.config.timeout_graceful_shutdown or 0) + SHUTDOWN_MARGIN
            done, _ = await asyncio.wait([task], timeout=within)
            if not done:
                stuck = describe_tasks(asyncio.all_tasks() - {asyncio.current_task()})
                self.server.force_exit = True
                task.cancel()
                await asyncio.wait([task], timeout=5)
                self.sock.close()
                raise AssertionError(
                    f"{self.name} did not stop within {within:g} s; still running:\n{stuck}"
                )
            if not task.cancelled():
                task.result()
        self.sock.close()
