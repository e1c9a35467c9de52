"""Bytes read straight into a buffer (``get_buffer`` / ``buffer_updated``, the receiver's
path) give exactly what ``receive(bytes)`` gives, however the reads are cut."""

from __future__ import annotations

import contextlib
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nova_streaming.ingest import amf0
from nova_streaming.ingest.chunks import (
    MIN_READ_SIZE,
    MSG_AUDIO,
    MSG_COMMAND_AMF0,
    MSG_DATA_AMF0,
    MSG_SET_CHUNK_SIZE,
    MSG_VIDEO,
    ChunkReader,
    ChunkWriter,
    control_message,
)
from nova_streaming.ingest.errors import RtmpProtocolError
from nova_streaming.ingest.session import RtmpServerSession, SessionEvent

HANDSHAKE = b"\x03" + bytes(1536) + bytes(1536)
SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def publish(chunk_size: int = 4096, frames: int = 8) -> bytes:
    """A publish as nginx's push sends it: big media messages over several chunks."""
    w = ChunkWriter()
    data = w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("connect", 1, {"app": "live"}))
    data += w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("createStream", 2, None))
    data += w.message(5, MSG_COMMAND_AMF0, 1, 0, amf0.encode("publish", 3, None, SID, "live"))
    data += control_message(MSG_SET_CHUNK_SIZE, chunk_size)
    w.chunk_size = chunk_size
    data += w.message(5, MSG_DATA_AMF0, 1, 0, amf0.encode("onMetaData", {"height": 720.0}))
    data += w.message(6, MSG_VIDEO, 1, 0, b"\x17\x00" + bytes(30))
    for i in range(frames):
        head = b"\x17\x01" if i == 0 else b"\x27\x01"
        data += w.message(6, MSG_VIDEO, 1, i * 33 + 0xFFFFF0, head + bytes(9000 + i))
        data += w.message(4, MSG_AUDIO, 1, i * 21, b"\xaf\x01" + bytes(370))
    return data


VALID = HANDSHAKE + publish()


def buffered(session: RtmpServerSession, pieces: list[bytes], scratch: bytearray) -> list[object]:
    """Each piece read into ``session.get_buffer(scratch)``; a piece longer than the
    space given is read in several reads, as a socket would."""
    events: list[SessionEvent] = []
    for piece in pieces:
        while piece:
            space = session.get_buffer(scratch)
            assert len(space) >= MIN_READ_SIZE or not session.handshake_done
            n = min(len(space), len(piece))
            space[:n] = piece[:n]
            events += session.buffer_updated(n)
            piece = piece[n:]
    return [*events, session.data_to_send()[3073:]]  # replies after S0+S1+S2 (random)


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(PROPERTY)
@given(st.lists(st.integers(1, len(VALID) - 1), max_size=40))
def test_buffered_reads_match_receive(cuts: list[int]) -> None:
    """Any cut of a publish gives the same events and replies as one ``receive``."""
    whole = RtmpServerSession()
    expected = [*whole.receive(VALID), whole.data_to_send()[3073:]]
    scratch = bytearray(MIN_READ_SIZE + 4096)  # small: long tails take a private buffer
    assert buffered(RtmpServerSession(), cut(VALID, cuts), scratch) == expected


def test_one_byte_reads_and_a_shared_buffer() -> None:
    """Two sessions reading byte by byte into one shared buffer, interleaved, each see
    exactly their own stream."""
    scratch = bytearray(MIN_READ_SIZE)
    a, b = RtmpServerSession(), RtmpServerSession()
    mine = HANDSHAKE + publish(frames=2)
    other = HANDSHAKE + publish(chunk_size=128, frames=1)
    ours: list[list[object]] = [[], []]
    for i in range(max(len(mine), len(other))):
        for k, (session, data) in enumerate(((a, mine), (b, other))):
            if i < len(data):
                ours[k] += buffered(session, [data[i : i + 1]], scratch)[:-1]
    for k, data in enumerate((mine, other)):
        assert ours[k] == RtmpServerSession().receive(data)


def test_reader_keeps_only_the_incomplete_chunk() -> None:
    """Between reads the reader holds the unparsed tail only, never a media payload."""
    reader = ChunkReader()
    scratch = bytearray(MIN_READ_SIZE)
    wire = ChunkWriter().message(6, MSG_VIDEO, 1, 0, b"\x17\x01" + bytes(100))  # 128-byte chunks
    space = reader.get_buffer(scratch)
    space[:50] = wire[:50]
    assert reader.buffer_updated(50) == [] and reader.buffered == 50
    space = reader.get_buffer(scratch)
    space[: len(wire) - 50] = wire[50:]
    (record,) = reader.buffer_updated(len(wire) - 50)
    assert record[4] == 102 and record[5] == (b"\x17\x01" + bytes(6)) and reader.buffered == 0


@settings(PROPERTY)
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=12),
    st.lists(st.integers(1, len(VALID) - 1), max_size=10),
)
def test_mutated_buffered_reads_fail_only_cleanly(
    mutations: list[tuple[int, int]], cuts: list[int]
) -> None:
    """Mutated bytes through the buffer path raise nothing but RtmpProtocolError."""
    data = bytearray(VALID)
    for pos, value in mutations:
        data[pos] = value
    session = RtmpServerSession()
    with contextlib.suppress(RtmpProtocolError):
        buffered(session, cut(bytes(data), cuts), bytearray(MIN_READ_SIZE))
