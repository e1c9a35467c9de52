"""Serve a registry over HTTP: a threaded server of its own, or an ASGI app to mount.

Both answer ``GET``/``HEAD /metrics`` (Prometheus text 0.0.4 or OpenMetrics by the
``Accept`` header, gzip by ``Accept-Encoding``, ``name[]`` filter, optional bearer
token) and ``/healthz``; the shared logic lives in :mod:`streaming_metrics._exposition`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import socketserver
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry

from streaming_metrics._exposition import (
    Exposition,
    Render,
    Request,
    Response,
    text_response,
)

__all__ = ["MetricsServer", "metrics_app", "start_metrics_server"]

logger = logging.getLogger("streaming_metrics.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Idle keep-alive connections and stalled clients give their thread back after this.
_CONNECTION_TIMEOUT_S = 30.0
# How often the serve loop checks for close(): bounds how long close() blocks.
_POLL_INTERVAL_S = 0.2
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}
_SHUTTING_DOWN = text_response(503, "metrics app shutting down\n")


# --- threaded server -----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """One connection of the threaded server; answers via the shared Exposition."""

    protocol_version = "HTTP/1.1"
    # Answer even a garbled request line (a TLS hello, say) with a status line, not
    # with an HTTP/0.9 headerless body.
    default_request_version = "HTTP/1.0"
    timeout = _CONNECTION_TIMEOUT_S
    server: _HTTPServer

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def __getattr__(self, name: str) -> Any:
        # http.server answers an unknown method with 501; route it so known paths
        # say 405 (with Allow) and unknown ones 404, like the ASGI app.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def _answer(self) -> None:
        try:
            target = urlsplit(self.path)
        except ValueError as exc:
            # An unclosed or invalid IPv6 bracket in an absolute target: answer it
            # rather than let the handler raise and drop the connection unanswered.
            response = text_response(400, f"bad request: {exc}\n")
        else:
            request = Request(
                method=self.command,
                path=unquote(target.path, encoding="latin-1"),
                query=target.query,
                accept=self._joined("Accept"),
                accept_encoding=self._joined("Accept-Encoding"),
                authorization=self.headers.get("Authorization"),
            )
            planned = self.server.exposition.plan(request)
            response = planned.run() if isinstance(planned, Render) else planned
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(response.content_length))
        has_body = self.headers.get("Content-Length", "0").strip() not in ("", "0")
        if response.status >= 400 or has_body or "Transfer-Encoding" in self.headers:
            # A request body is never read: reusing the connection would parse it as
            # the next request. Errors close too, whatever state the client is in.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _joined(self, name: str) -> str | None:
        values = self.headers.get_all(name)
        return ",".join(values) if values else None

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("metrics server: %s " + format, self.address_string(), *args)


class _HTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Thread-per-connection server that can drop its open connections on close."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, family: int, sockaddr: tuple[Any, ...], exposition: Exposition) -> None:
        self.address_family = family
        self.exposition = exposition
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(sockaddr, _Handler, bind_and_activate=False)
        try:
            if family == socket.AF_INET6 and sockaddr[0] == "::":
                # Accept IPv4 too on "::" whatever the OS default is.
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            # OSError: its handler thread already closed it.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that misbehaves or vanishes must not print tracebacks to stderr.
        logger.debug("metrics server: error serving %s", client_address, exc_info=True)


class MetricsServer:
    """A running metrics HTTP server; see :func:`start_metrics_server`.

    Example::

        >>> from prometheus_client import CollectorRegistry
        >>> with start_metrics_server(0, "127.0.0.1", CollectorRegistry()) as server:
        ...     server.url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self._closed = False
        self._close_lock = threading.Lock()
        host, port = httpd.server_address[:2]
        self.addr: str = str(host)
        self.port: int = int(port)
        local = _WILDCARDS.get(self.addr, self.addr)
        netloc = f"[{local}]" if ":" in local else local
        self.url: str = f"http://{netloc}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving, drop open connections and free the port. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.drop_connections()
            self._thread.join()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving"
        return f"<MetricsServer {self.url} {state}>"


def start_metrics_server(
    port: int = 8081,
    addr: str = "0.0.0.0",
    registry: CollectorRegistry | None = None,
    *,
    token: str | None = None,
) -> MetricsServer:
    """Serve ``registry`` on ``http://addr:port/metrics`` from daemon threads.

    ``registry`` None serves prometheus_client's default ``REGISTRY``; ``port`` 0 picks
    a free port (read it from ``.port``). IPv6 addresses work (``"::1"``, ``"::"``).
    With ``token``, /metrics needs ``Authorization: Bearer <token>``; /healthz stays
    open. Renders pause automatic garbage collection while they run, as in
    :func:`metrics_app`. Raises ``OSError`` naming ``addr:port`` when it cannot listen
    (port in use), ``ValueError`` for a bad port or token.

    Example::

        >>> from prometheus_client import CollectorRegistry, Counter
        >>> registry = CollectorRegistry()
        >>> _ = Counter("demo_events", "Demo events.", registry=registry)
        >>> server = start_metrics_server(0, "127.0.0.1", registry)
        >>> import urllib.request
        >>> b"demo_events_total 0.0" in urllib.request.urlopen(server.url).read()
        True
        >>> server.close()
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"metrics server: port must be an int in 0..65535, got {port!r}")
    if not isinstance(addr, str):
        raise TypeError(f"metrics server: addr must be a str, got {type(addr).__name__}")
    exposition = Exposition(registry, token)
    where = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
    try:
        infos = socket.getaddrinfo(
            addr or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise OSError(
            exc.errno, f"metrics server: cannot resolve bind address {addr!r}: {exc}"
        ) from exc
    family, _, _, _, sockaddr = infos[0]
    try:
        httpd = _HTTPServer(family, sockaddr, exposition)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason = "address already in use"
        raise type(exc)(exc.errno, f"metrics server: cannot listen on {where}: {reason}") from exc
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": _POLL_INTERVAL_S},
        name=f"metrics-server-{httpd.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return MetricsServer(httpd, thread)


# --- ASGI app ------------------------------------------------------------------------


class MetricsApp:
    """ASGI3 app serving /metrics and /healthz; see :func:`metrics_app`."""

    # Renders run here, never on the event loop; two workers so a slow scrape does not
    # hold up the next one, and no more because renders compete for the same GIL.
    _WORKERS: ClassVar[int] = 2

    def __init__(self, exposition: Exposition) -> None:
        self._exposition = exposition
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http":
            await self._http(scope, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            # Refuse before accepting: the server answers the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
        else:
            raise ValueError(f"metrics app: unsupported ASGI scope type {kind!r}")

    async def _http(self, scope: Scope, send: Send) -> None:
        headers: dict[str, list[str]] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name = bytes(raw_name).decode("latin-1").lower()
            headers.setdefault(name, []).append(bytes(raw_value).decode("latin-1"))
        request = Request(
            method=str(scope.get("method", "GET")).upper(),
            path=_route_path(scope),
            query=bytes(scope.get("query_string", b"")).decode("latin-1"),
            accept=",".join(headers["accept"]) if "accept" in headers else None,
            accept_encoding=(
                ",".join(headers["accept-encoding"]) if "accept-encoding" in headers else None
            ),
            authorization=headers["authorization"][0] if "authorization" in headers else None,
        )
        planned = self._exposition.plan(request)
        if isinstance(planned, Render):
            response = await self._run(planned)
        else:
            response = planned
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    *(
                        (k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in response.headers
                    ),
                    (b"content-length", str(response.content_length).encode("ascii")),
                ],
            }
        )
        body = b"" if request.method == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

    async def _run(self, render: Render) -> Response:
        try:
            job = self._get_executor().submit(render.run)
        except RuntimeError:  # executor shut down under us
            render.cancel()
            return _SHUTTING_DOWN
        # A job cancelled before a worker picks it up (this task was cancelled while the
        # job waited in the queue, or close() dropped the queue) never runs render.run,
        # which is what gives the render slot back: give it back here instead, or each
        # such scrape would cost one slot for good. A job already running is not
        # cancellable; it finishes and frees its slot itself.
        job.add_done_callback(lambda done: render.cancel() if done.cancelled() else None)
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # Not this task: close() cancelled the queued job.
            return _SHUTTING_DOWN

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._WORKERS, thread_name_prefix="metrics-render"
                )
            return self._executor

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Stop the render workers (a later request starts new ones)."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (Starlette's Mount sets root_path)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def metrics_app(
    registry: CollectorRegistry | None = None, *, token: str | None = None
) -> MetricsApp:
    """An ASGI3 app serving ``/metrics`` and ``/healthz`` for ``registry``.

    Rendering runs on a small dedicated thread pool, never on the event loop, so a big
    scrape does not stall the viewers the loop serves: while a render runs, automatic
    garbage collection is paused (``gc.disable()``; turned back on when the last
    render ends, left off if the application had turned it off) and the render hands
    the GIL back every millisecond. ``token`` as for
    :func:`start_metrics_server`. Serve it alone (``uvicorn`` handles its lifespan) or
    inside an app, e.g. with Starlette::

        >>> from prometheus_client import CollectorRegistry
        >>> app = metrics_app(CollectorRegistry())
        >>> # Starlette(routes=[Route("/metrics", app), Route("/healthz", app), ...])
        >>> callable(app)
        True
    """
    return MetricsApp(Exposition(registry, token))
