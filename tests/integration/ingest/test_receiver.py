"""The asyncio receiver driven by a crafted RTMP publisher over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from nova_streaming.ingest.limits import IngestLimits
from nova_streaming.ingest.receiver import StopReason

STREAM = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"


async def test_publish_frames_lag_and_drops(
    make_receiver: Any, publishers: Any, sink: Any, wait: Any
) -> None:
    """Publish, metadata, frames with an injected gap: exact drops, lags, stop on close."""
    receiver = await make_receiver()
    pub = await publishers(receiver.port)
    await pub.publish(f"{STREAM}_720p")
    await wait(lambda: len(sink.starts) == 1, what="publish start")
    session = sink.starts[0]
    assert session.stream_id == STREAM
    assert session.quality == "720p"
    await pub.metadata({"width": 1280.0, "height": 720.0, "framerate": 25.0}, set_data_frame=True)
    pub.video_config(0)
    # 25 fps = 40 ms. Frames 10..14 missing: 5 drops; 20 alone: a 2-interval gap, under
    # the 2.5-interval threshold, not counted; 30 and 31: 2 drops.
    timestamps = [i * 40 for i in range(40) if not (10 <= i < 15 or i in (20, 30, 31))]
    for ts in timestamps:
        pub.video(ts, keyframe=ts == 0)
        pub.audio(ts)
        await pub.drain()
    await wait(lambda: len(sink.frames) == len(timestamps), what="all frames")
    assert [frame.timestamp_ms for _, frame in sink.frames] == timestamps
    assert sink.error_count("frame_drop") == 7
    assert session.dropped_frames == 7
    assert all(frame.lag_seconds >= 0 for _, frame in sink.frames)
    assert sink.frames[0][1].lag_seconds == 0.0
    assert sink.metadata[0][1]["height"] == 720.0
    await pub.close()
    await wait(lambda: len(sink.stops) == 1, what="stop")
    assert sink.stops[0][1] is StopReason.CLOSED
    assert sink.error_count("protocol_error") == 0


async def test_lag_tracks_injected_delay(
    make_receiver: Any, publishers: Any, sink: Any, wait: Any
) -> None:
    """Frames sent in real time then held back 300 ms show that extra delay as lag."""
    receiver = await make_receiver()
    pub = await publishers(receiver.port)
    await pub.publish(STREAM)
    await pub.metadata({"height": 1080.0, "framerate": 50.0})
    await wait(lambda: sink.starts and sink.starts[0].quality == "1080p", what="quality")
    for i in range(5):  # on time: media time advances with wall time
        pub.video(i * 20)
        await pub.drain()
        await asyncio.sleep(0.02)
    await wait(lambda: len(sink.frames) == 5, what="first frames")
    await asyncio.sleep(0.3)  # the next frame's media time is 20 ms on; wall time 300+ ms
    pub.video(100)
    await pub.drain()
    await wait(lambda: len(sink.frames) == 6, what="late frame")
    late = sink.frames[-1][1]
    assert late.quality == "1080p"
    assert 0.25 <= late.lag_seconds <= 2.0
    assert sink.error_count("frame_drop") == 0


async def test_timestamp_wrap_and_extended_timestamps(
    make_receiver: Any, publishers: Any, sink: Any, wait: Any
) -> None:
    """Timestamps crossing 2**32 (extended header) unwrap monotonically, no false drops."""
    receiver = await make_receiver()
    pub = await publishers(receiver.port)
    await pub.publish(STREAM, chunk_size=128)  # 2000-byte frames span many fmt-3 chunks
    await pub.metadata({"height": 480.0, "framerate": 25.0})
    start = 2**32 - 200
    raw = [(start + i * 40) % 2**32 for i in range(10)]
    for ts in raw:
        pub.video(ts)
    await pub.drain()
    await wait(lambda: len(sink.frames) == 10, what="frames")
    assert [f.timestamp_ms for _, f in sink.frames] == [start + i * 40 for i in range(10)]
    assert sink.error_count("frame_drop") == 0
    assert sink.error_count("protocol_error") == 0


async def test_silent_publisher_times_out(
    make_receiver: Any, publishers: Any, sink: Any, wait: Any
) -> None:
    """A publisher that sends no media for ingest_timeout is ended and counted once."""
    receiver = await make_receiver(ingest_timeout=0.5)
    pub = await publishers(receiver.port)
    await pub.publish(STREAM)
    pub.video(0)
    await pub.drain()
    await wait(lambda: len(sink.stops) == 1, what="timeout stop")
    assert sink.stops[0][1] is StopReason.TIMEOUT
    assert sink.error_count("timeout") == 1
    assert await pub.closed_by_peer()


async def test_bitrate_reported_at_most_once_a_second(
    make_receiver: Any, publishers: Any, sink: Any, wait: Any
) -> None:
    """Media at ~800 kbit/s yields bitrate reports near it, spaced by >= 1 s."""
    receiver = await make_receiver()
    pub = await publishers(receiver.port)
    await pub.publish(STREAM)
    await pub.metadata({"height": 360.0, "framerate": 25.0})
    # 25 frames/s of 4000 bytes = 800 kbit/s, for ~2.5 s of wall time.
    for i in range(63):
        pub.video(i * 40, size=4000)
        await pub.drain()
        await asyncio.sleep(0.04)
    await wait(lambda: len(sink.bitrates) >= 2, what="bitrate reports")
    assert all(quality == "360p" for _, quality, _ in sink.bitrates)
    assert all(500 < kbps < 1200 for _, _, kbps in sink.bitrates[1:])
    # At most one per second: never more reports than whole seconds of media + 1.
    assert len(sink.bitrates) <= 3


async def test_untrusted_peer_closed_and_reported_not_counted(
    make_receiver: Any, publishers: Any, sink: Any, wait: Any
) -> None:
    """A connection from outside the trusted networks is closed at once and reported to
    on_untrusted only: never a broadcast error (a port scan must not move the error rate)."""
    from nova_streaming.ingest.peers import TrustedPeers

    untrusted: list[str] = []
    receiver = await make_receiver(
        trusted=TrustedPeers.parse("10.0.0.0/8"), on_untrusted=untrusted.append
    )
    pub = await publishers(receiver.port)
    assert await pub.closed_by_peer()
    await wait(lambda: untrusted == ["127.0.0.1"], what="reported")
    assert not sink.starts
    assert sink.errors == []


async def test_non_uuid_stream_name_refused(
    make_receiver: Any, publishers: Any, sink: Any, wait: Any
) -> None:
    """Publishing a name that is not a UUID is refused and counted as a protocol error."""
    receiver = await make_receiver()
    pub = await publishers(receiver.port)
    with contextlib.suppress(AssertionError, ConnectionError):
        await pub.publish("not-a-uuid")
    await wait(lambda: sink.error_count("protocol_error") == 1, what="count")
    assert not sink.starts
    assert await pub.closed_by_peer()


async def _hostile(kind: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if kind == "bad_version":
        writer.write(b"\x06" + bytes(1536))
    elif kind != "silent":
        writer.write(b"\x03" + bytes(1536))
        await reader.readexactly(3073)
        writer.write(bytes(1536))
        if kind == "garbage":
            writer.write(b"\xff\x13\x37" + bytes(range(256)) * 8)
        elif kind == "huge_chunk_size":
            writer.write(b"\x02" + bytes(3) + b"\x00\x00\x04\x01" + bytes(4) + b"\x7f\xff\xff\xff")
        elif kind == "huge_message":
            writer.write(b"\x03" + bytes(3) + b"\xff\xff\xf0\x09" + bytes(4) + bytes(100))
        elif kind == "bad_amf":
            writer.write(
                b"\x03" + bytes(3) + b"\x00\x00\x05\x14" + bytes(4) + b"\x02\xff\xff\x00\x00"
            )
        elif kind == "many_chunk_streams":
            for csid in range(4, 200):
                basic = bytes((csid,)) if csid < 64 else bytes((0, csid - 64))
                writer.write(basic + bytes(3) + b"\x00\x00\x08\x09" + bytes(4) + bytes(8))
    await writer.drain()
    return reader, writer


async def test_hostile_peers_cost_only_their_connection(
    make_receiver: Any, publishers: Any, sink: Any, wait: Any
) -> None:
    """Bad version, garbage, huge chunk size/message, bad AMF and too many chunk streams
    are closed and counted, a silent peer (never a byte: a probe) is closed at the
    handshake timeout uncounted, while a good session keeps working."""
    receiver = await make_receiver(handshake_timeout=1.0, limits=IngestLimits())
    good = await publishers(receiver.port)
    await good.publish(STREAM)
    await good.metadata({"height": 720.0, "framerate": 25.0})
    kinds = [
        "bad_version",
        "garbage",
        "huge_chunk_size",
        "huge_message",
        "bad_amf",
        "many_chunk_streams",
        "silent",
    ]
    hostile = [await _hostile(kind, receiver.port) for kind in kinds]
    try:
        await _check_hostile(receiver, good, hostile, kinds, sink, wait)
    finally:
        for _reader, writer in hostile:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _check_hostile(
    receiver: Any, good: Any, hostile: Any, kinds: Any, sink: Any, wait: Any
) -> None:
    for i in range(25):
        good.video(i * 40)
        await good.drain()
    for reader, _writer in hostile:
        try:
            while await asyncio.wait_for(reader.read(65536), 10):
                pass
        except (ConnectionError, OSError):
            pass
    # Every hostile connection is closed (the reads above ended); the silent one is
    # the only one not counted.
    await wait(
        lambda: (
            sink.error_count("protocol_error") + sink.error_count("rtmp_connection_failed")
            == len(kinds) - 1
        ),
        what="hostile counts",
    )
    assert sink.error_count("rtmp_connection_failed") == 1  # bad version
    assert sink.error_count("protocol_error") == 5
    await wait(lambda: len(sink.frames) == 25, what="good frames")
    assert sink.error_count("frame_drop") == 0
    assert len(receiver.sessions) == 1 and not sink.stops


async def test_many_concurrent_streams(
    make_receiver: Any, publishers: Any, sink: Any, wait: Any
) -> None:
    """Twenty concurrent publishers each get their own session, frames and stop."""
    receiver = await make_receiver()
    ids = [str(uuid.uuid4()) for _ in range(20)]
    pubs = [await publishers(receiver.port) for _ in ids]
    await asyncio.gather(*(p.publish(i) for p, i in zip(pubs, ids, strict=True)))
    for pub in pubs:
        for n in range(10):
            pub.video(n * 33)
        await pub.drain()
    await wait(lambda: len(sink.frames) == 200, what="frames")
    assert {s.stream_id for s in sink.starts} == set(ids)
    assert all(len(sink.frames_of(i)) == 10 for i in ids)
    await receiver.stop()
    assert {r for _, r in sink.stops} == {StopReason.SERVER_STOPPED}
    assert len(sink.stops) == 20


async def test_peer_that_never_reads_its_replies_is_closed(
    make_receiver: Any, sink: Any, wait: Any
) -> None:
    """A peer that sends pings but never reads the pongs is closed (protocol_error) once the
    replies queued in the transport pass max_pending_output (default 1 MiB, more than one
    read's worth of pongs), instead of growing memory."""
    import socket

    from nova_streaming.ingest.chunks import MSG_USER_CONTROL, ChunkWriter

    # No publish ever comes: keep the handshake timeout out of the way.
    receiver = await make_receiver(handshake_timeout=300.0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", receiver.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(b"\x03" + bytes(1536))
        await reader.readexactly(3073)
        writer.write(bytes(1536))
        ping = ChunkWriter().message(2, MSG_USER_CONTROL, 0, 0, b"\x00\x06" + bytes(4))
        batch = ping * 2000  # 36 kB of pings, as many pongs
        sent = 0
        closed = False
        # Far more than the kernel buffers on both sides plus the cap; never read a byte.
        while sent < 24 * 1024 * 1024 and not closed:
            try:
                writer.write(batch)
                await writer.drain()
            except (ConnectionError, OSError):
                closed = True
            sent += len(batch)
            closed = closed or receiver.connections == {}
        assert closed, "the receiver kept queueing replies for a peer that does not read"
        await wait(lambda: sink.error_count("protocol_error") == 1, what="count")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
