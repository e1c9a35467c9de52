"""AMF0 encoding and bounded decoding."""

from __future__ import annotations

import struct

import pytest

from nova_streaming.ingest import amf0
from nova_streaming.ingest.errors import AmfError, RtmpProtocolError


def test_round_trip_of_every_supported_type() -> None:
    """Numbers, booleans, strings, null, undefined, objects and arrays survive a round trip."""
    values = [1.5, True, False, "publish", None, amf0.UNDEFINED, {"a": 1.0, "b": [2.0, "x"]}]
    assert amf0.decode(amf0.encode(*values)) == values


def test_long_string_and_ecma_array() -> None:
    """Strings over 65535 bytes use the long-string marker; ECMA arrays decode to dicts."""
    text = "x" * 70000
    encoded = amf0.encode(text)
    assert encoded[0] == amf0.LONG_STRING
    assert amf0.decode(encoded) == [text]
    assert amf0.decode(amf0.encode_ecma_array({"height": 720, "fps": 30.0})) == [
        {"height": 720.0, "fps": 30.0}
    ]


def test_date_typed_object_and_ecma_count_ignored() -> None:
    """Dates decode to milliseconds, typed objects to dicts; ECMA counts are advisory."""
    date = bytes((amf0.DATE,)) + struct.pack(">d", 1000.0) + b"\x00\x00"
    typed = (
        bytes((amf0.TYPED_OBJECT,)) + b"\x00\x01C" + b"\x00\x01k" + amf0.encode(1) + b"\x00\x00\x09"
    )
    ecma = (
        bytes((amf0.ECMA_ARRAY,))
        + struct.pack(">I", 99)
        + b"\x00\x01k"
        + amf0.encode("v")
        + b"\x00\x00\x09"
    )
    assert amf0.decode(date + typed + ecma) == [1000.0, {"k": 1.0}, {"k": "v"}]


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02",  # truncated number
        b"\x02\x00\x05ab",  # truncated string
        b"\x03\x00\x01k",  # object missing value and end marker
        b"\x0a\xff\xff\xff\xff\x05",  # strict array count beyond the message
        b"\x07\x00\x01",  # reference
        b"\x11",  # AMF3 switch
        b"\x42",  # unknown marker
    ],
)
def test_malformed_input_raises_amf_error(data: bytes) -> None:
    """Malformed AMF0 raises AmfError (a RtmpProtocolError), never another exception."""
    with pytest.raises(AmfError) as info:
        amf0.decode(data)
    assert isinstance(info.value, RtmpProtocolError)


def test_nesting_depth_capped() -> None:
    """Objects nested deeper than max_depth are refused instead of recursing without bound."""
    deep = b"\x03\x00\x01k" * 50 + b"\x05" + b"\x00\x00\x09" * 50
    assert amf0.decode(deep, max_depth=64)
    with pytest.raises(AmfError, match="nesting"):
        amf0.decode(deep, max_depth=10)


def test_invalid_utf8_is_replaced_not_raised() -> None:
    """A string with invalid UTF-8 decodes with replacement characters."""
    assert amf0.decode(b"\x02\x00\x02\xff\xfe") == ["\ufffd\ufffd"]


def test_encode_rejects_unknown_types() -> None:
    """Encoding an unsupported Python type is a TypeError naming the type."""
    with pytest.raises(TypeError, match="set"):
        amf0.encode({1, 2})  # type: ignore[arg-type]
