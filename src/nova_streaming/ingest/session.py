"""One RTMP publishing connection as a sans-IO state machine: bytes in, events out.

:class:`RtmpServerSession` runs the handshake, the chunk stream and the commands a
publisher (nginx-rtmp's ``push``, ffmpeg, OBS) sends: ``connect`` is answered with
``_result`` (NetConnection.Connect.Success), ``createStream`` with ``_result`` and
stream id 1, ``publish`` with ``onStatus`` NetStream.Publish.Start; releaseStream,
FCPublish, FCUnpublish, deleteStream and unknown commands are tolerated. Both
``@setDataFrame onMetaData`` and plain ``onMetaData`` yield metadata. Acknowledgements
are sent whenever the peer's window is used up, and pings are answered.

Anything malformed raises :class:`~nova_streaming.ingest.errors.RtmpProtocolError`;
the caller closes the connection. Replies accumulate until ``data_to_send()``.

Input comes as bytes (``receive``) or, with no copy, read straight into a buffer
(``get_buffer`` / ``buffer_updated``, for ``asyncio.BufferedProtocol``). Media messages
become one small :class:`MediaReceived` tuple each; their payloads are never copied.
``feed`` / ``feed_buffered`` are the receiver's variants: media stay the chunk reader's
record tuples (no event object per message), the other events are the same.

Example::

    >>> session = RtmpServerSession()
    >>> session.receive(b"\\x03" + bytes(1536))
    []
    >>> len(session.data_to_send())
    3073
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

from nova_streaming.ingest import amf0
from nova_streaming.ingest.chunks import (
    MSG_ACK,
    MSG_AUDIO,
    MSG_COMMAND_AMF0,
    MSG_COMMAND_AMF3,
    MSG_DATA_AMF0,
    MSG_DATA_AMF3,
    MSG_SET_PEER_BANDWIDTH,
    MSG_USER_CONTROL,
    MSG_VIDEO,
    MSG_WINDOW_ACK_SIZE,
    ChunkReader,
    ChunkWriter,
    Message,
    Record,
    control_message,
)
from nova_streaming.ingest.errors import RtmpProtocolError
from nova_streaming.ingest.handshake import ServerHandshake
from nova_streaming.ingest.limits import IngestLimits

#: The message stream id handed out by createStream.
PUBLISH_STREAM_ID = 1
#: Our acknowledgement window announced to the peer (what nginx announces too).
SERVER_WINDOW = 5_000_000
_CSID_COMMAND = 3
_USER_PING_REQUEST = 6
_USER_PING_RESPONSE = 7
_MAX_NAME_LENGTH = 256
_U32 = struct.Struct(">I")
_new_tuple = tuple.__new__
_MEDIA = (MSG_AUDIO, MSG_VIDEO)


@dataclass(frozen=True, slots=True)
class PublishRequested:
    """The peer sent ``publish``: ``name`` is the stream name, ``app`` from connect.

    Example::

        >>> PublishRequested(name="abc", app="live", publish_type="live").name
        'abc'
    """

    name: str
    app: str
    publish_type: str


@dataclass(frozen=True, slots=True)
class MetadataReceived:
    """An ``onMetaData`` object (width, height, framerate, videodatarate, ...).

    Example::

        >>> MetadataReceived({"height": 720.0}).values["height"]
        720.0
    """

    values: dict[str, amf0.AmfValue]


class MediaReceived(NamedTuple):
    """One audio or video message: its 32-bit timestamp, size and what it carries.

    ``is_frame`` is false for codec configuration (sequence headers, end of
    sequence) and command frames; only frames count for lag and drops. A named tuple:
    one is built per media message, so it must be cheap.

    Example::

        >>> MediaReceived(video=True, timestamp=40, size=1200, is_frame=True, keyframe=False).size
        1200
    """

    video: bool
    timestamp: int
    size: int
    is_frame: bool
    keyframe: bool


@dataclass(frozen=True, slots=True)
class UnpublishRequested:
    """The peer ended its publish with FCUnpublish, deleteStream or closeStream.

    Example::

        >>> UnpublishRequested(command="deleteStream").command
        'deleteStream'
    """

    command: str


SessionEvent: TypeAlias = PublishRequested | MetadataReceived | MediaReceived | UnpublishRequested
#: What :meth:`RtmpServerSession.feed` returns: the events other than media, and media
#: messages as raw records (``type(item) is tuple`` tells them apart, and narrows).
FeedItem: TypeAlias = PublishRequested | MetadataReceived | UnpublishRequested | Record


def classify_video(head: bytes) -> tuple[bool, bool]:
    """``(is_frame, keyframe)`` from an FLV video tag header (legacy or enhanced RTMP).

    Example::

        >>> classify_video(bytes([0x17, 0x01])), classify_video(bytes([0x17, 0x00]))
        ((True, True), (False, True))
    """
    if not head:
        return False, False
    first = head[0]
    frame_type = (first >> 4) & 0x07
    keyframe = frame_type == 1
    if frame_type == 5:  # video info / command frame, no picture
        return False, keyframe
    if first & 0x80:  # enhanced RTMP: packet type in the low nibble
        return (first & 0x0F) in (1, 3), keyframe
    codec = first & 0x0F
    if codec in (7, 12, 13):  # AVC, HEVC, AV1 (legacy ids): byte 1 is the packet type
        return len(head) > 1 and head[1] == 1, keyframe
    return True, keyframe


def audio_is_frame(head: bytes) -> bool:
    """False for an AAC sequence header (sound format 10, packet type 0), else True
    (an empty head is no frame).

    Example::

        >>> audio_is_frame(bytes([0xAF, 0x00])), audio_is_frame(bytes([0xAF, 0x01]))
        (False, True)
    """
    return bool(head) and not ((head[0] >> 4) == 10 and len(head) > 1 and head[1] == 0)


class RtmpServerSession:
    """Server side of one RTMP publishing connection.

    ``receive(data)`` returns the events the bytes completed; ``data_to_send()``
    returns (and clears) the replies. ``publishing`` is true after ``publish``.

    Example::

        >>> RtmpServerSession().publishing
        False
    """

    __slots__ = (
        "_ack_window",
        "_acked",
        "_app",
        "_connected",
        "_handshake",
        "_handshake_buffer",
        "_limits",
        "_out",
        "_reader",
        "_writer",
        "publishing",
        "stream_name",
    )

    def __init__(self, limits: IngestLimits | None = None) -> None:
        self._limits = limits or IngestLimits()
        self._handshake: ServerHandshake | None = ServerHandshake()
        self._handshake_buffer: bytearray | None = None
        self._reader = ChunkReader(self._limits)
        self._writer = ChunkWriter()
        self._out = bytearray()
        self._ack_window = 0
        self._acked = 0
        self._app = ""
        self._connected = False
        self.publishing = False
        self.stream_name: str | None = None

    @property
    def handshake_done(self) -> bool:
        """True once C2 has been received."""
        return self._handshake is None

    @property
    def buffered(self) -> int:
        """Bytes of peer input held (handshake or chunk buffers)."""
        if self._handshake is not None:
            return self._handshake.buffered
        return self._reader.buffered

    def has_data_to_send(self) -> bool:
        """True when replies are waiting for :meth:`data_to_send`."""
        return bool(self._out)

    def data_to_send(self) -> bytes:
        """Replies produced so far (and forget them)."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def receive(self, data: bytes | bytearray | memoryview) -> list[SessionEvent]:
        """Consume peer bytes; raise ``RtmpProtocolError`` on anything malformed."""
        return self._media_events(self.feed(data))

    def feed(self, data: bytes | bytearray | memoryview) -> Sequence[FeedItem]:
        """Like :meth:`receive`, but each audio/video message (while publishing) stays
        the reader's plain :data:`~nova_streaming.ingest.chunks.Record` tuple: ``[1]``
        the type id (8 audio, 9 video), ``[3]`` the timestamp, ``[4]`` the size, ``[5]``
        the FLV tag head (:func:`classify_video` it). The receiver's path: no event
        object per media message. Tell records from events with ``type(x) is tuple``."""
        if self._handshake is not None:
            reply, rest = self._handshake.receive(bytes(data))
            self._out += reply
            if not self._handshake.done:
                return []
            self._handshake = None
            if not rest:
                return []
            data = rest
        return self._dispatch(self._reader.records(data))

    def get_buffer(self, scratch: bytearray) -> memoryview:
        """Where the next read should go (``asyncio.BufferedProtocol.get_buffer``):
        ``scratch`` is the caller's buffer, which may be shared by many sessions as
        long as each ``get_buffer`` is followed by its :meth:`buffer_updated` before
        the next session's. After the handshake the bytes are parsed where they land."""
        if self._handshake is None:
            return self._reader.get_buffer(scratch)
        self._handshake_buffer = scratch
        return memoryview(scratch)

    def buffer_updated(self, nbytes: int) -> list[SessionEvent]:
        """``nbytes`` were read into the last :meth:`get_buffer`; like :meth:`receive`."""
        return self._media_events(self.feed_buffered(nbytes))

    def feed_buffered(self, nbytes: int) -> Sequence[FeedItem]:
        """Like :meth:`buffer_updated`, with media left as records (see :meth:`feed`)."""
        scratch = self._handshake_buffer
        if scratch is not None:
            self._handshake_buffer = None
            return self.feed(scratch[:nbytes])
        return self._dispatch(self._reader.buffer_updated(nbytes))

    @staticmethod
    def _media_events(items: Sequence[FeedItem]) -> list[SessionEvent]:
        events: list[SessionEvent] = []
        media = _new_tuple  # MediaReceived(...) minus a Python frame per message
        for item in items:
            if not isinstance(item, tuple):
                events.append(item)
                continue
            record = item
            if record[1] == MSG_VIDEO:
                is_frame, keyframe = classify_video(record[5])
                events.append(
                    media(MediaReceived, (True, record[3], record[4], is_frame, keyframe))
                )
            else:
                is_frame = audio_is_frame(record[5])
                events.append(media(MediaReceived, (False, record[3], record[4], is_frame, False)))
        return events

    def _dispatch(self, records: list[Record]) -> Sequence[FeedItem]:
        # While publishing a read is almost always media only (or no whole message):
        # then the reader's list is handed over as it is, no second list.
        items: Sequence[FeedItem] = records
        if self.publishing:
            for record in records:
                if record[1] not in _MEDIA:
                    items = self._sort(records)
                    break
        elif records:
            items = self._sort(records)
        if self._ack_window:
            received = self._reader.bytes_received
            if received - self._acked >= self._ack_window:
                self._acked = received
                self._out += control_message(MSG_ACK, received)
        return items

    def _sort(self, records: list[Record]) -> list[FeedItem]:
        """Media records (while publishing) as they are, the rest handled in order."""
        items: list[FeedItem] = []
        publishing = self.publishing  # changes only in _control
        for record in records:
            if record[1] in _MEDIA:
                if publishing:
                    items.append(record)
            else:
                self._control(Message._make(record), items)
                publishing = self.publishing
        return items

    def _control(self, msg: Message, events: list[FeedItem]) -> None:
        type_id = msg.type_id
        if type_id in (MSG_COMMAND_AMF0, MSG_COMMAND_AMF3):
            self._command(msg, events)
        elif type_id in (MSG_DATA_AMF0, MSG_DATA_AMF3):
            self._data(msg, events)
        elif type_id == MSG_WINDOW_ACK_SIZE:
            if len(msg.payload) >= 4:
                self._ack_window = _U32.unpack_from(msg.payload)[0]
        elif type_id == MSG_USER_CONTROL:
            self._user_control(msg)
        # Ack, SetPeerBandwidth, aggregate and unknown types need no answer.

    def _decode(self, msg: Message) -> list[amf0.AmfValue]:
        payload = msg.payload
        # AMF3-typed messages start with a format byte and then carry AMF0 values.
        if msg.type_id in (MSG_COMMAND_AMF3, MSG_DATA_AMF3) and payload[:1] == b"\x00":
            payload = payload[1:]
        return amf0.decode(payload, max_depth=self._limits.max_amf_depth)

    def _send_command(self, stream_id: int, *values: amf0.Encodable) -> None:
        body = amf0.encode(*values)
        self._out += self._writer.message(_CSID_COMMAND, MSG_COMMAND_AMF0, stream_id, 0, body)
        if len(self._out) > self._limits.max_pending_output:
            raise RtmpProtocolError("session: peer does not read its replies")

    def _command(self, msg: Message, events: list[FeedItem]) -> None:
        values = self._decode(msg)
        if not values or not isinstance(values[0], str):
            raise RtmpProtocolError("session: command message without a command name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        if name == "connect":
            if self._connected:
                raise RtmpProtocolError("session: second connect on one connection")
            params = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
            app = params.get("app")
            self._app = app[:_MAX_NAME_LENGTH] if isinstance(app, str) else ""
            self._connected = True
            self._out += control_message(MSG_WINDOW_ACK_SIZE, SERVER_WINDOW)
            self._out += self._writer.message(
                2, MSG_SET_PEER_BANDWIDTH, 0, 0, _U32.pack(SERVER_WINDOW) + b"\x02"
            )
            self._send_command(
                0,
                "_result",
                txn,
                {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                {
                    "level": "status",
                    "code": "NetConnection.Connect.Success",
                    "description": "Connection succeeded.",
                    "objectEncoding": 0.0,
                },
            )
            return
        if not self._connected:
            raise RtmpProtocolError(f"session: {name!r} before connect")
        if name == "createStream":
            self._send_command(0, "_result", txn, None, float(PUBLISH_STREAM_ID))
        elif name == "publish":
            self._publish(msg, values, txn, events)
        elif name in ("FCUnpublish", "deleteStream", "closeStream") and self.publishing:
            self.publishing = False
            events.append(UnpublishRequested(name))
        # releaseStream, FCPublish, getStreamLength, _checkbw, ...: tolerated, unanswered.

    def _publish(
        self,
        msg: Message,
        values: list[amf0.AmfValue],
        txn: float,
        events: list[FeedItem],
    ) -> None:
        if self.publishing:
            raise RtmpProtocolError("session: second publish on one connection")
        name = values[3] if len(values) > 3 else None
        if not isinstance(name, str) or not name or len(name) > _MAX_NAME_LENGTH:
            raise RtmpProtocolError("session: publish without a valid stream name")
        # A publish URL's query may ride along in the name (ffmpeg/OBS clients).
        name = name.split("?", 1)[0]
        kind = values[4] if len(values) > 4 and isinstance(values[4], str) else "live"
        self.publishing = True
        self.stream_name = name
        self._send_command(
            msg.stream_id,
            "onStatus",
            0.0,
            None,
            {
                "level": "status",
                "code": "NetStream.Publish.Start",
                "description": f"{name} is now published.",
            },
        )
        events.append(PublishRequested(name, self._app, kind[:32]))

    def reject_publish(self, description: str) -> None:
        """Tell the peer its publish is refused (NetStream.Publish.BadName)."""
        self.publishing = False
        self._send_command(
            PUBLISH_STREAM_ID,
            "onStatus",
            0.0,
            None,
            {"level": "error", "code": "NetStream.Publish.BadName", "description": description},
        )

    def _data(self, msg: Message, events: list[FeedItem]) -> None:
        values = self._decode(msg)
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
            events.append(MetadataReceived(values[1]))

    def _user_control(self, msg: Message) -> None:
        payload = msg.payload
        if len(payload) >= 6 and (payload[0] << 8 | payload[1]) == _USER_PING_REQUEST:
            body = _USER_PING_RESPONSE.to_bytes(2, "big") + payload[2:6]
            self._out += self._writer.message(2, MSG_USER_CONTROL, 0, 0, body)
            if len(self._out) > self._limits.max_pending_output:
                raise RtmpProtocolError("session: peer does not read its replies")
