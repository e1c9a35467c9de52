"""The viewer hub: this process's WebSocket viewers, per stream.

Cheap idle viewers: a viewer is one small object in a per-stream set; it has no task
of its own beyond the one the server runs for its connection. Broadcasts iterate the
local sockets and hand each frame to the transport without awaiting it (see
:func:`send_now`): a viewer whose transport refuses more data (its write buffer is
above the high-water mark because the client does not read) is dropped, so nothing is
ever buffered per viewer by the application.

Example::

    hub = ViewerHub(settings, metrics, presence, registry, service_metrics)
    await hub.open()          # starts the coalesced viewer-count ticker
    ...
    await hub.close()         # closes every viewer with 1001, disconnects recorded
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from enum import Enum
from typing import Any, Protocol

from nova_streaming.presence import PresenceEngine
from nova_streaming.registry import StreamEnded, StreamRegistry
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings
from streaming_metrics import StreamingMetrics

__all__ = ["SendResult", "Viewer", "ViewerHub", "ViewerSocket", "send_now", "text_frame"]

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008


class ViewerSocket(Protocol):
    """What the hub needs from a WebSocket (``AsgiViewerSocket``; Starlette's fits too)."""

    def send_text(self, data: str) -> Awaitable[None]:
        """Send one text frame."""
        ...

    def close(self, code: int = 1000, reason: str | None = None) -> Awaitable[None]:
        """Start the closing handshake."""
        ...

    def send_frame_now(self, frame: bytes, text: str) -> SendResult:
        """Send ``text`` now, as :func:`send_now` would, given its encoded server frame
        ``frame`` (:func:`text_frame`), which a socket may write as is."""
        ...


class SendResult(Enum):
    """Outcome of :func:`send_now`."""

    SENT = "sent"
    BLOCKED = "blocked"
    CLOSED = "closed"


def text_frame(text: str) -> bytes:
    """``text`` as one unfragmented, unmasked WebSocket text frame (RFC 6455 5.2): what
    a server sends. A broadcast encodes it once for all its viewers instead of once per
    viewer (server frames are never masked, so every viewer's bytes are the same).

    >>> text_frame("hi")
    b'\\x81\\x02hi'
    """
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 0x10000:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def send_now(send: Awaitable[None]) -> SendResult:
    """Run ``send`` to completion only if it completes without waiting.

    uvicorn's WebSocket ``send`` writes the frame to the transport synchronously and
    waits only when the transport paused writing (its buffer is over the high-water
    mark: the peer is not reading). Stepping the coroutine once tells the two apart
    without a task per viewer; a send that would wait is abandoned (``BLOCKED``) and
    the caller drops that viewer. Exceptions mean the connection is gone (``CLOSED``).

    >>> async def quick() -> None:
    ...     return None
    >>> send_now(quick())
    <SendResult.SENT: 'sent'>
    """
    coro = send.__await__()
    try:
        coro.send(None)
    except StopIteration:
        return SendResult.SENT
    except Exception:
        return SendResult.CLOSED
    close = getattr(coro, "close", None)
    if close is not None:
        close()
    return SendResult.BLOCKED


class Viewer:
    """One connected viewer: its stream, socket and the task serving the connection."""

    __slots__ = ("dropped", "left", "socket", "stream_id", "task")

    def __init__(
        self, stream_id: str, socket: ViewerSocket, task: asyncio.Task[Any] | None
    ) -> None:
        self.stream_id = stream_id
        self.socket = socket
        self.task = task
        self.left = False
        self.dropped = False


def message(kind: str, stream_id: str, **fields: Any) -> str:
    """The JSON text of a server message (``hello``, ``viewers``, ``stream_ended``)."""
    return json.dumps({"type": kind, "stream_id": stream_id, **fields}, separators=(",", ":"))


class ViewerHub:
    """Local viewers per stream, their metrics, presence counts and broadcasts."""

    def __init__(
        self,
        settings: Settings,
        metrics: StreamingMetrics,
        presence: PresenceEngine,
        registry: StreamRegistry,
        service_metrics: ServiceMetrics,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._presence = presence
        self._registry = registry
        self._service_metrics = service_metrics
        self._streams: dict[str, dict[Viewer, None]] = {}
        self._last_sent: dict[str, int] = {}
        self._total = 0
        self._reserved = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        registry.add_end_listener(self.on_stream_ended)
        registry.set_interest(lambda: list(self._streams))

    # --- lifecycle ---

    async def open(self) -> None:
        """Start the ticker that sends coalesced ``viewers`` messages."""
        self._closing = False
        if self._task is None:
            self._task = asyncio.create_task(self._tick_loop(), name="viewer-hub-tick")

    @property
    def closing(self) -> bool:
        """True from :meth:`close` on: new viewers are refused (1001, going away)."""
        return self._closing

    async def close(self) -> None:
        """Close every viewer (1001, going away: the client reconnects, to another
        replica behind a load balancer), recording each disconnection; from now on new
        viewers are refused with 1001 too. The graceful drain calls it at SIGTERM, the
        app's shutdown again (idempotent)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sid in list(self._streams):
            for viewer in list(self._streams.get(sid, ())):
                send_now(viewer.socket.close(CLOSE_GOING_AWAY, "server shutdown"))
                self.leave(viewer)

    # --- capacity ---

    @property
    def total(self) -> int:
        """Viewers connected to this process."""
        return self._total

    def reserve(self) -> bool:
        """Hold one slot under ``NOVA_MAX_CONNECTIONS`` while a viewer is admitted."""
        if self._closing or self._total + self._reserved >= self._settings.max_connections:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Give back a slot taken by :meth:`reserve` (joined or refused)."""
        self._reserved = max(0, self._reserved - 1)

    def streams(self) -> list[str]:
        """Streams with local viewers."""
        return list(self._streams)

    def local_viewers(self, stream_id: str) -> int:
        """Local viewers of ``stream_id``."""
        return len(self._streams.get(stream_id, ()))

    # --- joins and leaves ---

    def join(self, viewer: Viewer) -> bool:
        """Count ``viewer`` and send its ``hello``; False if the hello could not go, or
        if the hub closed while the viewer was being admitted (then closed with 1001,
        never counted)."""
        if self._closing:
            viewer.left = True
            send_now(viewer.socket.close(CLOSE_GOING_AWAY, "server shutdown"))
            return False
        sid = viewer.stream_id
        viewers = self._streams.setdefault(sid, {})
        viewers[viewer] = None
        self._total += 1
        self._metrics.record_websocket_connection(sid)
        self._presence.set_local(sid, len(viewers))
        self._registry.viewers_changed(sid)
        count = self._presence.global_count(sid)
        if self._last_sent.setdefault(sid, count) != count:
            # This hello says ``count``, the others last heard another value: the next
            # tick must send the count then, even if it is that other value again.
            self._last_sent[sid] = -1
        result = send_now(viewer.socket.send_text(message("hello", sid, viewers=count)))
        if result is not SendResult.SENT:
            self.leave(viewer)
            return False
        return True

    def leave(self, viewer: Viewer) -> None:
        """Uncount ``viewer`` (idempotent: every exit path may call it)."""
        if viewer.left:
            return
        viewer.left = True
        sid = viewer.stream_id
        viewers = self._streams.get(sid)
        if viewers is not None:
            viewers.pop(viewer, None)
            if not viewers:
                del self._streams[sid]
                self._last_sent.pop(sid, None)
        self._total -= 1
        self._metrics.record_websocket_disconnection(sid)
        self._presence.set_local(sid, len(viewers) if viewers else 0)
        self._registry.viewers_changed(sid)

    def _drop(self, viewer: Viewer) -> None:
        """Drop a viewer whose transport will not take more data."""
        if viewer.left:
            return
        viewer.dropped = True
        self._service_metrics.websocket_dropped.labels(reason="slow_consumer").inc()
        log.info("viewers: dropped a slow consumer of %s", viewer.stream_id)
        self.leave(viewer)
        # The connection's task waits in receive(); end it so the server closes the
        # transport (the endpoint treats this cancellation as a normal exit).
        if viewer.task is not None and viewer.task is not asyncio.current_task():
            viewer.task.cancel()

    # --- broadcasts ---

    def broadcast(self, stream_id: str, text: str) -> int:
        """Send ``text`` to every local viewer of ``stream_id``; returns viewers reached."""
        sent = 0
        frame = text_frame(text)
        for viewer in list(self._streams.get(stream_id, ())):
            result = viewer.socket.send_frame_now(frame, text)
            if result is SendResult.SENT:
                sent += 1
            elif result is SendResult.BLOCKED:
                self._drop(viewer)
            else:
                self.leave(viewer)
        return sent

    def on_stream_ended(self, ended: StreamEnded) -> None:
        """Tell the stream's local viewers, close them (1000) and uncount them."""
        sid = ended.stream_id
        text = message("stream_ended", sid, reason=ended.reason)
        for viewer in list(self._streams.get(sid, ())):
            result = send_now(viewer.socket.send_text(text))
            if result is SendResult.SENT:
                send_now(viewer.socket.close(CLOSE_NORMAL, "stream ended"))
                self.leave(viewer)
            elif result is SendResult.BLOCKED:
                self._drop(viewer)
            else:
                self.leave(viewer)
        self._presence.set_local(sid, 0)

    def tick(self) -> None:
        """Send ``viewers`` to each stream whose global count changed since the last send."""
        for sid in list(self._streams):
            count = self._presence.global_count(sid)
            if self._last_sent.get(sid) != count:
                self._last_sent[sid] = count
                self.broadcast(sid, message("viewers", sid, viewers=count))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.viewer_update_interval)
            try:
                self.tick()
            except Exception:
                log.exception("viewers: tick failed")
