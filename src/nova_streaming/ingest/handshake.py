"""Server side of the plain RTMP handshake, sans-IO.

Feed the bytes a client sends; the handshake answers C0+C1 with S0+S1+S2 and
completes once C2 has arrived. S1 carries a zero version (the plain, unsigned form,
which nginx-rtmp's push client accepts) and C2 is not checked (nginx's C2 does not
echo S1). Any version byte other than 3 is refused.

Example::

    >>> hs = ServerHandshake()
    >>> out, rest = hs.receive(b"\\x03" + bytes(1536))
    >>> len(out), hs.done
    (3073, False)
    >>> out, rest = hs.receive(bytes(1536) + b"after")
    >>> hs.done, rest
    (True, b'after')
"""

from __future__ import annotations

import os
import struct
import time

from nova_streaming.ingest.errors import HandshakeError

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536


class ServerHandshake:
    """The handshake state machine: ``receive(data) -> (reply bytes, leftover bytes)``.

    ``leftover`` is what followed C2 in the same read (the first chunks); ``done``
    turns true once C2 is complete.

    Example::

        >>> ServerHandshake().done
        False
    """

    __slots__ = ("_buf", "_epoch", "_stage", "done")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._stage = 0  # 0: waiting C0+C1, 1: waiting C2
        self._epoch = time.monotonic()
        self.done = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed (never above C0+C1)."""
        return len(self._buf)

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Consume client bytes; return the reply to send and any bytes after C2."""
        if self.done:
            return b"", bytes(data)
        buf = self._buf
        reply = b""
        if self._stage == 0:
            if not buf and data and data[0] != RTMP_VERSION:
                raise HandshakeError(
                    f"handshake: unsupported RTMP version byte 0x{data[0]:02x} (want 3)"
                )
            need = 1 + HANDSHAKE_SIZE - len(buf)
            buf += data[:need]
            data = data[need:]
            if len(buf) < 1 + HANDSHAKE_SIZE:
                return b"", b""
            c1 = bytes(buf[1:])
            uptime = int((time.monotonic() - self._epoch) * 1000) & 0xFFFFFFFF
            s1 = struct.pack(">II", uptime, 0) + os.urandom(HANDSHAKE_SIZE - 8)
            # S2 echoes C1 (time, then time2 = when we read it, then C1's random bytes).
            s2 = c1[:4] + struct.pack(">I", uptime) + c1[8:]
            reply = bytes((RTMP_VERSION,)) + s1 + s2
            buf.clear()
            self._stage = 1
        need = HANDSHAKE_SIZE - len(buf)
        buf += data[:need]
        rest = data[need:]
        if len(buf) < HANDSHAKE_SIZE:
            return reply, b""
        buf.clear()
        self.done = True
        return reply, bytes(rest)
