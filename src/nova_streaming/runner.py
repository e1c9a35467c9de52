"""Serving one replica: uvicorn for the app, the library's server for ``/metrics``.

Example::

    asyncio.run(serve(settings, metrics=StreamingMetrics(regions=[settings.region])))
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

from nova_streaming.app import Extension, create_app
from nova_streaming.settings import Settings
from nova_streaming.viewers.endpoint import ViewerFastPath
from streaming_metrics import StreamingMetrics, start_metrics_server

__all__ = [
    "WS_MAX_MESSAGE_BYTES",
    "new_event_loop",
    "raise_open_file_limit",
    "run",
    "serve",
    "uvicorn_config",
]

_T = TypeVar("_T")

WS_MAX_MESSAGE_BYTES = 64 * 1024
"""Largest message a viewer may send (viewers have nothing to say; keep it small)."""


def uvicorn_config(
    app: Starlette, settings: Settings, *, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn settings for ``app``: sans-I/O websockets (keep-alive pings on timers,
    no task per connection), pings and sizes from ``settings``, lifespan on, viewer
    WebSockets dispatched by :class:`~nova_streaming.viewers.endpoint.ViewerFastPath`.

    ``http="auto"`` is uvicorn's httptools parser when installed (the ``service`` extra),
    else h11; :func:`run` picks uvloop's event loop the same way.

    Two choices keep an idle viewer cheap (20k per process, ``NOVA_MAX_CONNECTIONS``):
    ``ws_per_message_deflate=False``: the server only sends JSON of under 200 bytes, and a
    browser offers permessage-deflate on every connection, which would cost each viewer
    a pair of zlib contexts for the life of the connection. ``proxy_headers=False``: the
    peer address is used only by the nginx-rtmp callbacks' allow-list, which must judge
    the real TCP peer, not an ``X-Forwarded-For`` header (and uvicorn's proxy middleware
    adds a coroutine frame to every held connection).
    """
    return uvicorn.Config(
        ViewerFastPath(app),
        interface="asgi3",
        http="auto",
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        ws_per_message_deflate=False,
        proxy_headers=False,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (the ``service`` extra brings it on
    platforms with a wheel), else asyncio's own.

    uvloop reads sockets in C into one reused buffer: the RTMP receiver's CPU per relayed
    stream and the viewers' broadcasts cost a fraction of the default loop's (numbers in
    docs/benchmarks.md). Everything the service does works the same on both loops.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def raise_open_file_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit and return it: each
    viewer is one socket, and ``NOVA_MAX_CONNECTIONS`` (20,000) is far above the usual
    soft default of 1,024 (beyond it, accepts fail with "Too many open files")."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on :func:`new_event_loop`'s loop, after
    :func:`raise_open_file_limit`.

    Example::

        run(serve(settings, metrics=metrics))
    """
    raise_open_file_limit()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


async def serve(
    settings: Settings,
    *,
    metrics: StreamingMetrics,
    extensions: Sequence[Extension] = (),
    sockets: list[socket.socket] | None = None,
) -> None:
    """Run the app and the metrics server until SIGTERM/SIGINT; viewers are closed
    (1012 from uvicorn, then the hub) and every disconnection is recorded."""
    app = create_app(settings, metrics=metrics, extensions=extensions)
    server = uvicorn.Server(uvicorn_config(app, settings))
    metrics_server = start_metrics_server(
        settings.metrics_port, settings.metrics_host, metrics.registry, token=settings.metrics_token
    )
    try:
        await server.serve(sockets=sockets)
    finally:
        metrics_server.close()
