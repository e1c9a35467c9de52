"""The small threaded HTTP servers of the local stack (preview, alert receiver).

One place for what they share: serving from a daemon thread, a clean ``close()`` that
frees the port, use as a context manager, and replies with an explicit length.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["QuietHandler", "ServingThread"]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs at debug level and replies with a Content-Length."""

    log_name = "stack"
    extra_headers: tuple[tuple[str, str], ...] = ()

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in self.extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger(f"nova_streaming.stack.{self.log_name}").debug(format, *args)


class ServingThread:
    """``server`` served from a daemon thread until :meth:`close`.

    Example::

        >>> from http.server import ThreadingHTTPServer
        >>> with ServingThread(ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)) as s:
        ...     s.port > 0
        True
    """

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.port: int = int(server.server_address[1])
        # A short poll keeps close() quick; the stack starts and stops these often.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
