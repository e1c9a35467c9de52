"""The RTMP chunk stream, sans-IO: bytes in, whole messages out (and the reverse).

:class:`ChunkReader` reassembles messages from chunks with all four header formats
(0: full, 1: no stream id, 2: timestamp delta only, 3: nothing), extended timestamps
(also on format-3 chunks, continuation or not, as nginx and ffmpeg send them),
SetChunkSize and Abort. It works on whole chunks at a time with slicing and
``struct``, never per byte, and for audio and video it keeps only the first bytes of
the payload (the FLV tag header) and the length: ingest never decodes media, and never
copies a media payload either (a chunk's payload bytes are skipped in place).

Two ways in: :meth:`ChunkReader.feed` takes bytes and returns :class:`Message` objects;
:meth:`ChunkReader.get_buffer` / :meth:`ChunkReader.buffer_updated` let a socket read
straight into a caller's buffer (``asyncio.BufferedProtocol``) and return plain record
tuples, the receiver's path: no copy of the input and no object per message beyond one
tuple. Only the unparsed tail of a read (at most one incomplete chunk) is kept between
reads.

Timestamp semantics follow nginx-rtmp's own reader: a format-0 header sets the
absolute time and a zero delta; formats 1 and 2 add their delta; a format-3 header
that starts a message adds the previous delta again. All arithmetic is modulo 2**32.

Example::

    >>> writer = ChunkWriter()
    >>> wire = writer.message(3, MSG_COMMAND_AMF0, 0, 0, b"x" * 300)
    >>> [(m.type_id, m.length) for m in ChunkReader().feed(wire)]
    [(20, 300)]
"""

from __future__ import annotations

import struct
from typing import NamedTuple, TypeAlias

from nova_streaming.ingest.errors import RtmpProtocolError
from nova_streaming.ingest.limits import IngestLimits

MSG_SET_CHUNK_SIZE = 1
MSG_ABORT = 2
MSG_ACK = 3
MSG_USER_CONTROL = 4
MSG_WINDOW_ACK_SIZE = 5
MSG_SET_PEER_BANDWIDTH = 6
MSG_AUDIO = 8
MSG_VIDEO = 9
MSG_DATA_AMF3 = 15
MSG_COMMAND_AMF3 = 17
MSG_DATA_AMF0 = 18
MSG_COMMAND_AMF0 = 20
MSG_AGGREGATE = 22

COMMAND_TYPES = frozenset((MSG_DATA_AMF3, MSG_COMMAND_AMF3, MSG_DATA_AMF0, MSG_COMMAND_AMF0))
MEDIA_TYPES = frozenset((MSG_AUDIO, MSG_VIDEO))

DEFAULT_CHUNK_SIZE = 128
#: Bytes of an audio/video payload kept: enough for the FLV tag header of any codec.
MEDIA_HEAD_SIZE = 8
#: Room left for a socket read after the unparsed tail of the previous one.
MIN_READ_SIZE = 64 * 1024
_EXTENDED = 0xFFFFFF
_MASK32 = 0xFFFFFFFF

_U32 = struct.Struct(">I")
_U32LE = struct.Struct("<I")
# Timestamp (or delta) and length as 8+16 bits each, then the type id: a format 0 or 1
# header's first 7 bytes in one call.
_FMT1 = struct.Struct(">BHBHB").unpack_from


class Message(NamedTuple):
    """One reassembled RTMP message.

    ``timestamp`` is the 32-bit RTMP time in ms (not unwrapped). For audio and video
    ``payload`` holds only the first :data:`MEDIA_HEAD_SIZE` bytes; ``length`` is
    always the full length. A named tuple: built per message, it must be cheap.

    Example::

        >>> Message(3, 20, 0, 0, 3, b"abc").length
        3
    """

    csid: int
    type_id: int
    stream_id: int
    timestamp: int
    length: int
    payload: bytes


#: A message as the buffer path returns it: the fields of :class:`Message`, in order.
Record: TypeAlias = tuple[int, int, int, int, int, bytes]


class _ChunkStream:
    __slots__ = (
        "delta",
        "ext",
        "head",
        "length",
        "parts",
        "received",
        "skip_only",
        "stream_id",
        "timestamp",
        "type_id",
    )

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.ext = False
        self.received = 0
        self.parts: bytearray | None = None
        self.head = b""
        # The message in progress is media with its head bytes complete and no extended
        # timestamp: its continuation chunks are one header byte and payload to skip.
        self.skip_only = False


#: Read-only stand-in for a chunk stream not seen yet (never written to).
_NO_STREAM = _ChunkStream()


class ChunkReader:
    """Reassembles RTMP messages from a byte stream; raises ``RtmpProtocolError``.

    Memory held is bounded by the limits: the input buffer never holds more than one
    incomplete chunk (at most ``max_message_size`` plus a header) beyond one read,
    and fragmented non-media messages together never exceed ``max_buffered_bytes``.

    Example::

        >>> reader = ChunkReader(IngestLimits())
        >>> reader.chunk_size
        128
        >>> scratch = bytearray(1 << 17)
        >>> wire = ChunkWriter().message(3, MSG_COMMAND_AMF0, 0, 0, b"hi")
        >>> space = reader.get_buffer(scratch)
        >>> space[: len(wire)] = wire
        >>> reader.buffer_updated(len(wire))
        [(3, 20, 0, 0, 2, b'hi')]
    """

    __slots__ = (
        "_buffered",
        "_limits",
        "_read_into",
        "_read_start",
        "_rest",
        "_streams",
        "bytes_received",
        "chunk_size",
    )

    def __init__(self, limits: IngestLimits | None = None) -> None:
        self._limits = limits or IngestLimits()
        # The unparsed tail of the input so far: at most one incomplete chunk.
        self._rest = b""
        self._read_into: bytearray | None = None
        self._read_start = 0
        self._streams: dict[int, _ChunkStream] = {}
        self._buffered = 0
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.bytes_received = 0

    @property
    def buffered(self) -> int:
        """Bytes held: unparsed input plus fragments of unfinished non-media messages."""
        return len(self._rest) + self._buffered

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Consume bytes; return every message completed by them, in order."""
        return [Message._make(record) for record in self.records(data)]

    def records(self, data: bytes | bytearray | memoryview) -> list[Record]:
        """Like :meth:`feed`, with each message as a plain :data:`Record` tuple."""
        self.bytes_received += len(data)
        buf = self._rest + data if self._rest else data
        out: list[Record] = []
        end = len(buf)
        pos = self._parse(buf, end, out)
        self._rest = bytes(buf[pos:end]) if pos < end else b""
        return out

    def get_buffer(self, scratch: bytearray) -> memoryview:
        """Where the next read should go: ``scratch`` (any caller-owned buffer, e.g. one
        shared by every connection of a server) after a copy of the unparsed tail of
        the last read, or a private buffer when that tail leaves less than
        :data:`MIN_READ_SIZE` of room. Call :meth:`buffer_updated` with the bytes read
        before handing ``scratch`` to anyone else."""
        rest = self._rest
        start = len(rest)
        if start + MIN_READ_SIZE > len(scratch):
            scratch = bytearray(start + MIN_READ_SIZE)
        scratch[:start] = rest
        self._read_into = scratch
        self._read_start = start
        return memoryview(scratch)[start:]

    def buffer_updated(self, nbytes: int) -> list[Record]:
        """``nbytes`` were read into the last :meth:`get_buffer`: parse them in place."""
        buf = self._read_into
        if buf is None:
            raise RuntimeError("chunks: buffer_updated without get_buffer")
        self._read_into = None
        self.bytes_received += nbytes
        end = self._read_start + nbytes
        out: list[Record] = []
        pos = self._parse(buf, end, out)
        self._rest = bytes(buf[pos:end]) if pos < end else b""
        return out

    def _parse(self, buf: bytes | bytearray | memoryview, end: int, out: list[Record]) -> int:
        # The hot loop of ingest (one to three chunks per read behind nginx's push):
        # header formats in the order nginx sends them most (3, 1, 0, 2), everything
        # it touches bound to locals, and a media chunk handled without the generic
        # tail (fragments, control messages).
        streams = self._streams
        limits = self._limits
        chunk_size = self.chunk_size
        u32 = _U32.unpack_from
        pos = 0
        while pos < end:
            b0 = buf[pos]
            if b0 >= 0xC2:
                # Format 3, one-byte chunk stream id: most often the next chunk of a
                # video frame, which needs nothing but its length (skip_only).
                st = streams.get(b0 & 0x3F)
                if st is not None and st.received and st.skip_only:
                    received = st.received
                    length = st.length
                    take = length - received
                    if take > chunk_size:
                        take = chunk_size
                    stop = pos + 1 + take
                    if stop > end:
                        break
                    pos = stop
                    received += take
                    if received < length:
                        st.received = received
                        continue
                    st.received = 0
                    out.append((b0 & 0x3F, st.type_id, st.stream_id, st.timestamp, length, st.head))
                    st.head = b""
                    continue
            fmt = b0 >> 6
            csid = b0 & 0x3F
            hp = pos + 1
            if csid < 2:
                if csid == 0:
                    if hp + 1 > end:
                        break
                    csid = 64 + buf[hp]
                    hp += 1
                else:
                    if hp + 2 > end:
                        break
                    csid = 64 + buf[hp] + (buf[hp + 1] << 8)
                    hp += 2
            st = streams.get(csid)
            # ``prev`` is the state the header fields refer back to: a new chunk stream
            # must start with format 0, which reads nothing from it (the shared blank).
            if st is None:
                if fmt != 0:
                    raise RtmpProtocolError(
                        f"chunks: chunk stream {csid} starts with a format-{fmt} header"
                    )
                if len(streams) >= limits.max_chunk_streams:
                    raise RtmpProtocolError(
                        f"chunks: more than {limits.max_chunk_streams} chunk streams"
                    )
                prev = _NO_STREAM
            else:
                prev = st
            received = prev.received
            if fmt == 3:
                length = prev.length
                type_id = prev.type_id
                stream_id = prev.stream_id
                ext = prev.ext
                field = -1
            elif received:
                raise RtmpProtocolError(
                    f"chunks: format-{fmt} header inside a fragmented message on "
                    f"chunk stream {csid}"
                )
            elif fmt < 2:
                # Format 1 is format 0 without the message stream id (it keeps prev's).
                size = 7 if fmt else 11
                if hp + size > end:
                    break
                high, low, length_high, length_low, type_id = _FMT1(buf, hp)
                field = high << 16 | low
                length = length_high << 16 | length_low
                stream_id = prev.stream_id if fmt else _U32LE.unpack_from(buf, hp + 7)[0]
                ext = field == _EXTENDED
                hp += size
            else:
                if hp + 3 > end:
                    break
                field = (buf[hp] << 16) | (buf[hp + 1] << 8) | buf[hp + 2]
                length = prev.length
                type_id = prev.type_id
                stream_id = prev.stream_id
                ext = field == _EXTENDED
                hp += 3
            if ext:
                if hp + 4 > end:
                    break
                field = u32(buf, hp)[0]
                hp += 4
            if received:
                take = length - received
            else:
                if length > limits.max_message_size:
                    raise RtmpProtocolError(
                        f"chunks: message of {length} bytes exceeds the "
                        f"{limits.max_message_size}-byte cap"
                    )
                if length > limits.max_command_size and type_id in COMMAND_TYPES:
                    raise RtmpProtocolError(
                        f"chunks: command/data message of {length} bytes exceeds the "
                        f"{limits.max_command_size}-byte cap"
                    )
                take = length
            if take > chunk_size:
                take = chunk_size
            stop = hp + take
            if stop > end:
                break
            # The whole chunk is here: only now touch the chunk stream state, so a
            # chunk split across reads is simply parsed again from its first byte.
            pos = stop
            if st is None:
                st = streams[csid] = _ChunkStream()
            if not received:
                if fmt == 0:
                    timestamp = st.timestamp = field
                    st.delta = 0
                else:
                    if fmt != 3 or ext:
                        st.delta = field
                    timestamp = st.timestamp = (st.timestamp + st.delta) & _MASK32
                st.ext = ext
                st.length = length
                st.type_id = type_id
                st.stream_id = stream_id
                if type_id in (MSG_VIDEO, MSG_AUDIO):
                    # Media: keep the FLV tag header, skip the rest of the payload in
                    # place.
                    if take == length:  # a whole message in one chunk
                        head = bytes(
                            buf[hp : stop if take < MEDIA_HEAD_SIZE else hp + MEDIA_HEAD_SIZE]
                        )
                        out.append((csid, type_id, stream_id, timestamp, length, head))
                        continue
                    if take < MEDIA_HEAD_SIZE:
                        st.head = bytes(buf[hp:stop])
                        st.skip_only = False
                    else:
                        st.head = bytes(buf[hp : hp + MEDIA_HEAD_SIZE])
                        st.skip_only = not ext
                    st.received = take
                    continue
                st.skip_only = False
            elif type_id in (MSG_VIDEO, MSG_AUDIO):
                head = st.head
                if take and len(head) < MEDIA_HEAD_SIZE:
                    head = st.head = head + bytes(
                        buf[hp : hp + min(take, MEDIA_HEAD_SIZE - len(head))]
                    )
                received += take
                if received < length:
                    st.received = received
                    continue
                st.received = 0
                st.head = b""
                out.append((csid, type_id, st.stream_id, st.timestamp, length, head))
                continue
            if not received and take == length:
                payload = bytes(buf[hp:stop])
            else:
                if st.parts is None:
                    st.parts = bytearray()
                st.parts += buf[hp:stop]
                self._buffered += take
                if self._buffered > limits.max_buffered_bytes:
                    raise RtmpProtocolError(
                        f"chunks: more than {limits.max_buffered_bytes} bytes of "
                        "fragmented messages buffered"
                    )
                received += take
                if received < length:
                    st.received = received
                    continue
                st.received = 0
                payload = bytes(st.parts)
                self._buffered -= len(st.parts)
                st.parts = None
            if type_id in (MSG_SET_CHUNK_SIZE, MSG_ABORT):
                self._control(type_id, payload)
                chunk_size = self.chunk_size
            out.append((csid, type_id, st.stream_id, st.timestamp, length, payload))
        return pos

    def _control(self, type_id: int, payload: bytes) -> None:
        if len(payload) < 4:
            raise RtmpProtocolError(f"chunks: control message {type_id} shorter than 4 bytes")
        value = _U32.unpack_from(payload)[0]
        if type_id == MSG_SET_CHUNK_SIZE:
            if value & 0x80000000 or value < 1:
                raise RtmpProtocolError(f"chunks: invalid chunk size {value}")
            if value > self._limits.max_chunk_size:
                raise RtmpProtocolError(
                    f"chunks: chunk size {value} exceeds the {self._limits.max_chunk_size} cap"
                )
            self.chunk_size = value
            return
        st = self._streams.get(value)
        if st is not None and st.received:
            if st.parts is not None:
                self._buffered -= len(st.parts)
            st.parts = None
            st.head = b""
            st.received = 0


class ChunkWriter:
    """Splits messages into chunks with compressed headers.

    The first message on a chunk stream gets a format-0 header, later ones format 1
    (length or type changed), 2 (new delta) or 3 (the delta repeats); timestamps of
    0xFFFFFF and above go in an extended field, repeated on every continuation chunk.
    ``force_fmt`` pins a format (tests use it to produce each header type).

    Example::

        >>> w = ChunkWriter(chunk_size=4)
        >>> len(w.message(2, MSG_ACK, 0, 0, b"\\x00\\x00\\x00\\x01"))
        16
    """

    __slots__ = ("_last", "chunk_size")

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size
        # csid -> (timestamp, delta, length, type_id, stream_id)
        self._last: dict[int, tuple[int, int, int, int, int]] = {}

    def message(
        self,
        csid: int,
        type_id: int,
        stream_id: int,
        timestamp: int,
        payload: bytes,
        *,
        force_fmt: int | None = None,
    ) -> bytes:
        """The chunks of one message, ready to send."""
        timestamp &= _MASK32
        length = len(payload)
        last = self._last.get(csid)
        if force_fmt is not None:
            fmt = force_fmt
        elif last is None or last[4] != stream_id:
            fmt = 0
        elif last[2] != length or last[3] != type_id:
            fmt = 1
        elif (timestamp - last[0]) & _MASK32 != last[1]:
            fmt = 2
        else:
            fmt = 3
        if fmt == 0:
            field = timestamp
            delta = 0
        elif fmt in (1, 2):
            field = delta = (timestamp - last[0]) & _MASK32 if last else timestamp
        else:
            delta = last[1] if last else 0
            field = delta
        ext = field >= _EXTENDED
        basic = _basic_header(fmt, csid)
        header = bytearray(basic)
        short = _EXTENDED if ext else field
        if fmt <= 2:
            header += short.to_bytes(3, "big")
        if fmt <= 1:
            header += length.to_bytes(3, "big")
            header.append(type_id)
        if fmt == 0:
            header += _U32LE.pack(stream_id)
        ext_bytes = _U32.pack(field) if ext else b""
        header += ext_bytes
        self._last[csid] = (timestamp, delta, length, type_id, stream_id)
        cont = _basic_header(3, csid) + ext_bytes
        size = self.chunk_size
        out = bytearray(header)
        out += payload[:size]
        for start in range(size, length, size):
            out += cont
            out += payload[start : start + size]
        return bytes(out)


def _basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid <= 63:
        return bytes(((fmt << 6) | csid,))
    if 64 <= csid <= 319:
        return bytes((fmt << 6, csid - 64))
    if 64 <= csid <= 65599:
        return bytes(((fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))
    raise ValueError(f"chunks: chunk stream id {csid} outside [2, 65599]")


def control_message(type_id: int, value: int) -> bytes:
    """A protocol control message (SetChunkSize, Ack, WindowAckSize) on chunk stream 2.

    Example::

        >>> control_message(MSG_WINDOW_ACK_SIZE, 2500000)[-4:].hex()
        '002625a0'
    """
    return ChunkWriter().message(2, type_id, 0, 0, _U32.pack(value & _MASK32))
