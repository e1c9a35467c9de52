"""A local Alertmanager webhook receiver that records what it is sent.

Alertmanager's real receivers (Slack) are unreachable here, so the local stack points
every receiver at this server instead: ``POST /webhook/<receiver>`` stores the
notification, ``GET /alerts`` answers the JSON list of notifications received (newest
last, at most ``limit`` kept), ``GET /healthz`` answers ``ok``.

Example::

    >>> with start_receiver(0) as receiver:
    ...     receiver.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import ThreadingHTTPServer
from typing import Any

from nova_streaming.stack._http import QuietHandler, ServingThread

# Notifications are small; a bounded history keeps a long-running stack's memory flat.
DEFAULT_LIMIT = 1000
_MAX_BODY = 1 << 20


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], limit: int) -> None:
        self.notifications: deque[dict[str, Any]] = deque(maxlen=limit)
        self.lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(QuietHandler):
    server: _Server
    log_name = "receiver"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/alerts":
            with self.server.lock:
                body = json.dumps(list(self.server.notifications)).encode()
            self.reply(200, body, "application/json")
        elif path == "/healthz":
            self.reply(200, b"ok\n", "text/plain")
        else:
            self.reply(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if not (path == "/webhook" or path.startswith("/webhook/")):
            self.reply(404, b"not found\n", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.reply(413, b"body missing or too large\n", "text/plain")
            return
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            self.reply(400, b"body is not JSON\n", "text/plain")
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            self.reply(400, b"not an Alertmanager webhook payload\n", "text/plain")
            return
        record = {
            "received_at": time.time(),
            "path_receiver": path[len("/webhook/") :] if path != "/webhook" else "",
            **payload,
        }
        with self.server.lock:
            self.server.notifications.append(record)
        self.reply(200, b"ok\n", "text/plain")


class Receiver(ServingThread):
    """A running webhook receiver; see :func:`start_receiver`."""

    _server: _Server

    def __init__(self, server: _Server) -> None:
        super().__init__(server)
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        """The base URL Alertmanager posts to (``/<receiver name>`` is appended)."""
        return f"{self.url}/webhook"

    def notifications(self) -> list[dict[str, Any]]:
        """A copy of the notifications received so far, oldest first."""
        with self._server.lock:
            return list(self._server.notifications)


def start_receiver(port: int, host: str = "127.0.0.1", limit: int = DEFAULT_LIMIT) -> Receiver:
    """Serve the receiver on ``host:port`` (0: a free port) from a daemon thread.

    Example::

        >>> receiver = start_receiver(0)
        >>> receiver.notifications()
        []
        >>> receiver.close()
    """
    if limit < 1:
        raise ValueError(f"receiver: limit must be >= 1, got {limit}")
    return Receiver(_Server((host, port), limit))


def firing_alert_names(notifications: list[dict[str, Any]]) -> set[str]:
    """Names of the alerts that reached the receiver in a ``firing`` state.

    Example::

        >>> firing_alert_names([{"alerts": [{"status": "firing",
        ...     "labels": {"alertname": "StreamingNoActiveStreams"}}]}])
        {'StreamingNoActiveStreams'}
    """
    names: set[str] = set()
    for notification in notifications:
        for alert in notification.get("alerts") or []:
            if isinstance(alert, dict) and alert.get("status") == "firing":
                name = (alert.get("labels") or {}).get("alertname")
                if isinstance(name, str):
                    names.add(name)
    return names
