"""Bench-only WebSocket servers, each run in its own process so its RSS is its own.

``python -m bench._ws_servers nova``: the real service app (``create_app`` with the
memory presence engine, served by uvicorn with the service's own ``uvicorn_config``, on
the service's event loop: ``nova_streaming.runner.new_event_loop``, uvloop when
installed, and uvicorn's HTTP parser choice, httptools when installed) with one active
stream started through the registry. ``nova-asyncio-h11``: the same app on asyncio's
own loop with uvicorn's h11 parser (the service without its speedups). ``bare``: a bare
``websockets`` asyncio server that keeps every connection open (on asyncio's loop, as
websockets runs by default); ``bare-uvloop``: the same on uvloop. ``picows``: a bare
picows server (C WebSocket stack, on uvloop) holding connections, for reference.
All bind a free loopback port, print ``{"port", "path", "pid", "loop", "http"}`` when
ready, then answer commands on stdin: ``count`` (connections held), ``gc`` (full
collection), ``broadcast`` (one ``viewers`` message to every connection; replies with
the monotonic time before and after the send loop), ``quit``.

Example::

    .venv/bin/python -m bench._ws_servers bare     # then type {"cmd": "count"}
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from bench._procs import commands, emit, raise_nofile

STREAM_ID = str(uuid.UUID(int=0x5EB3C0DE_0000_4000_8000_0000000000B1))
REGION = "bench"


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def viewers_text(count: int) -> str:
    """The ``viewers`` message both servers broadcast (the hub's wire format)."""
    return json.dumps(
        {"type": "viewers", "stream_id": STREAM_ID, "viewers": count}, separators=(",", ":")
    )


async def _serve_commands(
    count: Callable[[], int],
    broadcast: Callable[[str], int],
    port: int,
    path: str,
    http: str = "",
) -> None:
    import os

    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    emit({"port": port, "path": path, "pid": os.getpid(), "loop": loop, "http": http})
    async for command in commands():
        cmd = command.get("cmd")
        reply: dict[str, Any]
        if cmd == "count":
            reply = {"count": count()}
        elif cmd == "gc":
            gc.collect()
            reply = {"ok": True}
        elif cmd == "broadcast":
            text = viewers_text(count())
            t0 = time.monotonic()
            sent = broadcast(text)
            t1 = time.monotonic()
            reply = {"t0": t0, "t1": t1, "sent": sent}
        else:
            reply = {"error": f"unknown command {cmd!r}"}
        emit(reply)


async def run_nova(http: str | None = None) -> None:
    """The service app with one active stream, until ``quit``; ``http`` overrides
    uvicorn's HTTP parser choice (``h11``)."""
    import uvicorn
    from prometheus_client import CollectorRegistry

    from nova_streaming.app import create_app
    from nova_streaming.runner import uvicorn_config
    from nova_streaming.settings import Settings
    from nova_streaming.viewers.hub import message
    from streaming_metrics import StreamingMetrics

    sock = _socket()
    port = int(sock.getsockname()[1])
    # The coalesced ticker would broadcast on every join while viewers connect; the bench
    # triggers the one broadcast it times, so the ticker's period is set out of the way.
    settings = Settings(
        region=REGION,
        host="127.0.0.1",
        port=port,
        metrics_host="127.0.0.1",
        replica_id="bench-service",
        viewer_update_interval=3600.0,
    )
    metrics = StreamingMetrics(CollectorRegistry(), regions=[REGION])
    app = create_app(settings, metrics=metrics)
    service = app.state.service
    config = uvicorn_config(app, settings, log_level="warning")
    if http is not None:
        config.http = http
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("bench: the service exited during start")
        await asyncio.sleep(0.01)
    await service.registry.start(STREAM_ID, REGION, "live")
    hub = service.hub

    def broadcast(_text: str) -> int:
        # Exactly what the hub's tick does for a stream whose count changed.
        sent: int = hub.broadcast(
            STREAM_ID, message("viewers", STREAM_ID, viewers=hub.local_viewers(STREAM_ID))
        )
        return sent

    try:
        await _serve_commands(
            lambda: int(hub.total),
            broadcast,
            port,
            f"/ws/streams/{STREAM_ID}",
            config.http_protocol_class.__name__,
        )
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        sock.close()


async def run_bare() -> None:
    """A bare ``websockets`` server holding connections open, until ``quit``."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    sock = _socket()
    port = int(sock.getsockname()[1])
    connections: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        connections.add(ws)
        try:
            await ws.wait_closed()
        finally:
            connections.discard(ws)

    def send_all(text: str) -> int:
        broadcast(connections, text)
        return len(connections)

    async with serve(handler, sock=sock):
        await _serve_commands(lambda: len(connections), send_all, port, f"/ws/streams/{STREAM_ID}")


async def run_picows() -> None:
    """A bare picows server holding connections open, until ``quit``."""
    from picows import WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

    connections: set[WSTransport] = set()

    class Holder(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: WSTransport) -> None:
            connections.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            connections.discard(transport)

    def factory(_request: WSUpgradeRequest) -> WSListener:
        return Holder()

    def send_all(text: str) -> int:
        payload = text.encode()
        for transport in connections:
            transport.send(WSMsgType.TEXT, payload)
        return len(connections)

    sock = _socket()
    port = int(sock.getsockname()[1])
    server = await ws_create_server(factory, sock=sock, enable_auto_ping=True)
    try:
        await _serve_commands(lambda: len(connections), send_all, port, f"/ws/streams/{STREAM_ID}")
    finally:
        server.close()


def main(argv: list[str]) -> int:
    """Run the server named by ``argv[0]`` (see the module docstring)."""
    from nova_streaming.runner import new_event_loop

    raise_nofile()
    kind = argv[0] if argv else ""
    runners: dict[str, tuple[Callable[[], Coroutine[Any, Any, None]], Callable[[], Any]]] = {
        "nova": (run_nova, new_event_loop),
        "nova-asyncio-h11": (lambda: run_nova("h11"), asyncio.new_event_loop),
        "bare": (run_bare, asyncio.new_event_loop),
        "bare-uvloop": (run_bare, new_event_loop),
        "picows": (run_picows, new_event_loop),
    }
    if kind not in runners:
        print(f"usage: python -m bench._ws_servers {'|'.join(runners)}", file=sys.stderr)
        return 2
    main_coro, loop_factory = runners[kind]
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main_coro())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
