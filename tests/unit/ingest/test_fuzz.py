"""Hypothesis fuzzing: nothing a peer sends escapes except RtmpProtocolError, and
buffers stay under their caps."""

from __future__ import annotations

import contextlib
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nova_streaming.ingest import amf0
from nova_streaming.ingest.chunks import (
    MSG_AUDIO,
    MSG_COMMAND_AMF0,
    MSG_DATA_AMF0,
    MSG_SET_CHUNK_SIZE,
    MSG_VIDEO,
    ChunkWriter,
    control_message,
)
from nova_streaming.ingest.errors import RtmpProtocolError
from nova_streaming.ingest.limits import IngestLimits
from nova_streaming.ingest.session import RtmpServerSession

LIMITS = IngestLimits(
    max_message_size=64 * 1024,
    max_command_size=16 * 1024,
    max_buffered_bytes=128 * 1024,
    max_chunk_streams=16,
)
HANDSHAKE = b"\x03" + bytes(1536) + bytes(1536)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_stream() -> bytes:
    w = ChunkWriter()
    data = w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("connect", 1, {"app": "live"}))
    data += w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("createStream", 2, None))
    data += w.message(
        5,
        MSG_COMMAND_AMF0,
        1,
        0,
        amf0.encode("publish", 0, None, "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b", "live"),
    )
    data += control_message(MSG_SET_CHUNK_SIZE, 1000)
    w.chunk_size = 1000
    data += w.message(5, MSG_DATA_AMF0, 1, 0, amf0.encode("onMetaData", {"height": 720}))
    for i in range(6):
        data += w.message(6, MSG_VIDEO, 1, i * 40 + 0xFFFFF0, b"\x27\x01" + bytes(1500))
        data += w.message(4, MSG_AUDIO, 1, i * 23, b"\xaf\x01" + bytes(200))
    return data


VALID = valid_stream()


def run(session: RtmpServerSession, pieces: list[bytes]) -> None:
    peak = (LIMITS.max_message_size + 64) + max((len(p) for p in pieces), default=0)
    try:
        for piece in pieces:
            session.receive(piece)
            assert session.buffered <= peak + LIMITS.max_buffered_bytes
            assert len(session.data_to_send()) <= LIMITS.max_pending_output + 4096
    except RtmpProtocolError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=2048), max_size=8))
def test_arbitrary_bytes_after_handshake(pieces: list[bytes]) -> None:
    """Arbitrary bytes after a valid handshake never raise anything else."""
    session = RtmpServerSession(LIMITS)
    session.receive(HANDSHAKE)
    run(session, pieces)


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_from_the_first_byte(data: bytes) -> None:
    """Arbitrary bytes in place of the handshake never raise anything else."""
    run(RtmpServerSession(LIMITS), [data])


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=12),
    st.lists(st.integers(1, len(VALID)), max_size=6),
)
def test_mutated_valid_streams(mutations: list[tuple[int, int]], cuts: list[int]) -> None:
    """Byte mutations of a valid publish, split at arbitrary points, fail only cleanly."""
    data = bytearray(VALID)
    for pos, value in mutations:
        data[pos] = value
    bounds = [0, *sorted(cuts), len(data)]
    pieces = [bytes(data[a:b]) for a, b in itertools.pairwise(bounds)]
    session = RtmpServerSession(LIMITS)
    session.receive(HANDSHAKE)
    run(session, pieces)


@FUZZ
@given(st.binary(max_size=512))
def test_amf_decoder_on_arbitrary_bytes(data: bytes) -> None:
    """The AMF0 decoder raises only its own error on arbitrary bytes."""
    with contextlib.suppress(RtmpProtocolError):
        amf0.decode(data)


def test_unmutated_valid_stream_publishes() -> None:
    """The fuzz seed itself is a valid publish (so the mutations start from a real stream)."""
    session = RtmpServerSession(LIMITS)
    session.receive(HANDSHAKE)
    events = session.receive(VALID)
    assert session.publishing and len(events) == 1 + 1 + 12
