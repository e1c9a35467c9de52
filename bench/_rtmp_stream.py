"""A synthetic RTMP publisher's bytes: what nginx-rtmp's ``push`` sends, at 2.5 Mbit/s.

Handshake (C0+C1, then C2), SetChunkSize 4096 (nginx's ``chunk_size``), connect,
createStream, ``publish [null, name, 'live']``, a plain ``onMetaData`` (720p30), then
audio and video in presentation order: H.264 at 30 fps with a keyframe every 2 s (four
times an average frame) and AAC at 48 kHz (1024 samples a frame), together
:data:`STREAM_BITS_PER_SECOND`. The crafted publisher of the ingest integration tests
(``tests/integration/ingest/conftest.py``) builds its messages the same way; this is a
bench-private copy so the bench does not import from tests.

Example::

    >>> media = StreamPlan().media_ticks(seconds=2)
    >>> round(sum(len(b) for _, b in media) * 8 / 2 / 1e6, 1)
    2.5
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

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

STREAM_BITS_PER_SECOND = 2_500_000
FPS = 30
KEYFRAME_EVERY = 2 * FPS
KEYFRAME_WEIGHT = 4
AUDIO_BITS_PER_SECOND = 128_000
AUDIO_FRAMES_PER_SECOND = 48_000 / 1024
CHUNK_SIZE = 4096
PUBLISH_STREAM_ID = 1


def c0c1() -> bytes:
    """C0 and a plain C1 (zero version, random bytes)."""
    return b"\x03" + struct.pack(">II", 0, 0) + os.urandom(1528)


def c2_for(s0s1s2: bytes) -> bytes:
    """C2 answering the server's S0+S1+S2 (echoes S1)."""
    return s0s1s2[1 : 1 + 1536]


@dataclass
class StreamPlan:
    """The messages of one publish; ``writer`` keeps the chunk headers' state."""

    name: str = "00000000-0000-4000-8000-000000000000"
    writer: ChunkWriter = field(default_factory=ChunkWriter)
    _audio_done: int = 0

    def _command(self, stream_id: int, *values: object) -> bytes:
        body = amf0.encode(*values)  # type: ignore[arg-type]
        return self.writer.message(3, MSG_COMMAND_AMF0, stream_id, 0, body)

    def setup(self) -> list[bytes]:
        """SetChunkSize, connect, createStream, publish, onMetaData; one item per message
        (a client waits for the ``_result``s in between, nginx's push does too)."""
        chunk = control_message(MSG_SET_CHUNK_SIZE, CHUNK_SIZE)
        self.writer.chunk_size = CHUNK_SIZE
        connect = self._command(0, "connect", 1, {"app": "live", "type": "nonprivate"})
        create = self._command(0, "createStream", 2, None)
        publish = self._command(PUBLISH_STREAM_ID, "publish", 3, None, self.name, "live")
        meta = amf0.encode("onMetaData") + amf0.encode_ecma_array(
            {
                "width": 1280.0,
                "height": 720.0,
                "framerate": float(FPS),
                "videodatarate": (STREAM_BITS_PER_SECOND - AUDIO_BITS_PER_SECOND) / 1000,
                "audiodatarate": AUDIO_BITS_PER_SECOND / 1000,
                "videocodecid": 7.0,
                "audiocodecid": 10.0,
            }
        )
        metadata = self.writer.message(5, MSG_DATA_AMF0, PUBLISH_STREAM_ID, 0, meta)
        config = self.writer.message(6, MSG_VIDEO, PUBLISH_STREAM_ID, 0, b"\x17\x00\x00\x00\x00")
        aac = self.writer.message(4, MSG_AUDIO, PUBLISH_STREAM_ID, 0, b"\xaf\x00\x12\x10")
        return [chunk + connect, create, publish, metadata + config + aac]

    def frame(self, index: int) -> tuple[int, bytes]:
        """Video frame ``index`` and the audio frames due up to it: (timestamp ms, bytes)."""
        video_bytes = (STREAM_BITS_PER_SECOND - AUDIO_BITS_PER_SECOND) / 8 / FPS
        # Keyframes weigh KEYFRAME_WEIGHT average frames; the others share the rest.
        inter = video_bytes * KEYFRAME_EVERY / (KEYFRAME_EVERY - 1 + KEYFRAME_WEIGHT)
        keyframe = index % KEYFRAME_EVERY == 0
        size = int(inter * (KEYFRAME_WEIGHT if keyframe else 1))
        ts = index * 1000 // FPS
        head = bytes((0x17 if keyframe else 0x27, 0x01, 0, 0, 0))
        out = bytearray(
            self.writer.message(6, MSG_VIDEO, PUBLISH_STREAM_ID, ts, head + bytes(size - 5))
        )
        audio_size = int(AUDIO_BITS_PER_SECOND / 8 / AUDIO_FRAMES_PER_SECOND)
        due = int((index + 1) / FPS * AUDIO_FRAMES_PER_SECOND)
        while self._audio_done < due:
            ats = int(self._audio_done * 1000 / AUDIO_FRAMES_PER_SECOND)
            payload = b"\xaf\x01" + bytes(audio_size - 2)
            out += self.writer.message(4, MSG_AUDIO, PUBLISH_STREAM_ID, ats, payload)
            self._audio_done += 1
        return ts, bytes(out)

    def media_ticks(self, seconds: float, start: int = 0) -> list[tuple[int, bytes]]:
        """``seconds`` of media, one item per video frame interval."""
        return [self.frame(i) for i in range(start, start + int(seconds * FPS))]

    def frames(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Media forever, one item per video frame interval."""
        index = start
        while True:
            yield self.frame(index)
            index += 1
