"""A crafted RTMP publisher: the client side of the handshake and publish commands, then
media messages with timestamps the test chooses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import Callable

from nova_streaming.ingest import amf0
from nova_streaming.ingest.chunks import (
    MSG_AUDIO,
    MSG_COMMAND_AMF0,
    MSG_DATA_AMF0,
    MSG_SET_CHUNK_SIZE,
    MSG_VIDEO,
    ChunkReader,
    ChunkWriter,
    Message,
    control_message,
)

WAIT_SECONDS = 15.0


class RtmpPublisher:
    """A crafted RTMP client: handshake, connect/createStream/publish, then media with
    timestamps chosen by the test.

    Example::

        pub = await RtmpPublisher.open(receiver_port)
        await pub.publish(stream_id)
        pub.video(0, keyframe=True)
        await pub.drain()
        await pub.close()
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.chunks = ChunkWriter()
        self.incoming = ChunkReader()
        self.messages: list[Message] = []

    @classmethod
    async def open(cls, port: int) -> RtmpPublisher:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def handshake(self) -> None:
        c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
        self.writer.write(b"\x03" + c1)
        s0s1s2 = await asyncio.wait_for(self.reader.readexactly(1 + 1536 * 2), WAIT_SECONDS)
        assert s0s1s2[0] == 3
        self.writer.write(s0s1s2[1 : 1 + 1536])  # C2 echoes S1

    async def _until(self, predicate: Callable[[Message], bool]) -> Message:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            for msg in self.messages:
                if predicate(msg):
                    self.messages.remove(msg)
                    return msg
            data = await asyncio.wait_for(self.reader.read(65536), deadline - time.monotonic())
            if not data:
                raise ConnectionError("receiver closed the connection")
            self.messages.extend(self.incoming.feed(data))

    async def command(self, *values: object, stream_id: int = 0) -> None:
        body = amf0.encode(*values)  # type: ignore[arg-type]
        self.writer.write(self.chunks.message(3, MSG_COMMAND_AMF0, stream_id, 0, body))
        await self.writer.drain()

    async def result(self, name: str) -> list[amf0.AmfValue]:
        msg = await self._until(
            lambda m: m.type_id == MSG_COMMAND_AMF0 and amf0.decode(m.payload)[0] == name
        )
        return amf0.decode(msg.payload)

    async def publish(self, name: str, *, chunk_size: int = 4096) -> None:
        """Handshake, connect, createStream, publish; waits for the replies."""
        await self.handshake()
        if chunk_size != 128:
            self.writer.write(control_message(MSG_SET_CHUNK_SIZE, chunk_size))
            self.chunks.chunk_size = chunk_size
        await self.command("connect", 1, {"app": "live", "type": "nonprivate"})
        connect = await self.result("_result")
        assert connect[3]["code"] == "NetConnection.Connect.Success"  # type: ignore[index,call-overload]
        await self.command("createStream", 2, None)
        created = await self.result("_result")
        stream_id = int(created[3])  # type: ignore[arg-type]
        await self.command("publish", 3, None, name, "live", stream_id=stream_id)
        status = await self.result("onStatus")
        assert status[3]["code"] == "NetStream.Publish.Start"  # type: ignore[index,call-overload]

    async def metadata(self, values: dict[str, object], set_data_frame: bool = False) -> None:
        body = (
            (amf0.encode("@setDataFrame") if set_data_frame else b"")
            + amf0.encode("onMetaData")
            + amf0.encode_ecma_array(values)
        )
        self.writer.write(self.chunks.message(5, MSG_DATA_AMF0, 1, 0, body))
        await self.writer.drain()

    def video(self, timestamp: int, size: int = 2000, keyframe: bool = False) -> None:
        head = bytes((0x17 if keyframe else 0x27, 0x01, 0, 0, 0))
        self.writer.write(
            self.chunks.message(6, MSG_VIDEO, 1, timestamp, head + bytes(max(size - 5, 0)))
        )

    def video_config(self, timestamp: int = 0) -> None:
        self.writer.write(self.chunks.message(6, MSG_VIDEO, 1, timestamp, b"\x17\x00\x00\x00\x00"))

    def audio(self, timestamp: int, size: int = 300) -> None:
        self.writer.write(
            self.chunks.message(4, MSG_AUDIO, 1, timestamp, b"\xaf\x01" + bytes(size - 2))
        )

    async def drain(self) -> None:
        await self.writer.drain()

    async def closed_by_peer(self) -> bool:
        """True once the receiver has closed the connection (EOF or reset)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), WAIT_SECONDS):
                pass
        except (ConnectionError, OSError):
            return True
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
