"""Serve a registry over HTTP: a threaded server of its own, or an ASGI app to mount.

Both answer ``GET``/``HEAD /metrics`` (Prometheus text 0.0.4 or OpenMetrics by the
``Accept`` header, gzip by ``Accept-Encoding``, ``name[]`` filter, optional bearer
token) and ``/healthz``; the shared logic lives in :mod:`streaming_metrics._exposition`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import math
import queue
import selectors
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry

from streaming_metrics._exposition import (
    MAX_CONCURRENT_RENDERS,
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

# A connection must deliver a complete request head within this many seconds of being
# accepted or answered (idle keep-alive included), or it is closed: it holds no thread
# meanwhile, only its socket.
DEFAULT_IDLE_TIMEOUT_S = 5.0
# Open connections (waiting, or being answered); beyond this a new one is refused.
DEFAULT_MAX_CONNECTIONS = 64
# A worker gives up on a client that does not read its answer after this.
_WRITE_TIMEOUT_S = 10.0
# Request line plus headers; beyond this without the blank line ending them: 431.
_MAX_HEAD_BYTES = 65536
# Workers answering complete requests: every render slot, plus two so that /healthz and
# the 503 "too many concurrent scrapes" are answered while all renders run.
_MAX_WORKERS = MAX_CONCURRENT_RENDERS + 2
# How often the serve loop checks for close(): bounds how long close() blocks.
_POLL_INTERVAL_S = 0.2
# Refusals are logged at most this often (each one is counted).
_REFUSAL_LOG_INTERVAL_S = 10.0
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}
_SHUTTING_DOWN = text_response(503, "metrics app shutting down\n")
_OVER_CAPACITY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 21\r\n\r\n"
    b"too many connections\n"
)
_HEADER_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
    b"charset=utf-8\r\nConnection: close\r\nContent-Length: 25\r\n\r\n"
    b"request head is too long\n"
)


# --- threaded server -----------------------------------------------------------------


class _SocketWriter(io.BufferedIOBase):
    """The handler's ``wfile``: every write goes straight to the (blocking) socket."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        self._sock.sendall(data)
        return memoryview(data).nbytes


class _Handler(BaseHTTPRequestHandler):
    """Answers one complete request head (already read by the serve loop) via the shared
    Exposition; ``close_connection`` says whether the connection may be reused."""

    protocol_version = "HTTP/1.1"
    # Answer even a garbled request line (a TLS hello, say) with a status line, not
    # with an HTTP/0.9 headerless body.
    default_request_version = "HTTP/1.0"

    def __init__(
        self, sock: socket.socket, client_address: Any, exposition: Exposition, head: bytes
    ) -> None:
        # BaseRequestHandler.__init__ would read from the socket itself: set up by hand.
        self.request = sock
        self.connection = sock
        self.client_address = client_address
        self.exposition = exposition
        self.rfile = io.BytesIO(head)
        self.wfile = _SocketWriter(sock)
        self.close_connection = True

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
            # plan() checks the path, the method and the bearer token before it takes
            # a render slot: an unauthenticated request costs no render work.
            planned = self.exposition.plan(request)
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
            for piece in response.pieces:
                self.wfile.write(piece)

    def _joined(self, name: str) -> str | None:
        values = self.headers.get_all(name)
        return ",".join(values) if values else None

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("metrics server: %s " + format, self.address_string(), *args)


def _head_end(buffer: bytes | bytearray) -> int:
    """Where the request head in ``buffer`` ends (after its blank line), or -1."""
    ends = [i + n for i, n in ((buffer.find(b"\n\r\n"), 3), (buffer.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else -1


class _Connection:
    """One accepted connection: its socket, what it sent so far, and its deadline."""

    __slots__ = ("address", "buffer", "deadline", "eof", "sock")

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.deadline = deadline
        self.eof = False


class _HTTPServer:
    """A selector loop that holds every waiting connection without a thread, and a
    small pool of workers that answer complete requests.

    The serve loop (one thread) accepts, reads request heads and enforces the idle
    timeout; a connection reaches a worker only once its request head is complete, so
    silent, idle and slow-header clients cost a socket each, never a thread. At most
    ``max_connections`` are open at once; a connection beyond that is answered 503 at
    once and closed (counted in ``refused``, logged at most every 10 s).
    """

    def __init__(
        self,
        family: int,
        sockaddr: tuple[Any, ...],
        exposition: Exposition,
        *,
        max_connections: int,
        idle_timeout: float,
    ) -> None:
        self.exposition = exposition
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.refused = 0
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and sockaddr[0] == "::":
                # Accept IPv4 too on "::" whatever the OS default is.
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            self.socket.bind(sockaddr)
            self.socket.listen(128)
            self.socket.setblocking(False)
        except BaseException:
            self.socket.close()
            raise
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._open: set[_Connection] = set()  # every open connection, waiting or served
        self._waiting: set[_Connection] = set()  # in the selector (serve loop only)
        self._returned: list[_Connection] = []  # handed back by workers after an answer
        self._jobs: queue.SimpleQueue[_Connection | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle_workers = 0  # workers with no job reserved
        self._backlog = 0  # queued jobs no worker is reserved for
        self._stopping = threading.Event()
        self._last_refusal_log = -math.inf
        self._refused_since_log = 0

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    # --- serve loop (its own thread) ---

    def serve_forever(self) -> None:
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                timeout = _POLL_INTERVAL_S
                if self._waiting:
                    soonest = min(c.deadline for c in self._waiting)
                    timeout = max(0.0, min(timeout, soonest - now))
                for key, _ in self._selector.select(timeout):
                    try:
                        if key.fileobj is self.socket:
                            self._accept()
                        elif key.fileobj is self._wake_r:
                            self._take_returned()
                        else:
                            self._read(key.data)
                    except Exception:
                        # One connection's surprise must not end the serve loop.
                        logger.exception("metrics server: serve loop error")
                        if isinstance(key.data, _Connection):
                            self._unwait(key.data)
                            self._close(key.data)
                self._expire(time.monotonic())
        finally:
            self._shut()

    def _accept(self) -> None:
        for _ in range(self.max_connections + 16):  # bounded burst per loop turn
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                logger.debug("metrics server: accept failed", exc_info=True)
                return
            with self._lock:
                full = len(self._open) >= self.max_connections
            if full:
                self._refuse(sock)
                continue
            sock.setblocking(False)
            conn = _Connection(sock, address, time.monotonic() + self.idle_timeout)
            with self._lock:
                self._open.add(conn)
            self._wait(conn)

    def _refuse(self, sock: socket.socket) -> None:
        # Counted first: the client may read the answer before this thread goes on.
        self.refused += 1
        self._refused_since_log += 1
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(_OVER_CAPACITY)  # fits in an empty socket buffer: never blocks
            sock.shutdown(socket.SHUT_WR)
        sock.close()
        now = time.monotonic()
        if now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL_S:
            logger.warning(
                "metrics server: refused %d connection(s): %d connections already open",
                self._refused_since_log,
                self.max_connections,
            )
            self._last_refusal_log = now
            self._refused_since_log = 0

    def _wait(self, conn: _Connection) -> None:
        """Wait for the rest of a request head (or dispatch one already buffered)."""
        if _head_end(conn.buffer) >= 0 or (conn.eof and conn.buffer):
            self._dispatch(conn)
        elif conn.eof:
            self._close(conn)
        else:
            self._waiting.add(conn)
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._unwait(conn)
            self._close(conn)
            return
        if not data:
            conn.eof = True
        conn.buffer += data
        if _head_end(conn.buffer) < 0 and len(conn.buffer) > _MAX_HEAD_BYTES:
            self._unwait(conn)
            with contextlib.suppress(OSError):
                conn.sock.send(_HEADER_TOO_LARGE)
            self._close(conn)
        elif _head_end(conn.buffer) >= 0 or conn.eof:
            self._unwait(conn)
            self._wait(conn)

    def _unwait(self, conn: _Connection) -> None:
        self._waiting.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._waiting if c.deadline <= now]:
            logger.debug("metrics server: %s idle for %.1f s", conn.address, self.idle_timeout)
            self._unwait(conn)
            self._close(conn)

    def _take_returned(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        with self._lock:
            returned, self._returned = self._returned, []
        for conn in returned:
            conn.deadline = time.monotonic() + self.idle_timeout
            self._wait(conn)

    def _dispatch(self, conn: _Connection) -> None:
        """Queue a complete request for a worker: an idle one, else a new one (up to
        the pool size), else the first to finish (the backlog)."""
        worker: threading.Thread | None = None
        with self._lock:
            if self._idle_workers:
                self._idle_workers -= 1
            elif len(self._workers) < _MAX_WORKERS:
                worker = threading.Thread(
                    target=self._work,
                    name=f"metrics-worker-{self.server_address[1]}-{len(self._workers)}",
                    daemon=True,
                )
                self._workers.append(worker)
            else:
                self._backlog += 1
        self._jobs.put(conn)
        if worker is not None:
            worker.start()

    def _close(self, conn: _Connection) -> None:
        with self._lock:
            self._open.discard(conn)
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _shut(self) -> None:
        """Serve loop exit: stop listening, close every waiting connection."""
        with contextlib.suppress(OSError):
            self._selector.unregister(self.socket)
        self.socket.close()
        for conn in list(self._waiting):
            self._unwait(conn)
            self._close(conn)
        with self._lock:
            returned, self._returned = self._returned, []
        for conn in returned:
            self._close(conn)
        self._selector.close()
        for _ in self._workers:
            self._jobs.put(None)

    # --- workers ---

    def _work(self) -> None:
        while True:
            conn = self._jobs.get()
            if conn is None:
                return
            keep = False
            try:
                keep = self._answer(conn)
            except Exception:
                # A client that misbehaves or vanishes must not print tracebacks.
                logger.debug("metrics server: error serving %s", conn.address, exc_info=True)
            with self._lock:
                if self._backlog:
                    self._backlog -= 1  # this worker takes the oldest queued job next
                else:
                    self._idle_workers += 1
                if keep and not self._stopping.is_set():
                    self._returned.append(conn)
                    conn = None
            if conn is None:
                with contextlib.suppress(OSError):
                    self._wake_w.send(b"\0")
            else:
                self._close(conn)

    def _answer(self, conn: _Connection) -> bool:
        """Answer the buffered request head; True if the connection may be reused."""
        end = _head_end(conn.buffer)
        if end < 0:
            end = len(conn.buffer)  # the client closed mid-head: answer what came
        head, conn.buffer = bytes(conn.buffer[:end]), conn.buffer[end:]
        conn.sock.settimeout(_WRITE_TIMEOUT_S)
        handler = _Handler(conn.sock, conn.address, self.exposition, head)
        handler.handle_one_request()
        if handler.close_connection or conn.eof:
            return False
        conn.sock.setblocking(False)
        return True

    # --- control (any thread) ---

    def shutdown(self) -> None:
        """Stop the serve loop; it closes the listener and the waiting connections."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def drop_connections(self) -> None:
        """Cut the connections workers are answering (after :meth:`shutdown`)."""
        with self._lock:
            connections = list(self._open)
        for conn in connections:
            # OSError: already closed.
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        """Free the wake-up pair (after the serve loop ended)."""
        self._wake_r.close()
        self._wake_w.close()


class MetricsServer:
    """A running metrics HTTP server; see :func:`start_metrics_server`.

    ``open_connections`` and ``refused_connections`` (refused over the cap since start)
    describe its load.

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

    @property
    def open_connections(self) -> int:
        """Connections open now (waiting for a request or being answered)."""
        return self._httpd.open_connections

    @property
    def refused_connections(self) -> int:
        """Connections refused because ``max_connections`` were already open."""
        return self._httpd.refused

    def close(self) -> None:
        """Stop serving, drop open connections and free the port. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._httpd.shutdown()
            self._thread.join()
            self._httpd.drop_connections()
            self._httpd.server_close()

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
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
) -> MetricsServer:
    """Serve ``registry`` on ``http://addr:port/metrics`` from daemon threads.

    ``registry`` None serves prometheus_client's default ``REGISTRY``; ``port`` 0 picks
    a free port (read it from ``.port``). IPv6 addresses work (``"::1"``, ``"::"``).
    With ``token``, /metrics needs ``Authorization: Bearer <token>`` (checked before
    any render work); /healthz stays open. Renders pause automatic garbage collection
    while they run, as in :func:`metrics_app`.

    One thread waits on every connection (no thread per connection); a small pool of
    workers (at most 10) answers complete requests. A connection that has not sent a
    complete request head within ``idle_timeout`` seconds of being accepted or
    answered is closed; beyond ``max_connections`` open connections a new one gets a
    503 at once and is closed (counted in ``refused_connections``, logged).

    Raises ``OSError`` naming ``addr:port`` when it cannot listen (port in use),
    ``ValueError`` for a bad port, token or limit.

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
    if (
        isinstance(max_connections, bool)
        or not isinstance(max_connections, int)
        or max_connections < 1
    ):
        raise ValueError(
            f"metrics server: max_connections must be an int >= 1, got {max_connections!r}"
        )
    if (
        isinstance(idle_timeout, bool)
        or not isinstance(idle_timeout, int | float)
        or not 0 < idle_timeout < math.inf
    ):
        raise ValueError(
            f"metrics server: idle_timeout must be a positive number, got {idle_timeout!r}"
        )
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
        httpd = _HTTPServer(
            family,
            sockaddr,
            exposition,
            max_connections=max_connections,
            idle_timeout=float(idle_timeout),
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason = "address already in use"
        raise type(exc)(exc.errno, f"metrics server: cannot listen on {where}: {reason}") from exc
    thread = threading.Thread(
        target=httpd.serve_forever,
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
        # A multi-MB page in one send would have the server copy and frame it in one go
        # on the event loop; piece by piece (64-128 KiB), each send is short and flow
        # control (the server waits for the socket to drain) runs between them. A send
        # the socket takes at once does not suspend, though: 40 pieces of a 50k-stream
        # page went out back to back, 3-4 ms with no other task run (the worst loop
        # stall of the bench). So each piece ends with a pass through the event loop.
        pieces = () if request.method == "HEAD" else response.pieces
        for piece in pieces[:-1]:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": pieces[-1] if pieces else b""})

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
