"""Bench-only WebSocket servers, each run in its own process so its RSS is its own.

``python -m bench._ws_servers nova``: the real service app (``create_app`` with the
memory presence engine, served by uvicorn with the service's own ``uvicorn_config``) with
one active stream started through the registry. ``python -m bench._ws_servers bare``: a
bare ``websockets`` asyncio server that keeps every connection open. Both bind a free
loopback port, print ``{"port", "path", "pid"}`` when ready, then answer commands on
stdin: ``count`` (connections held), ``gc`` (full collection), ``broadcast`` (one
``viewers`` message to every connection; replies with the monotonic time before and after
the send loop), ``quit``.

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
from collections.abc import Callable
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
    count: Callable[[], int], broadcast: Callable[[str], int], port: int, path: str
) -> None:
    import os

    emit({"port": port, "path": path, "pid": os.getpid()})
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


async def run_nova() -> None:
    """The service app with one active stream, until ``quit``."""
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
    server = uvicorn.Server(uvicorn_config(app, settings, log_level="warning"))
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
        await _serve_commands(lambda: int(hub.total), broadcast, port, f"/ws/streams/{STREAM_ID}")
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


def main(argv: list[str]) -> int:
    """Run the server named by ``argv[0]`` (``nova`` or ``bare``)."""
    raise_nofile()
    kind = argv[0] if argv else ""
    runners = {"nova": run_nova, "bare": run_bare}
    if kind not in runners:
        print(f"usage: python -m bench._ws_servers {'|'.join(runners)}", file=sys.stderr)
        return 2
    asyncio.run(runners[kind]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
