"""Chunk stream reassembly: header formats, extended timestamps, chunk size, caps."""

from __future__ import annotations

import struct

import pytest

from nova_streaming.ingest.chunks import (
    MSG_ABORT,
    MSG_AUDIO,
    MSG_COMMAND_AMF0,
    MSG_SET_CHUNK_SIZE,
    MSG_VIDEO,
    ChunkReader,
    ChunkWriter,
    control_message,
)
from nova_streaming.ingest.errors import RtmpProtocolError
from nova_streaming.ingest.limits import IngestLimits


def fmt0(csid: int, ts: int, length: int, type_id: int, msid: int) -> bytes:
    field = min(ts, 0xFFFFFF)
    head = bytes((csid,)) + field.to_bytes(3, "big") + length.to_bytes(3, "big")
    head += bytes((type_id,)) + struct.pack("<I", msid)
    return head + (struct.pack(">I", ts) if ts >= 0xFFFFFF else b"")


def test_each_header_format_and_its_timestamp_rule() -> None:
    """fmt 0 sets the time, fmt 1 and 2 add their delta, fmt 3 repeats the last delta."""
    data = (
        fmt0(4, 1000, 2, MSG_AUDIO, 1)
        + b"\xaf\x01"
        + bytes((0x44,))
        + (20).to_bytes(3, "big")
        + (3).to_bytes(3, "big")
        + bytes((MSG_AUDIO,))
        + b"\xaf\x01\x00"
        + bytes((0x84,))
        + (30).to_bytes(3, "big")
        + b"\xaf\x01\x01"
        + bytes((0xC4,))
        + b"\xaf\x01\x02"
    )
    msgs = ChunkReader().feed(data)
    assert [(m.timestamp, m.length, m.stream_id) for m in msgs] == [
        (1000, 2, 1),
        (1020, 3, 1),
        (1050, 3, 1),
        (1080, 3, 1),
    ]


def test_fmt3_after_fmt0_keeps_the_timestamp() -> None:
    """A fmt-3 message right after fmt 0 has a zero delta, as nginx-rtmp reads it."""
    data = fmt0(4, 500, 1, MSG_AUDIO, 1) + b"\xaf" + bytes((0xC4,)) + b"\xaf"
    assert [m.timestamp for m in ChunkReader().feed(data)] == [500, 500]


def test_extended_timestamp_on_continuation_chunks() -> None:
    """An extended timestamp is repeated on fmt-3 continuation chunks and not read as payload."""
    payload = bytes(range(200))
    ts = 0x01234567
    data = fmt0(5, ts, 200, MSG_COMMAND_AMF0, 0) + payload[:128]
    data += bytes((0xC5,)) + struct.pack(">I", ts) + payload[128:]
    (msg,) = ChunkReader().feed(data)
    assert msg.timestamp == ts and msg.payload == payload


def test_extended_delta_on_fmt1_and_fmt3_new_message() -> None:
    """An extended field on fmt 1 is a delta; a following fmt-3 message reuses it."""
    big = 0x01000000
    data = fmt0(4, 10, 1, MSG_AUDIO, 1) + b"\xaf"
    data += bytes((0x44,)) + b"\xff\xff\xff" + (1).to_bytes(3, "big") + bytes((MSG_AUDIO,))
    data += struct.pack(">I", big) + b"\xaf"
    data += bytes((0xC4,)) + struct.pack(">I", big) + b"\xaf"
    assert [m.timestamp for m in ChunkReader().feed(data)] == [10, 10 + big, 10 + 2 * big]


def test_timestamp_arithmetic_wraps_modulo_2_32() -> None:
    """Deltas past 2**32 wrap the 32-bit message timestamp."""
    data = fmt0(4, 0xFFFFFFF0, 1, MSG_AUDIO, 1) + struct.pack(">I", 0xFFFFFFF0)[:0] + b"\xaf"
    data += bytes((0x84,)) + (0x20).to_bytes(3, "big") + b"\xaf"
    assert [m.timestamp for m in ChunkReader().feed(data)] == [0xFFFFFFF0, 0x10]


def test_set_chunk_size_mid_stream_and_byte_by_byte_feeding() -> None:
    """SetChunkSize applies to the chunks after it, even when fed one byte at a time."""
    writer = ChunkWriter()
    body = bytes(range(256)) * 4
    data = writer.message(3, MSG_COMMAND_AMF0, 0, 0, body)  # 128-byte chunks
    data += control_message(MSG_SET_CHUNK_SIZE, 300)
    writer.chunk_size = 300
    data += writer.message(3, MSG_COMMAND_AMF0, 0, 40, body)
    whole = ChunkReader().feed(data)
    reader = ChunkReader()
    split = [m for i in range(len(data)) for m in reader.feed(data[i : i + 1])]
    assert whole == split
    assert [m.payload for m in whole if m.type_id == MSG_COMMAND_AMF0] == [body, body]
    assert reader.chunk_size == 300


def test_interleaved_chunk_streams() -> None:
    """Chunks of messages on different chunk streams may interleave."""
    a, b = b"A" * 300, b"B" * 300
    w = ChunkWriter()
    wa, wb = w.message(3, MSG_COMMAND_AMF0, 0, 0, a), w.message(4, MSG_COMMAND_AMF0, 0, 0, b)
    # Split each into its chunks (12-byte header + 128, then 1 + 128, then 1 + 44).
    pa = [wa[:140], wa[140:269], wa[269:]]
    pb = [wb[:140], wb[140:269], wb[269:]]
    data = b"".join(x + y for x, y in zip(pa, pb, strict=True))
    assert [m.payload for m in ChunkReader().feed(data)] == [a, b]


def test_media_payload_is_counted_not_buffered() -> None:
    """Audio/video messages keep only their head bytes but report their full length."""
    w = ChunkWriter()
    frame = b"\x17\x01" + bytes(10_000)
    (msg,) = ChunkReader().feed(w.message(6, MSG_VIDEO, 1, 33, frame))
    assert msg.length == 10_002 and msg.payload[:2] == b"\x17\x01" and len(msg.payload) <= 8


def test_abort_discards_the_partial_message() -> None:
    """Abort drops a partially received message on the named chunk stream."""
    w = ChunkWriter()
    partial = w.message(5, MSG_COMMAND_AMF0, 0, 0, b"x" * 300)[:140]
    reader = ChunkReader()
    assert reader.feed(partial) == []
    assert reader.buffered == 128
    abort = control_message(MSG_ABORT, 5)
    assert [m.type_id for m in reader.feed(abort)] == [MSG_ABORT]
    assert reader.buffered == 0
    w2 = ChunkWriter()
    (msg,) = [m for m in reader.feed(w2.message(5, MSG_COMMAND_AMF0, 0, 0, b"ok"))]
    assert msg.payload == b"ok"


def test_writer_compresses_headers_and_reader_agrees() -> None:
    """The writer uses fmt 0, 1 on a size change, 2 on a new delta, 3 on a repeated delta."""
    w = ChunkWriter()
    stamps = [(0, b"ab"), (20, b"abc"), (50, b"abc"), (80, b"abc")]
    wire = [w.message(4, MSG_AUDIO, 1, ts, payload) for ts, payload in stamps]
    assert [chunk[0] >> 6 for chunk in wire] == [0, 1, 2, 3]
    assert [m.timestamp for m in ChunkReader().feed(b"".join(wire))] == [0, 20, 50, 80]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (control_message(MSG_SET_CHUNK_SIZE, 0), "invalid chunk size"),
        (control_message(MSG_SET_CHUNK_SIZE, 0x80000000), "invalid chunk size"),
        (control_message(MSG_SET_CHUNK_SIZE, 0x7FFFFFFF), "exceeds"),
        (fmt0(3, 0, 0xFFFFFF, MSG_VIDEO, 1), "exceeds"),
        (fmt0(3, 0, 300_000, MSG_COMMAND_AMF0, 0), "command/data"),
        (bytes((0x83,)) + bytes(3), "starts with a format-2"),
        (fmt0(3, 0, 300, MSG_COMMAND_AMF0, 0) + bytes(128) + fmt0(3, 0, 1, 20, 0), "inside"),
    ],
)
def test_caps_and_malformed_headers_raise(data: bytes, match: str) -> None:
    """Oversized chunk sizes/messages and inconsistent headers raise RtmpProtocolError."""
    with pytest.raises(RtmpProtocolError, match=match):
        ChunkReader().feed(data)


def test_too_many_chunk_streams() -> None:
    """Opening more chunk streams than the cap is a protocol error."""
    limits = IngestLimits(max_chunk_streams=8)
    data = b"".join(fmt0(cs, 0, 1, MSG_AUDIO, 1) + b"\xaf" for cs in range(3, 20))
    with pytest.raises(RtmpProtocolError, match="more than 8 chunk streams"):
        ChunkReader(limits).feed(data)


def test_fragmented_bytes_cap() -> None:
    """Fragments of unfinished messages across chunk streams are capped in total."""
    limits = IngestLimits(max_message_size=1024, max_command_size=1024, max_buffered_bytes=1024)
    w = ChunkWriter()
    data = b"".join(w.message(cs, MSG_COMMAND_AMF0, 0, 0, bytes(1000))[:140] for cs in range(3, 20))
    with pytest.raises(RtmpProtocolError, match="fragmented"):
        ChunkReader(limits).feed(data)


def test_media_over_many_chunks_keeps_its_head_and_header_fields() -> None:
    """A video frame in several chunks (interleaved with audio) is one message with its
    own head, length, stream id and timestamp, and the next frame's fmt-3 header
    repeats the delta, as nginx's push sends them."""
    w = ChunkWriter(chunk_size=128)
    reader = ChunkReader()
    frames = [bytes((0x17 if i == 0 else 0x27, 1, i)) + bytes(400 + i) for i in range(3)]
    wires = [w.message(7, MSG_VIDEO, 1, 1000 + 33 * i, f) for i, f in enumerate(frames)]
    audio = w.message(6, MSG_AUDIO, 1, 1000, b"\xaf\x01" + bytes(20))
    # The audio message lands between the first frame's first and second chunks.
    data = wires[0][:140] + audio + wires[0][140:] + wires[1] + wires[2]
    got = [
        (m.csid, m.type_id, m.stream_id, m.timestamp, m.length, m.payload)
        for m in reader.feed(data)
    ]
    assert got == [
        (6, MSG_AUDIO, 1, 1000, 22, b"\xaf\x01" + bytes(6)),
        (7, MSG_VIDEO, 1, 1000, 403, frames[0][:8]),
        (7, MSG_VIDEO, 1, 1033, 404, frames[1][:8]),
        (7, MSG_VIDEO, 1, 1066, 405, frames[2][:8]),
    ]


def test_media_with_extended_timestamp_continuations() -> None:
    """Continuation chunks of a media message carry the extended timestamp again: those
    four bytes are neither payload nor the next chunk's header."""
    ts = 0x01234567
    frame = b"\x27\x01" + bytes(298)
    data = fmt0(7, ts, 300, MSG_VIDEO, 1) + frame[:128]
    data += bytes((0xC7,)) + struct.pack(">I", ts) + frame[128:256]
    data += bytes((0xC7,)) + struct.pack(">I", ts) + frame[256:]
    data += fmt0(6, 5, 2, MSG_AUDIO, 1) + b"\xaf\x01"
    got = [(m.type_id, m.timestamp, m.length, m.payload) for m in ChunkReader().feed(data)]
    assert got == [(MSG_VIDEO, ts, 300, frame[:8]), (MSG_AUDIO, 5, 2, b"\xaf\x01")]


def test_abort_mid_frame_then_a_fragmented_command_on_the_same_chunk_stream() -> None:
    """After Abort drops half a video frame, a command on the same chunk stream (also in
    several chunks) is reassembled whole, not skipped as media."""
    w = ChunkWriter()
    reader = ChunkReader()
    assert reader.feed(w.message(7, MSG_VIDEO, 1, 0, b"\x17\x01" + bytes(300))[:140]) == []
    assert [m.type_id for m in reader.feed(control_message(MSG_ABORT, 7))] == [MSG_ABORT]
    body = bytes(range(256)) + b"tail"
    (msg,) = reader.feed(ChunkWriter().message(7, MSG_COMMAND_AMF0, 0, 0, body))
    assert (msg.type_id, msg.payload) == (MSG_COMMAND_AMF0, body)


def test_media_with_a_first_chunk_shorter_than_its_head() -> None:
    """With a chunk size below the head size, the head is gathered over several chunks."""
    w = ChunkWriter(chunk_size=3)
    reader = ChunkReader()
    reader.chunk_size = 3
    frame = bytes(range(1, 21))
    first, second = w.message(7, MSG_VIDEO, 1, 0, frame), w.message(7, MSG_VIDEO, 1, 40, frame)
    got = [(m.timestamp, m.length, m.payload) for m in reader.feed(first + second)]
    assert got == [(0, 20, frame[:8]), (40, 20, frame[:8])]
