"""AMF0: the value encoding of RTMP commands and ``onMetaData``.

Decoding is bounded: every length is checked against the bytes actually present before
anything is allocated, nesting is capped, and any malformed input raises
:class:`~nova_streaming.ingest.errors.AmfError`, never another exception.

Example::

    >>> data = encode("connect", 1.0, {"app": "live"})
    >>> decode(data)
    ['connect', 1.0, {'app': 'live'}]
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Final, TypeAlias

from nova_streaming.ingest.errors import AmfError

AmfValue: TypeAlias = "float | bool | str | Undefined | dict[str, AmfValue] | list[AmfValue] | None"
# What :func:`encode` accepts: decoded values, plus the ints, mappings and sequences that
# callers build replies from (converted on the way out).
Encodable: TypeAlias = "AmfValue | int | Mapping[str, object] | Sequence[object]"


class Undefined:
    """AMF0's ``undefined`` (distinct from ``null``, which decodes to ``None``).

    Example::

        >>> decode(encode(UNDEFINED)) == [UNDEFINED]
        True
    """

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = Undefined()

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED_MARKER = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_OBJECT_END_BYTES = b"\x00\x00\x09"


def decode(data: bytes | bytearray | memoryview, *, max_depth: int = 32) -> list[AmfValue]:
    """Decode a sequence of AMF0 values (a whole command or data message body).

    Raises ``AmfError`` on anything malformed.

    Example::

        >>> decode(b"\\x05\\x01\\x01")
        [None, True]
    """
    reader = _Reader(bytes(data), max_depth)
    values: list[AmfValue] = []
    while reader.pos < len(reader.data):
        values.append(reader.value(0))
    return values


class _Reader:
    __slots__ = ("data", "max_depth", "pos")

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth

    def _need(self, n: int) -> int:
        start = self.pos
        if n > len(self.data) - start:
            raise AmfError(f"amf0: truncated value at offset {start} (need {n} bytes)")
        self.pos = start + n
        return start

    def _string(self, long: bool = False) -> str:
        if long:
            length = _U32.unpack_from(self.data, self._need(4))[0]
        else:
            length = _U16.unpack_from(self.data, self._need(2))[0]
        start = self._need(length)
        # Replacement keeps a name with bad UTF-8 decodable; it then fails validation
        # (UUID check) with a specific message instead of a generic decode error.
        return self.data[start : start + length].decode("utf-8", "replace")

    def _properties(self, depth: int) -> dict[str, AmfValue]:
        props: dict[str, AmfValue] = {}
        data = self.data
        while True:
            if data.startswith(_OBJECT_END_BYTES, self.pos):
                self.pos += 3
                return props
            key = self._string()
            props[key] = self.value(depth + 1)

    def value(self, depth: int) -> AmfValue:
        if depth > self.max_depth:
            raise AmfError(f"amf0: nesting deeper than {self.max_depth}")
        marker = self.data[self._need(1)]
        if marker == NUMBER:
            return float(_DOUBLE.unpack_from(self.data, self._need(8))[0])
        if marker == BOOLEAN:
            return self.data[self._need(1)] != 0
        if marker == STRING:
            return self._string()
        if marker == OBJECT:
            return self._properties(depth)
        if marker == NULL:
            return None
        if marker in (UNDEFINED_MARKER, UNSUPPORTED):
            return UNDEFINED
        if marker == ECMA_ARRAY:
            # The count is advisory (encoders get it wrong); the end marker decides.
            self._need(4)
            return self._properties(depth)
        if marker == STRICT_ARRAY:
            count = _U32.unpack_from(self.data, self._need(4))[0]
            if count > len(self.data) - self.pos:  # every value takes at least one byte
                raise AmfError(f"amf0: strict array of {count} items exceeds the message")
            return [self.value(depth + 1) for _ in range(count)]
        if marker == DATE:
            millis = _DOUBLE.unpack_from(self.data, self._need(10))[0]
            return float(millis)
        if marker in (LONG_STRING, XML_DOCUMENT):
            return self._string(long=True)
        if marker == TYPED_OBJECT:
            self._string()  # class name: irrelevant to ingest
            return self._properties(depth)
        if marker == REFERENCE:
            raise AmfError("amf0: object references are not supported")
        raise AmfError(f"amf0: unknown type marker 0x{marker:02x} at offset {self.pos - 1}")


def encode(*values: Encodable) -> bytes:
    """Encode values as AMF0 (ints become numbers, dicts objects, lists strict arrays).

    Example::

        >>> encode(None, "live")
        b'\\x05\\x02\\x00\\x04live'
    """
    out = bytearray()
    for value in values:
        _encode_into(out, value)
    return bytes(out)


def encode_ecma_array(props: Mapping[str, object]) -> bytes:
    """Encode a mapping as an AMF0 ECMA array (how encoders send ``onMetaData``).

    Example::

        >>> decode(encode_ecma_array({"height": 720}))
        [{'height': 720.0}]
    """
    out = bytearray((ECMA_ARRAY,))
    out += _U32.pack(len(props))
    _encode_props(out, props)
    return bytes(out)


def _encode_str(out: bytearray, text: str) -> None:
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise ValueError("amf0: property name longer than 65535 bytes")
    out += _U16.pack(len(raw))
    out += raw


def _encode_props(out: bytearray, props: Mapping[str, object]) -> None:
    for key, item in props.items():
        _encode_str(out, str(key))
        _encode_into(out, item)
    out += _OBJECT_END_BYTES


def _encode_into(out: bytearray, value: object) -> None:
    if value is None:
        out.append(NULL)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, bool):
        out += bytes((BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += _DOUBLE.pack(float(value))
    elif isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            out.append(LONG_STRING)
            out += _U32.pack(len(raw))
        else:
            out.append(STRING)
            out += _U16.pack(len(raw))
        out += raw
    elif isinstance(value, Mapping):
        out.append(OBJECT)
        _encode_props(out, value)
    elif isinstance(value, list | tuple):
        out.append(STRICT_ARRAY)
        out += _U32.pack(len(value))
        for item in value:
            _encode_into(out, item)
    else:
        raise TypeError(f"amf0: cannot encode {type(value).__name__}")
