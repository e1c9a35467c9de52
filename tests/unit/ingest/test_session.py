"""The sans-IO RTMP server session: commands, replies, metadata, media, acks."""

from __future__ import annotations

import struct

import pytest

from nova_streaming.ingest import amf0, errors
from nova_streaming.ingest.chunks import (
    MSG_ACK,
    MSG_AUDIO,
    MSG_COMMAND_AMF0,
    MSG_DATA_AMF0,
    MSG_SET_CHUNK_SIZE,
    MSG_USER_CONTROL,
    MSG_VIDEO,
    MSG_WINDOW_ACK_SIZE,
    ChunkReader,
    ChunkWriter,
    control_message,
)
from nova_streaming.ingest.errors import HandshakeError, RtmpProtocolError
from nova_streaming.ingest.session import (
    MediaReceived,
    MetadataReceived,
    PublishRequested,
    RtmpServerSession,
    UnpublishRequested,
    classify_video,
)
from streaming_metrics.definitions import DEFAULT_ERROR_TYPES

SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"


def handshaken() -> tuple[RtmpServerSession, ChunkWriter]:
    session = RtmpServerSession()
    assert session.receive(b"\x03" + bytes(1536)) == []
    assert len(session.data_to_send()) == 3073
    assert session.receive(bytes(1536)) == []
    assert session.handshake_done
    return session, ChunkWriter()


def nginx_push_prologue(w: ChunkWriter, name: str = SID) -> bytes:
    """What nginx-rtmp 1.2.2's push sends after the handshake (observed, in order)."""
    data = control_message(MSG_SET_CHUNK_SIZE, 4096) + control_message(MSG_WINDOW_ACK_SIZE, 5000000)
    w.chunk_size = 4096
    data += w.message(
        3,
        MSG_COMMAND_AMF0,
        0,
        0,
        amf0.encode(
            "connect",
            1,
            {"app": "live", "tcUrl": "rtmp://127.0.0.1/live", "flashVer": "LNX.11,1,102,55"},
        ),
    )
    data += w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("createStream", 2, None))
    data += w.message(5, MSG_COMMAND_AMF0, 1, 0, amf0.encode("publish", 0, None, name, "live"))
    data += w.message(2, MSG_USER_CONTROL, 0, 0, bytes(6))
    data += w.message(
        5,
        MSG_DATA_AMF0,
        1,
        0,
        amf0.encode("onMetaData")
        + amf0.encode_ecma_array({"width": 1280, "height": 720, "framerate": 30}),
    )
    return data


def replies(session: RtmpServerSession) -> list[list[amf0.AmfValue]]:
    msgs = ChunkReader().feed(session.data_to_send())
    return [amf0.decode(m.payload) for m in msgs if m.type_id == MSG_COMMAND_AMF0]


def test_nginx_push_sequence() -> None:
    """nginx's push prologue yields results, Publish.Start, a publish and metadata events."""
    session, w = handshaken()
    events = session.receive(nginx_push_prologue(w))
    assert events == [
        PublishRequested(SID, "live", "live"),
        MetadataReceived({"width": 1280.0, "height": 720.0, "framerate": 30.0}),
    ]
    answers = replies(session)
    assert [a[0] for a in answers] == ["_result", "_result", "onStatus"]
    assert answers[0][3]["code"] == "NetConnection.Connect.Success"  # type: ignore[index]
    assert answers[1][3] == 1.0
    assert answers[2][3]["code"] == "NetStream.Publish.Start"  # type: ignore[index]


def test_media_events_and_unpublish() -> None:
    """Audio and video become media events (config packets flagged), then unpublish."""
    session, w = handshaken()
    session.receive(nginx_push_prologue(w))
    data = w.message(7, MSG_VIDEO, 1, 0, b"\x17\x00" + bytes(40))
    data += w.message(7, MSG_VIDEO, 1, 33, b"\x17\x01" + bytes(5000))
    data += w.message(6, MSG_AUDIO, 1, 20, b"\xaf\x01" + bytes(300))
    data += w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("FCUnpublish", 5, None, SID))
    assert session.receive(data) == [
        MediaReceived(True, 0, 42, False, True),
        MediaReceived(True, 33, 5002, True, True),
        MediaReceived(False, 20, 302, True, False),
        UnpublishRequested("FCUnpublish"),
    ]


def test_set_data_frame_and_ffmpeg_style_commands() -> None:
    """releaseStream/FCPublish are tolerated and @setDataFrame onMetaData is understood."""
    session, w = handshaken()
    data = w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("connect", 1, {"app": "live"}))
    data += w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("releaseStream", 2, None, SID))
    data += w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("FCPublish", 3, None, SID))
    data += w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("createStream", 4, None))
    data += w.message(
        8, MSG_COMMAND_AMF0, 1, 0, amf0.encode("publish", 5, None, SID + "?t=1", "live")
    )
    data += w.message(
        4, MSG_DATA_AMF0, 1, 0, amf0.encode("@setDataFrame", "onMetaData", {"height": 360})
    )
    assert session.receive(data) == [
        PublishRequested(SID, "live", "live"),
        MetadataReceived({"height": 360.0}),
    ]


def test_acknowledgements_and_ping() -> None:
    """The session acks once the peer's window is used up and answers ping requests."""
    session, w = handshaken()
    session.receive(control_message(MSG_WINDOW_ACK_SIZE, 1000))
    session.receive(w.message(2, MSG_USER_CONTROL, 0, 0, struct.pack(">HI", 6, 1234)))
    msgs = ChunkReader().feed(session.data_to_send())
    assert [(m.type_id, m.payload) for m in msgs] == [
        (MSG_USER_CONTROL, struct.pack(">HI", 7, 1234))
    ]
    session.receive(
        w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("connect", 1, {"a": "y" * 1200}))
    )
    msgs = ChunkReader().feed(session.data_to_send())
    assert msgs[-1].type_id == MSG_ACK
    assert struct.unpack(">I", msgs[-1].payload)[0] == session._reader.bytes_received


@pytest.mark.parametrize(
    ("commands", "match"),
    [
        ([("createStream", 1, None)], "before connect"),
        ([("connect", 1, {}), ("connect", 2, {})], "second connect"),
        ([("connect", 1, {}), ("publish", 2, None, "")], "valid stream name"),
        ([("connect", 1, {}), ("publish", 2, None, SID), ("publish", 3, None, SID)], "second"),
        ([(3.0, 1)], "command name"),
    ],
)
def test_command_misuse_is_a_protocol_error(commands: list[tuple[object, ...]], match: str) -> None:
    """Out-of-order or malformed commands raise RtmpProtocolError."""
    session, w = handshaken()
    data = b"".join(w.message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode(*c)) for c in commands)  # type: ignore[arg-type]
    with pytest.raises(RtmpProtocolError, match=match):
        session.receive(data)


def test_bad_handshake_version() -> None:
    """A first byte other than 3 fails the handshake as a connection failure."""
    with pytest.raises(HandshakeError) as info:
        RtmpServerSession().receive(b"\x06" + bytes(10))
    assert info.value.error_type == "rtmp_connection_failed"


def test_handshake_split_and_trailing_bytes() -> None:
    """The handshake works byte by byte and passes bytes after C2 to the chunk parser."""
    session = RtmpServerSession()
    data = (
        b"\x03"
        + bytes(1536)
        + bytes(1536)
        + ChunkWriter().message(3, MSG_COMMAND_AMF0, 0, 0, amf0.encode("connect", 1, {"app": "a"}))
    )
    for i in range(len(data)):
        session.receive(data[i : i + 1])
    out = session.data_to_send()
    assert out[0] == 3 and len(out) > 3073
    msgs = ChunkReader().feed(out[3073:])
    assert [amf0.decode(m.payload)[0] for m in msgs if m.type_id == MSG_COMMAND_AMF0] == ["_result"]


def test_classify_video() -> None:
    """Sequence headers, end of sequence and command frames are not frames."""
    assert classify_video(b"\x27\x01") == (True, False)
    assert classify_video(b"\x17\x02") == (False, True)
    assert classify_video(b"\x52\x00") == (False, False)
    assert classify_video(b"\x91") == (True, True)  # enhanced RTMP, coded frames
    assert classify_video(b"\x90") == (False, True)  # enhanced RTMP, sequence start
    assert classify_video(b"\x22") == (True, False)  # Sorenson H.263: no packet type
    assert classify_video(b"") == (False, False)


def test_error_types_are_contract_values() -> None:
    """The error types the receiver reports are members of the metrics contract."""
    kinds = (errors.PROTOCOL_ERROR, errors.CONNECTION_FAILED, errors.TIMEOUT, errors.FRAME_DROP)
    assert set(kinds) <= set(DEFAULT_ERROR_TYPES)
