"""An ASGI app served by uvicorn inside the test's event loop on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import uvicorn


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

    async def stop(self) -> None:
        """Ask uvicorn to exit (graceful shutdown, lifespan end) and wait; idempotent."""
        if self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        self.sock.close()
