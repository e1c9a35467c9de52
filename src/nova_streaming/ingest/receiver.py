"""The RTMP ingest receiver: an asyncio server feeding a sans-IO session per peer.

nginx-rtmp ``push``es every published stream here. The receiver parses (never
decodes, never copies) the RTMP, measures each stream and reports to an :class:`IngestSink`:
publish start and stop, metadata, every video frame's lag, bitrate at most once a
second, and counted errors (``protocol_error``, ``rtmp_connection_failed``,
``timeout``, ``frame_drop``). A peer outside the trusted networks is closed at once and
reported to ``on_untrusted`` only (never as a broadcast error: anyone on the network
could otherwise move the error rate); a malformed or silent peer costs only its own
connection, and a peer that never sends a byte (a port scan, a TCP probe) counts
nothing.

Cost per stream: nginx writes about one segment per RTMP chunk (one to three chunks
per read), so the cost is per read and per chunk. On asyncio's own loops every
connection reads straight into one buffer the receiver shares
(``asyncio.BufferedProtocol``; :data:`READ_BUFFER_SIZE`): their plain protocol path
allocates a new 256 KiB ``bytes`` per read. uvloop reads into its own
buffer in C and hands over bytes of the size read, cheaper than a Python ``get_buffer``
call per read, so there the plain protocol is used. Either way the sans-IO session
parses the headers in place and hands media over as the chunk reader's records
(``RtmpServerSession.feed``: no event object per message); the work per read is
batched (one clock read, one bitrate sample and at most one bitrate report per read,
whatever the number of messages), and only video frames reach the sink one by one.

Example::

    receiver = IngestReceiver(sink, port=1936, trusted=TrustedPeers.parse("127.0.0.1/32"))
    await receiver.start()
    ...
    await receiver.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from enum import Enum, StrEnum
from typing import NamedTuple, Protocol, cast

from nova_streaming.ingest.chunks import MSG_VIDEO
from nova_streaming.ingest.errors import (
    CONNECTION_FAILED,
    FRAME_DROP,
    PROTOCOL_ERROR,
    TIMEOUT,
    RtmpProtocolError,
)
from nova_streaming.ingest.frames import QUALITY_UNKNOWN, StreamStats, quality_for_height
from nova_streaming.ingest.limits import IngestLimits
from nova_streaming.ingest.peers import DEFAULT_TRUSTED_PEERS, TrustedPeers
from nova_streaming.ingest.publish_auth import canonical_stream_id
from nova_streaming.ingest.session import (
    FeedItem,
    MetadataReceived,
    PublishRequested,
    RtmpServerSession,
    UnpublishRequested,
    classify_video,
)

log = logging.getLogger(__name__)

DEFAULT_INGEST_PORT = 1936
DEFAULT_INGEST_TIMEOUT = 10.0
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
_new_tuple = tuple.__new__
#: The read buffer all connections of a receiver share: a busy loop drains each socket
#: in one read (fewer reads, each parsed in place).
READ_BUFFER_SIZE = 256 * 1024


class StopReason(StrEnum):
    """Why a publish session ended, as the receiver saw it.

    ``CLOSED`` is a TCP close (the broadcaster stopped *or* the relay was cut: only
    nginx's on_publish_done tells them apart); ``UNPUBLISHED`` an explicit
    FCUnpublish/deleteStream; ``TIMEOUT`` no media for ``ingest_timeout`` (counted);
    ``PROTOCOL_ERROR`` a malformed message (counted); ``SERVER_STOPPED`` our shutdown;
    ``REFUSED`` the sink refused the publish after the start (:meth:`IngestReceiver.refuse`).

    Example::

        >>> StopReason.TIMEOUT.value
        'timeout'
    """

    CLOSED = "closed"
    UNPUBLISHED = "unpublished"
    TIMEOUT = "timeout"
    PROTOCOL_ERROR = "protocol_error"
    SERVER_STOPPED = "server_stopped"
    REFUSED = "refused"


class IngestSession:
    """One publish as the sink sees it (attributes are read-only to the sink).

    ``stream_name`` is what the peer published, ``stream_id`` its UUID (rendition
    suffix stripped), ``quality`` the rendition suffix's quality, else the one
    onMetaData's height gives, else ``unknown``. Counters: ``frames`` (video frames),
    ``dropped_frames``, ``discontinuities``, ``media_bytes``.

    Example::

        >>> s = IngestSession(1, "127.0.0.1", 50000, "live", "x_720p", "x", "720p", 0.0)
        >>> s.quality
        '720p'
    """

    __slots__ = (
        "_stats",
        "app",
        "connection_id",
        "discontinuities",
        "dropped_frames",
        "frames",
        "last_media",
        "media_bytes",
        "metadata",
        "peer_host",
        "peer_port",
        "quality",
        "rendition",
        "started_at",
        "started_monotonic",
        "stream_id",
        "stream_name",
    )

    def __init__(
        self,
        connection_id: int,
        peer_host: str,
        peer_port: int,
        app: str,
        stream_name: str,
        stream_id: str,
        rendition: str | None,
        now: float,
    ) -> None:
        self.connection_id = connection_id
        self.peer_host = peer_host
        self.peer_port = peer_port
        self.app = app
        self.stream_name = stream_name
        self.stream_id = stream_id
        self.rendition = rendition
        self.quality = rendition or QUALITY_UNKNOWN
        self.metadata: dict[str, object] = {}
        self.started_at = time.time()
        self.started_monotonic = now
        self.last_media = now
        self.frames = 0
        self.dropped_frames = 0
        self.discontinuities = 0
        self.media_bytes = 0
        self._stats = StreamStats()

    def __repr__(self) -> str:
        return (
            f"IngestSession(#{self.connection_id} {self.stream_id} {self.quality} "
            f"from {self.peer_host}:{self.peer_port})"
        )


class VideoFrame(NamedTuple):
    """One video frame's measurements, reported to the sink.

    ``timestamp_ms`` is the unwrapped media time; ``lag_seconds`` the frame's delay
    beyond the best path seen in the session (>= 0); ``quality`` the session's
    quality when the frame arrived; ``discontinuity`` True when the timestamp went
    backwards or jumped forward by more than 10 s (the lag baseline restarted here).
    A named tuple: one is built per frame.

    Example::

        >>> VideoFrame(timestamp_ms=0, lag_seconds=0.0, quality="720p", keyframe=True,
        ...            size=9000).quality
        '720p'
    """

    timestamp_ms: int
    lag_seconds: float
    quality: str
    keyframe: bool
    size: int
    discontinuity: bool = False


class IngestSink(Protocol):
    """Where the receiver reports; phase 2 maps it to the stream registry and metrics.

    All methods are called synchronously on the event loop (keep them quick; schedule
    slow work). An exception raised by a sink method is logged and otherwise ignored.
    ``on_publish_start`` may return ``False`` to refuse the publish: the receiver then
    answers NetStream.Publish.BadName and closes, and no stop is reported.
    ``on_error`` is the only place errors are counted: ``count`` occurrences of
    ``error_type`` (``session`` is ``None`` when no publish had started).

    Example::

        class Recorder:
            def on_publish_start(self, session): ...
            def on_metadata(self, session, metadata): ...
            def on_video_frame(self, session, frame): ...
            def on_bitrate(self, session, quality, kbps): ...
            def on_publish_stop(self, session, reason): ...
            def on_error(self, session, error_type, count, detail): ...
    """

    def on_publish_start(self, session: IngestSession) -> bool | None:
        """A stream started publishing on this receiver."""

    def on_metadata(self, session: IngestSession, metadata: Mapping[str, object]) -> None:
        """onMetaData arrived (``session.quality`` is already updated from it)."""

    def on_video_frame(self, session: IngestSession, frame: VideoFrame) -> None:
        """A video frame arrived (not sent for codec configuration messages)."""

    def on_bitrate(self, session: IngestSession, quality: str, kbps: float) -> None:
        """The stream's audio+video bitrate over the last 5 s, at most once a second."""

    def on_publish_stop(self, session: IngestSession, reason: StopReason) -> None:
        """The publish ended on this receiver (exactly once per started publish)."""

    def on_error(
        self, session: IngestSession | None, error_type: str, count: int, detail: str
    ) -> None:
        """Count ``count`` broadcast errors of ``error_type``."""


class _Phase(Enum):
    HANDSHAKE = 0
    SETUP = 1
    PUBLISHING = 2
    CLOSED = 3


# The phases as plain module globals for the per-read checks: an Enum member read
# through its class costs about 0.1 us on CPython 3.11, twice per read.
_HANDSHAKE = _Phase.HANDSHAKE
_PUBLISHING = _Phase.PUBLISHING
_CLOSED = _Phase.CLOSED


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_closing",
        "connected_at",
        "id",
        "peer_host",
        "peer_port",
        "phase",
        "received",
        "receiver",
        "rtmp",
        "session",
        "transport",
    )

    def __init__(self, receiver: IngestReceiver, connection_id: int) -> None:
        self.receiver = receiver
        self.id = connection_id
        self.rtmp = RtmpServerSession(receiver.limits)
        self.transport: asyncio.Transport | None = None
        self.session: IngestSession | None = None
        self.phase = _Phase.HANDSHAKE
        self.peer_host = ""
        self.peer_port = 0
        self.connected_at = receiver.clock()
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's is not a subclass of asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer_host, self.peer_port = str(peer[0]), int(peer[1])
        if not self.receiver.trusted.allows(self.peer_host):
            self.phase = _Phase.CLOSED
            transport.abort()
            self.receiver.report_untrusted(self.peer_host)
            return
        self.receiver.connections[self.id] = self

    def data_received(self, data: bytes) -> None:
        if self.phase is _CLOSED:
            return
        self.received += len(data)
        rtmp = self.rtmp
        try:
            events = rtmp.feed(data)
        except RtmpProtocolError as exc:
            self.fail(exc.error_type, str(exc), StopReason.PROTOCOL_ERROR)
            return
        # _after_read inlined: this runs once per read on uvloop, the hot path.
        if rtmp.has_data_to_send() and not self.write(rtmp.data_to_send()):
            return
        if self.phase is _HANDSHAKE and rtmp.handshake_done:
            self.phase = _Phase.SETUP
        if events:
            self.receiver.handle_events(self, events)

    def _after_read(self, events: Sequence[FeedItem]) -> None:
        rtmp = self.rtmp
        if rtmp.has_data_to_send() and not self.write(rtmp.data_to_send()):
            return
        if self.phase is _HANDSHAKE and rtmp.handshake_done:
            self.phase = _Phase.SETUP
        if events:
            self.receiver.handle_events(self, events)

    def write(self, out: bytes) -> bool:
        """Send replies; False (connection failed) when the peer leaves more than
        ``max_pending_output`` unread: the transport would otherwise buffer without
        bound for a peer that keeps sending pings but never reads the answers."""
        transport = self.transport
        if not out or transport is None:
            return True
        transport.write(out)
        pending = transport.get_write_buffer_size()
        if pending > self.receiver.limits.max_pending_output:
            self.fail(
                PROTOCOL_ERROR,
                f"peer does not read its replies ({pending} bytes pending)",
                StopReason.PROTOCOL_ERROR,
            )
            return False
        return True

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        receiver = self.receiver
        receiver.connections.pop(self.id, None)
        phase, self.phase = self.phase, _Phase.CLOSED
        if phase is _Phase.PUBLISHING and self.session is not None:
            receiver.stop_session(self, StopReason.CLOSED)
        elif phase in (_Phase.HANDSHAKE, _Phase.SETUP) and self.received:
            # A silent TCP probe (connect, close) is not a failure; a peer that
            # started talking RTMP and vanished before publishing is.
            receiver.report_error(
                None, CONNECTION_FAILED, 1, f"peer {self.peer_host} closed before publishing"
            )

    def fail(self, error_type: str, detail: str, reason: StopReason) -> None:
        """Count the error, end the publish if any, drop the connection."""
        if self.phase is _Phase.CLOSED:
            return
        log.info("ingest: closing %s:%s: %s", self.peer_host, self.peer_port, detail)
        self.receiver.report_error(self.session, error_type, 1, detail)
        if self.phase is _Phase.PUBLISHING and self.session is not None:
            self.receiver.stop_session(self, reason)
        self.close()

    def close(self) -> None:
        self.phase = _Phase.CLOSED
        self.receiver.connections.pop(self.id, None)
        if self.transport is not None:
            self.transport.abort()


class _BufferedConnection(_Connection, asyncio.BufferedProtocol):
    """A connection reading into the receiver's shared buffer (asyncio's own loops)."""

    __slots__ = ()

    def get_buffer(self, sizehint: int) -> memoryview:
        # Safe to share: the loop calls buffer_updated before any other get_buffer.
        return self.rtmp.get_buffer(self.receiver.read_buffer)

    def buffer_updated(self, nbytes: int) -> None:
        if self.phase is _CLOSED:
            return
        self.received += nbytes
        try:
            events = self.rtmp.feed_buffered(nbytes)
        except RtmpProtocolError as exc:
            self.fail(exc.error_type, str(exc), StopReason.PROTOCOL_ERROR)
            return
        self._after_read(events)


class IngestReceiver:
    """The asyncio RTMP server; see the module docstring.

    ``port=0`` binds a free port (read it back from ``port`` after ``start``).
    ``ingest_timeout``: seconds without media before a publishing session ends
    (counted ``timeout``). ``handshake_timeout``: seconds a connection may take from
    accept to ``publish`` (counted ``rtmp_connection_failed`` once the peer sent
    something; a peer silent all along is closed uncounted). ``on_untrusted(host)``
    is called for each connection refused because its address is not trusted.
    ``clock`` is the monotonic time source (seconds).

    Example::

        receiver = IngestReceiver(sink, host="127.0.0.1", port=0)
        await receiver.start(); print(receiver.port); await receiver.stop()
    """

    def __init__(
        self,
        sink: IngestSink,
        *,
        host: str | list[str] = "0.0.0.0",
        port: int = DEFAULT_INGEST_PORT,
        trusted: TrustedPeers | None = None,
        ingest_timeout: float = DEFAULT_INGEST_TIMEOUT,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        limits: IngestLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_untrusted: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"ingest receiver: port {port} outside 0..65535")
        if not ingest_timeout > 0 or not handshake_timeout > 0:
            raise ValueError("ingest receiver: timeouts must be positive")
        self.sink = sink
        self.host = host
        self._port = port
        self.trusted = trusted or TrustedPeers.parse(DEFAULT_TRUSTED_PEERS)
        self.ingest_timeout = float(ingest_timeout)
        self.handshake_timeout = float(handshake_timeout)
        self.limits = limits or IngestLimits()
        self.clock = clock
        self.on_untrusted = on_untrusted
        self.read_buffer = bytearray(READ_BUFFER_SIZE)
        self.connections: dict[int, _Connection] = {}
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one until ``start``)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def sessions(self) -> list[IngestSession]:
        """Sessions currently publishing."""
        return [
            c.session
            for c in self.connections.values()
            if c.phase is _Phase.PUBLISHING and c.session is not None
        ]

    async def start(self) -> None:
        """Bind and start serving; raises ``OSError`` if the port is taken."""
        if self._server is not None:
            raise RuntimeError("ingest receiver: already started")
        loop = asyncio.get_running_loop()
        # asyncio's own loops (BaseEventLoop) get the shared buffer; uvloop the plain path.
        kind = _BufferedConnection if isinstance(loop, asyncio.BaseEventLoop) else _Connection
        self._server = await loop.create_server(
            lambda: kind(self, next(self._ids)), self.host, self._port
        )
        self._sweeper = asyncio.create_task(self._sweep(), name="ingest-timeouts")
        log.info("ingest: RTMP receiver listening on port %d", self.port)

    async def stop(self) -> None:
        """Stop accepting, end every session (``SERVER_STOPPED``) and close them."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            if conn.phase is _Phase.PUBLISHING and conn.session is not None:
                self.stop_session(conn, StopReason.SERVER_STOPPED)
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> IngestReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def refuse(self, session: IngestSession, detail: str = "publish refused") -> bool:
        """Refuse a publish the sink accepted provisionally (e.g. after an asynchronous
        authorization check): answer NetStream.Publish.BadName, report the stop as
        ``REFUSED`` and close the connection. False if the session is no longer live.
        Nothing is counted here; the sink counts what it refuses.

        Example::

            receiver.refuse(session, "not authorized")
        """
        conn = self.connections.get(session.connection_id)
        if conn is None or conn.session is not session or conn.phase is not _Phase.PUBLISHING:
            return False
        conn.rtmp.reject_publish(detail)
        self._flush(conn)
        self.stop_session(conn, StopReason.REFUSED)
        conn.close()
        return True

    # --- called by connections ---

    def report_error(
        self, session: IngestSession | None, error_type: str, count: int, detail: str
    ) -> None:
        try:
            self.sink.on_error(session, error_type, count, detail)
        except Exception:
            log.exception("ingest: sink.on_error failed")

    def report_untrusted(self, host: str) -> None:
        log.debug("ingest: refused connection from untrusted %s", host)
        if self.on_untrusted is not None:
            try:
                self.on_untrusted(host)
            except Exception:
                log.exception("ingest: on_untrusted failed")

    def stop_session(self, conn: _Connection, reason: StopReason) -> None:
        session = conn.session
        if session is None:
            return
        conn.session = None
        try:
            self.sink.on_publish_stop(session, reason)
        except Exception:
            log.exception("ingest: sink.on_publish_stop failed")

    def handle_events(self, conn: _Connection, events: Sequence[FeedItem]) -> None:
        now = self.clock()
        # Media of one read is accounted once (bytes, last media time, bitrate); the
        # pending batch is settled before any other event, so each event still sees
        # the session as the messages before it left it. Media come as the reader's
        # raw records (RtmpServerSession.feed): no event object per message.
        batch = 0
        batch_bytes = 0
        for event in events:
            if conn.phase is _CLOSED:
                break
            session = conn.session
            if type(event) is tuple:
                if session is None:
                    continue
                batch += 1
                batch_bytes += event[4]
                if event[1] == MSG_VIDEO:
                    is_frame, keyframe = classify_video(event[5])
                    if is_frame:
                        self._video_frame(session, event[3], event[4], keyframe, now)
                continue
            if batch and session is not None:
                self._media_batch(session, batch_bytes, now)
                batch = batch_bytes = 0
            if isinstance(event, MetadataReceived):
                if session is None:
                    continue
                self._metadata(session, event)
            elif isinstance(event, PublishRequested):
                self._publish(conn, event, now)
            elif isinstance(event, UnpublishRequested):
                self.stop_session(conn, StopReason.UNPUBLISHED)
                conn.close()
        if batch and conn.session is not None and conn.phase is _PUBLISHING:
            self._media_batch(conn.session, batch_bytes, now)

    def _publish(self, conn: _Connection, event: PublishRequested, now: float) -> None:
        parsed = canonical_stream_id(event.name)
        if parsed is None:
            conn.rtmp.reject_publish("stream name is not a UUID")
            self._flush(conn)
            conn.fail(
                PROTOCOL_ERROR,
                f"published name {event.name[:80]!r} is not a UUID",
                StopReason.PROTOCOL_ERROR,
            )
            return
        stream_id, rendition = parsed
        session = IngestSession(
            conn.id,
            conn.peer_host,
            conn.peer_port,
            event.app,
            event.name,
            stream_id,
            rendition,
            now,
        )
        try:
            accepted = self.sink.on_publish_start(session)
        except Exception:
            log.exception("ingest: sink.on_publish_start failed")
            accepted = None
        if accepted is False:
            conn.rtmp.reject_publish("publish refused")
            self._flush(conn)
            conn.close()
            return
        conn.session = session
        conn.phase = _Phase.PUBLISHING

    @staticmethod
    def _flush(conn: _Connection) -> None:
        conn.write(conn.rtmp.data_to_send())

    def _metadata(self, session: IngestSession, event: MetadataReceived) -> None:
        values: dict[str, object] = dict(event.values)
        session.metadata = values
        session._stats.set_framerate(values.get("framerate", values.get("fps")))
        if session.rendition is None:
            session.quality = quality_for_height(values.get("height"), values.get("width"))
        try:
            self.sink.on_metadata(session, values)
        except Exception:
            log.exception("ingest: sink.on_metadata failed")

    def _video_frame(
        self, session: IngestSession, timestamp: int, size: int, keyframe: bool, now: float
    ) -> None:
        timestamp_ms, lag, dropped, discontinuity = session._stats.video(now, timestamp)
        session.frames += 1
        if discontinuity:
            session.discontinuities += 1
            log.debug(
                "ingest: %s: video timestamp discontinuity at %d ms",
                session.stream_name[:80],
                timestamp_ms,
            )
        elif dropped:
            session.dropped_frames += dropped
            self.report_error(
                session,
                FRAME_DROP,
                dropped,
                f"video timestamp gap before {timestamp_ms} ms",
            )
        # tuple.__new__: the named tuple minus its Python-level __new__ (per frame).
        frame = _new_tuple(
            VideoFrame, (timestamp_ms, lag, session.quality, keyframe, size, discontinuity)
        )
        try:
            self.sink.on_video_frame(session, frame)
        except Exception:
            log.exception("ingest: sink.on_video_frame failed")

    def _media_batch(self, session: IngestSession, size: int, now: float) -> None:
        """Account the audio and video messages of one read (``size`` bytes in all)."""
        session.last_media = now
        session.media_bytes += size
        bitrate = session._stats.bitrate
        bitrate.add(now, size)
        kbps = bitrate.due(now)
        if kbps is not None:
            try:
                self.sink.on_bitrate(session, session.quality, kbps)
            except Exception:
                log.exception("ingest: sink.on_bitrate failed")

    async def _sweep(self) -> None:
        interval = min(1.0, self.ingest_timeout / 4, self.handshake_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = self.clock()
            for conn in list(self.connections.values()):
                try:
                    self._check(conn, now)
                except Exception:
                    log.exception("ingest: timeout check failed")

    def _check(self, conn: _Connection, now: float) -> None:
        if conn.phase is _Phase.PUBLISHING and conn.session is not None:
            idle = now - conn.session.last_media
            if idle >= self.ingest_timeout:
                conn.fail(TIMEOUT, f"no media for {idle:.1f} s", StopReason.TIMEOUT)
        elif (
            conn.phase in (_Phase.HANDSHAKE, _Phase.SETUP)
            and now - conn.connected_at >= self.handshake_timeout
        ):
            if not conn.received:
                # Never sent a byte: a probe held open, like a connect-and-close probe
                # (not counted either); no broadcaster is behind it.
                log.info("ingest: closing silent peer %s:%s", conn.peer_host, conn.peer_port)
                conn.close()
                return
            stage = "handshake" if conn.phase is _Phase.HANDSHAKE else "publish"
            conn.fail(
                CONNECTION_FAILED,
                f"no {stage} within {self.handshake_timeout:.1f} s",
                StopReason.PROTOCOL_ERROR,
            )
