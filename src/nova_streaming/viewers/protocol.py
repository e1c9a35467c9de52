"""The WebSocket protocol uvicorn runs for every connection, minus what an idle viewer
does not need once its handshake is done.

uvicorn's sans-I/O protocol keeps the handshake's ``Request`` and ``Response`` (each
with a ``Headers``: a dict of one list per header name, plus a list of pairs) for the
life of the connection, though nothing reads them after the 101 is written. That is
about 18 of the roughly 68 objects the garbage collector tracks per idle viewer, and a
full (generation 2) collection walks every tracked object of the process: with
thousands of viewers each pass stalls the event loop for hundreds of milliseconds
(docs/service.md, "Garbage collection and event-loop stalls"). Fewer tracked objects
per connection make every pass shorter and the passes rarer (CPython starts one when
the objects promoted since the last grow past a quarter of the long-lived ones).

Keep-alive pings run on one :class:`KeepaliveWheel` per server instead of a loop timer
per connection (a ``TimerHandle``, its callback, its context copy and uvloop's timer:
four more tracked objects per viewer, re-created at every ping and pong): a connection
waiting for its next ping or its pong is one entry in a shared per-tick dict.

Example::

    uvicorn.Config(app, ws=LeanWebSocketProtocol)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import random
import struct
import weakref
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame
from websockets.protocol import State

from nova_streaming.viewers.hub import SendResult

__all__ = ["KEEPALIVE_TICK", "KeepaliveWheel", "LeanWebSocketProtocol", "viewer_ws_protocol"]

log = logging.getLogger(__name__)

KEEPALIVE_TICK = 0.1
"""Resolution of keep-alive deadlines (s): a ping or pong deadline fires up to this late."""

_PING = 0
_PONG = 1
_NO_EXTENSIONS: list[Any] = []


class KeepaliveWheel:
    """Every connection's next keep-alive deadline (send a ping, or give up waiting for
    its pong), bucketed by tick, behind one loop timer armed for the earliest bucket.

    Example::

        wheel = KeepaliveWheel(loop)
        tick = wheel.add(protocol, 20.0)   # protocol.keepalive_due() in about 20 s
        wheel.discard(protocol, tick)      # or not
    """

    __slots__ = ("_armed", "_loop", "_ticks", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ticks: dict[int, dict[LeanWebSocketProtocol, None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed: int | None = None

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._ticks.values())

    def add(self, protocol: LeanWebSocketProtocol, delay: float) -> int:
        """Call ``protocol.keepalive_due()`` ``delay`` seconds from now (rounded up to
        the tick); returns the tick, for :meth:`discard`."""
        tick = math.ceil((self._loop.time() + delay) / KEEPALIVE_TICK)
        self._ticks.setdefault(tick, {})[protocol] = None
        if self._armed is None or tick < self._armed:
            self._arm(tick)
        return tick

    def discard(self, protocol: LeanWebSocketProtocol, tick: int) -> None:
        """Forget ``protocol``'s deadline at ``tick`` (idempotent)."""
        bucket = self._ticks.get(tick)
        if bucket is not None:
            bucket.pop(protocol, None)
            if not bucket:
                del self._ticks[tick]

    def _arm(self, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = tick
        self._timer = self._loop.call_at(tick * KEEPALIVE_TICK, self._fire)

    def _fire(self) -> None:
        # Every bucket up to the one armed for is due (the loop may fire a timer a
        # hair early: comparing with the clock could leave that bucket spinning).
        armed = self._armed if self._armed is not None else 0
        self._timer = None
        self._armed = None
        for tick in sorted(t for t in self._ticks if t <= armed):
            for protocol in self._ticks.pop(tick):
                try:
                    protocol.keepalive_due()
                except Exception:
                    log.exception("viewers: keep-alive of one connection failed")
        if self._ticks:
            self._arm(min(self._ticks))


class ReceiveInbox(asyncio.Queue[Any]):
    """uvicorn's per-connection receive queue, without the containers of one.

    ``asyncio.Queue`` holds three deques and an ``Event`` (with a deque of its own) per
    connection, for features uvicorn never uses (bounds, ``join``, several getters):
    five tracked objects per viewer, for life. uvicorn only calls :meth:`put_nowait`,
    :meth:`get` (one receiver at a time: the ASGI app's ``receive``) and :meth:`empty`.
    Items wait in a deque that exists only while something is queued; a receiver
    waits on one future. As with ``asyncio.Queue``, an item is never lost to a
    receiver cancelled after it was woken: it stays queued until taken.

    Example::

        inbox = ReceiveInbox()
        inbox.put_nowait({"type": "websocket.connect"})
        assert (await inbox.get())["type"] == "websocket.connect"
    """

    # Deliberately not asyncio.Queue.__init__: that builds the containers this avoids.
    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<ReceiveInbox {self.qsize()} queued>"

    def qsize(self) -> int:
        """Items queued."""
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        """No item queued."""
        return not self._items

    def put_nowait(self, item: Any) -> None:
        """Queue ``item`` and wake the receiver, if one waits."""
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        """The next item, waiting for one if none is queued."""
        while not self._items:
            if self._waiter is not None and not self._waiter.done():
                raise RuntimeError("ReceiveInbox: one receiver at a time")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item


_WHEELS: weakref.WeakKeyDictionary[ServerState, KeepaliveWheel] = weakref.WeakKeyDictionary()


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` that lets go of the handshake once it is answered
    and keeps its keep-alive deadlines on the server's :class:`KeepaliveWheel`.

    uvicorn calls :meth:`start_keepalive` exactly once, right after it wrote the 101
    response (the only place that reads ``response``); ``request`` is never read after
    the handshake. Rejected handshakes never get here and keep uvicorn's path unchanged.
    The keep-alive behaves as uvicorn's (a ping every ``ws_ping_interval`` less the
    last round trip, closed with 1011 when no pong comes within ``ws_ping_timeout``),
    to :data:`KEEPALIVE_TICK`; ``ping_timer`` and ``pong_timer`` stay None.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.queue = ReceiveInbox()
        # One wheel per server (its state object lives as long as the server).
        wheel = _WHEELS.get(server_state)
        if wheel is None:
            wheel = _WHEELS[server_state] = KeepaliveWheel(self.loop)
        self._wheel = wheel
        self._keepalive_tick: int | None = None
        self._keepalive_kind = _PING

    def start_keepalive(self) -> None:
        """Start uvicorn's keep-alive pings, then drop the handshake's request and
        response (and their header structures) for the rest of the connection."""
        super().start_keepalive()
        # websockets' parser generator keeps the Request in a local for the life of
        # the connection; emptying its headers frees their containers all the same.
        self.request.headers.clear()
        del self.request
        del self.response
        # No extension is ever negotiated (permessage-deflate is off): one shared empty
        # list instead of two per connection (websockets only iterates them).
        self.conn.available_extensions = None
        self.conn.extensions = _NO_EXTENSIONS

    def send_frame_now(self, frame: bytes) -> SendResult:
        """Write ``frame``, an encoded server text frame, if uvicorn's ``send`` of a
        ``websocket.send`` message would write it without waiting, with the same
        outcome: ``BLOCKED`` while writing is paused (the peer is not reading: uvicorn
        would wait), ``CLOSED`` where uvicorn would raise (the connection lost, our close
        frame sent, the peer's received), ``SENT`` once written.

        What it skips is per-viewer work a broadcast repeats for nothing: an ASGI
        message dict, a coroutine, websockets' frame object and its serialisation,
        which only checks the state this checks (no extension is ever negotiated, and
        the service never sends a fragmented message)."""
        if not self.writable.is_set():
            return SendResult.BLOCKED
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or self.conn.state is not State.OPEN
        ):
            return SendResult.CLOSED
        self.transport.write(frame)
        return SendResult.SENT

    # --- keep-alive on the wheel (uvicorn's logic, without a timer per connection) ---

    def schedule_ping(self) -> None:
        """The next ping, ``ping_interval`` less the last round trip from now."""
        assert self.ping_interval is not None
        self._keepalive_wait(max(0.0, self.ping_interval - self.last_ping_rtt), _PING)

    def send_keepalive_ping(self) -> None:
        """Send a ping with a random payload and wait for its pong (or ping again)."""
        if self.close_sent or self.transport.is_closing():
            return
        self.pending_ping_payload = struct.pack("!I", random.getrandbits(32))
        self.ping_sent_at = self.loop.time()
        self.conn.send_ping(self.pending_ping_payload)
        self.transport.write(b"".join(self.conn.data_to_send()))
        if self.ping_timeout is not None:
            self._keepalive_wait(self.ping_timeout, _PONG)
        else:
            self.schedule_ping()

    def handle_pong(self, event: Frame) -> None:
        """The pong of the ping in flight: note the round trip, schedule the next ping
        (stale or unsolicited pongs are ignored)."""
        if self.pending_ping_payload is None or bytes(event.data) != self.pending_ping_payload:
            return
        self.last_ping_rtt = self.loop.time() - self.ping_sent_at
        self.pending_ping_payload = None
        if self._keepalive_kind == _PONG and self._keepalive_tick is not None:
            self.schedule_ping()

    def stop_keepalive(self) -> None:
        """No more pings or pong deadlines for this connection."""
        super().stop_keepalive()
        self._keepalive_cancel()

    def keepalive_due(self) -> None:
        """Called by the wheel at the deadline: ping, or close for a missing pong."""
        self._keepalive_tick = None
        if self._keepalive_kind == _PING:
            self.send_keepalive_ping()
        else:
            self.keepalive_timeout()

    def _keepalive_wait(self, delay: float, kind: int) -> None:
        self._keepalive_cancel()
        self._keepalive_kind = kind
        self._keepalive_tick = self._wheel.add(self, delay)

    def _keepalive_cancel(self) -> None:
        if self._keepalive_tick is not None:
            self._wheel.discard(self, self._keepalive_tick)
            self._keepalive_tick = None

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's bookkeeping, then break the one reference cycle a closed connection
        leaves: websockets' parser generator holds its protocol (and the protocol the
        generator). Closed, it releases its frame, and the connection's objects are
        freed by reference counting at once instead of waiting, promoted to the oldest
        generation, for the next full collection to find them (and to finalize three
        generators each). Nothing parses after the connection is lost."""
        super().connection_lost(exc)
        self.conn.parser.close()


# The uvicorn methods LeanWebSocketProtocol overrides or calls: uvicorn's sans-I/O
# protocol is internal API (keep-alive hooks since 0.4x; the service extra asks for
# >= 0.52.1, whose flow-control and closing-handshake fixes the viewers rely on).
_UVICORN_HOOKS = (
    "start_keepalive",
    "stop_keepalive",
    "schedule_ping",
    "send_keepalive_ping",
    "handle_pong",
    "keepalive_timeout",
    "connection_lost",
)


def viewer_ws_protocol(
    base: type = WebSocketsSansIOProtocol,
) -> type[WebSocketsSansIOProtocol] | str:
    """:class:`LeanWebSocketProtocol` when uvicorn's protocol has every hook it builds
    on, else uvicorn's own ``"websockets-sansio"`` (a logged warning: viewers then cost
    more memory and longer GC passes, but work), so an unknown uvicorn release degrades
    instead of failing at the first ping.

    Example::

        >>> viewer_ws_protocol() is LeanWebSocketProtocol
        True
        >>> viewer_ws_protocol(object)
        'websockets-sansio'
    """
    missing = [hook for hook in _UVICORN_HOOKS if not callable(getattr(base, hook, None))]
    if not missing:
        return LeanWebSocketProtocol
    log.warning(
        "uvicorn's websockets-sansio protocol lacks %s: running it unmodified",
        ", ".join(missing),
    )
    return "websockets-sansio"
