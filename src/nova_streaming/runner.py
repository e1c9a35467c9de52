"""Serving one replica: uvicorn for the app, the library's server for ``/metrics``.

The first SIGTERM (or Ctrl-C) drains the replica before uvicorn shuts down (see
:mod:`nova_streaming.drain`): unready at once, viewers closed with 1001, streams handed
over to another replica, exit within ``NOVA_SHUTDOWN_GRACE`` seconds. A second Ctrl-C
skips the rest of the drain, a third forces the exit (uvicorn's own behaviour).

Example::

    asyncio.run(serve(settings, metrics=StreamingMetrics(regions=[settings.region])))
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import resource
import signal
import socket
import time
from collections.abc import Coroutine, Sequence
from types import AsyncGeneratorType, FrameType
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

from nova_streaming.app import Extension, create_app
from nova_streaming.drain import DrainReport, ShutdownDrain, shutdown_budget
from nova_streaming.gc_pauses import GcPauseRecorder, freeze_startup_objects
from nova_streaming.settings import Settings
from nova_streaming.viewers.endpoint import ViewerFastPath
from nova_streaming.viewers.protocol import viewer_ws_protocol
from streaming_metrics import StreamingMetrics, start_metrics_server

__all__ = [
    "WS_MAX_MESSAGE_BYTES",
    "DrainingServer",
    "new_event_loop",
    "raise_open_file_limit",
    "run",
    "serve",
    "uvicorn_config",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

WS_MAX_MESSAGE_BYTES = 64 * 1024
"""Largest message a viewer may send (viewers have nothing to say; keep it small)."""


def uvicorn_config(
    app: Starlette, settings: Settings, *, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn settings for ``app``: sans-I/O websockets as
    :class:`~nova_streaming.viewers.protocol.LeanWebSocketProtocol` (no task per
    connection, keep-alive pings on one shared wheel, the handshake let go once
    answered), pings and sizes from ``settings``, lifespan on, viewer WebSockets
    dispatched by :class:`~nova_streaming.viewers.endpoint.ViewerFastPath`.

    ``http="h11"``: uvicorn's httptools parser measured no gain for viewers (it only
    parses the upgrade request) and changed the outcome of the Redis-cluster failover
    chaos scenario, so h11 is pinned; :func:`run` picks uvloop's event loop when installed.

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
        http="h11",
        host=settings.host,
        port=settings.port,
        ws=viewer_ws_protocol(),
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


class DrainingServer(uvicorn.Server):
    """``uvicorn.Server`` whose first SIGTERM/SIGINT runs a :class:`ShutdownDrain`
    before the usual shutdown, all within ``grace`` seconds of the signal.

    The signal handler only marks the replica unready (``/readyz`` 503 at once) and
    records the signal; the drain runs as a task started from uvicorn's main-loop tick.
    When it is done, uvicorn's own exit path runs (so the process still ends by the
    signal, 143 for SIGTERM), with its graceful timeout cut to the time left. Should
    anything still run at the grace, the shutdown is abandoned (logged with where each
    remaining part waits) and the process ends by the signal all the same.

    Example::

        server = DrainingServer(uvicorn_config(app, settings), ShutdownDrain(service), 25.0)
        await server.serve()
    """

    def __init__(self, config: uvicorn.Config, drain: ShutdownDrain, grace: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace = grace
        self.report: DrainReport | None = None
        self._signal: int | None = None
        self._signalled_at = 0.0
        self._drain_task: asyncio.Task[None] | None = None
        self._serving: asyncio.Task[Any] | None = None
        self._cut_short = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up (the app's lifespan, then the listening sockets), then
        :func:`~nova_streaming.gc_pauses.freeze_startup_objects`: what start-up built
        lives as long as the process, and no full collection walks it again."""
        await super().startup(sockets=sockets)
        frozen = freeze_startup_objects()
        log.debug("nova-streaming: %d start-up objects frozen out of the collector", frozen)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal after start: drain; later ones (or before start): uvicorn's."""
        if self._signal is None and self.started and not self.should_exit:
            self._signal = sig
            self._signalled_at = time.monotonic()
            self.drain.begin()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick (every 0.1 s), which also starts the drain once signalled."""
        if self._signal is not None and self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain(self._signal), name="drain")
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop a drain cut short by a second signal, then uvicorn's shutdown."""
        task = self._drain_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().shutdown(sockets)

    async def _drain(self, sig: int) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time() - (time.monotonic() - self._signalled_at)
        wait, reserve = shutdown_budget(self.grace)
        loop.call_at(start + self.grace, self._overdue)
        try:
            async with asyncio.timeout_at(start + wait + reserve / 2):
                self.report = await self.drain.run(deadline=start + wait)
        except TimeoutError:
            log.warning("nova-streaming: drain cut short at the end of its budget")
        except Exception:
            log.exception("nova-streaming: drain failed; shutting down")
        left = start + self.grace - loop.time()
        # uvicorn then waits for open HTTP connections; leave time for the lifespan.
        self.config.timeout_graceful_shutdown = max(1, math.floor(left / 2))
        super().handle_exit(sig, None)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's ``serve``, which the grace can cut short (see :meth:`_overdue`)."""
        self._serving = asyncio.current_task()
        try:
            await super().serve(sockets=sockets)
        except asyncio.CancelledError:
            if not self._cut_short or self._signal is None:
                raise
            # uvicorn restored the original handlers on the way out; end as the signal
            # does after a complete shutdown (143 for SIGTERM).
            signal.raise_signal(self._signal)

    def _overdue(self) -> None:
        """The grace is over. ``force_exit`` skips uvicorn's remaining waits, but not
        the app's shutdown (lifespan) once under way: a part of it that never returns
        (a Redis call without an answer, a stuck component) would keep the process
        past the grace, forever. So the serving task is cancelled as well, naming what
        was still running, and the process ends by the signal."""
        if not self.force_exit:
            log.error("nova-streaming: still shutting down at the grace; forcing the exit")
            self.force_exit = True
        task = self._serving
        if task is not None and not task.done():
            log.error("nova-streaming: abandoning the shutdown; still running: %s", _running())
            self._cut_short = True
            task.cancel()


def _awaiting(awaitable: object) -> str:
    """Where ``awaitable`` waits: its chain of awaits, outermost first
    (``lifespan > IngestComponent.stop > wait``)."""
    names: list[str] = []
    current: object = awaitable
    while current is not None:
        frame = (
            getattr(current, "cr_frame", None)
            or getattr(current, "gi_frame", None)
            or getattr(current, "ag_frame", None)
        )
        if frame is None:
            break
        names.append(frame.f_code.co_qualname)
        current = (
            getattr(current, "cr_await", None)
            or getattr(current, "gi_yieldfrom", None)
            or getattr(current, "ag_await", None)
        )
    return " > ".join(names) or "?"


def _running() -> str:
    """What the loop still runs: each other task and each async generator suspended in
    an await (an ``async with`` body such as the app's lifespan, which a task's chain
    of awaits does not reach), with where it waits. Only for the abandoned-shutdown
    log line: it walks the garbage collector's objects."""
    current = asyncio.current_task()
    described = [
        f"task {task.get_name()}: {_awaiting(task.get_coro())}"
        for task in asyncio.all_tasks()
        if task is not current and not task.done()
    ]
    # Start-up objects were frozen out of the collector's view (the app's lifespan
    # generator among them) and gc.get_objects() no longer lists them: put them back.
    # The process is about to end; the next full pass walks them again, that is all.
    gc.unfreeze()
    described += [
        f"async generator {_awaiting(obj)}"
        for obj in gc.get_objects()
        # type(), not isinstance(): gc also holds weak proxies to dead objects.
        if type(obj) is AsyncGeneratorType and obj.ag_await is not None
    ]
    return "; ".join(sorted(described)) or "nothing"


async def serve(
    settings: Settings,
    *,
    metrics: StreamingMetrics,
    extensions: Sequence[Extension] = (),
    sockets: list[socket.socket] | None = None,
) -> None:
    """Run the app and the metrics server until SIGTERM/SIGINT, then drain (see
    :class:`DrainingServer`) and shut down: every viewer disconnection is recorded and
    the streams this replica carried are handed over, within
    ``settings.shutdown_grace`` seconds. ``/metrics`` answers until the end."""
    app = create_app(settings, metrics=metrics, extensions=extensions)
    server = DrainingServer(
        uvicorn_config(app, settings), ShutdownDrain(app.state.service), settings.shutdown_grace
    )
    # Every collection's pause, in nova_streaming_gc_pause_seconds (docs/service.md).
    gc_pauses = GcPauseRecorder(app.state.service.service_metrics.gc_pause)
    gc_pauses.install()
    metrics_server = start_metrics_server(
        settings.metrics_port, settings.metrics_host, metrics.registry, token=settings.metrics_token
    )
    try:
        await server.serve(sockets=sockets)
    finally:
        gc_pauses.uninstall()
        metrics_server.close()
