"""The client side of the WebSocket wire, as the raw load clients speak it: the HTTP
upgrade request, frames cut from a receive buffer, and the masked pong and close
frames a client sends (:mod:`bench._ws_clients`, :mod:`chaos._viewer_fleet`).

No task or object per frame: a protocol's ``data_received`` appends to its buffer and
takes whole frames off the front.

Example::

    >>> buf = bytearray(b"\\x81\\x02hi\\x89")
    >>> next_frame(buf), bytes(buf)
    ((1, b'hi'), b'\\x89')
    >>> next_frame(buf) is None
    True
"""

from __future__ import annotations

import base64
import os

OP_TEXT = 1
OP_CLOSE = 8
OP_PING = 9


def upgrade_request(host: str, port: int, path: str, key: str | None = None) -> bytes:
    """The HTTP/1.1 upgrade request for ``path`` (a random ``Sec-WebSocket-Key``
    unless ``key`` is given)."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def next_frame(buf: bytearray) -> tuple[int, bytes] | None:
    """Take the first whole frame off ``buf``: ``(opcode, payload)``, or None (and
    ``buf`` untouched) while it is incomplete. Server frames are never masked."""
    if len(buf) < 2:
        return None
    op = buf[0] & 0x0F
    size = buf[1] & 0x7F
    pos = 2
    if size == 126:
        if len(buf) < 4:
            return None
        size = int.from_bytes(buf[2:4], "big")
        pos = 4
    elif size == 127:
        if len(buf) < 10:
            return None
        size = int.from_bytes(buf[2:10], "big")
        pos = 10
    if len(buf) < pos + size:
        return None
    payload = bytes(buf[pos : pos + size])
    del buf[: pos + size]
    return op, payload


def _masked(opcode_byte: int, payload: bytes) -> bytes:
    # A client frame must be masked; an all-zero mask leaves the bytes as they are.
    return bytes((opcode_byte, 0x80 | len(payload))) + bytes(4) + payload


def pong(payload: bytes) -> bytes:
    """The pong answering a ping with ``payload`` (at most 125 bytes, as pings are)."""
    return _masked(0x8A, payload)


def close_frame(payload: bytes) -> bytes:
    """A close frame carrying ``payload`` (a 2-byte code, or empty)."""
    return _masked(0x88, payload)
