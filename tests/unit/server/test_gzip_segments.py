"""Reused compressed segments: a gzip body is always one valid gzip member of the page.

A gzip render keeps the compressed form of each large part (a chunk of per-stream lines
the line cache reused is the same ``bytes`` object) and reuses it in the next render.
These tests change the registry between gzip renders and check, every time, that the
body is a single gzip member (CRC and length checked by the decoder) of exactly
prometheus_client's page, and that unchanged chunks really were reused.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from nova_testing.live_metrics import REGION, Live, live_metrics
from nova_testing.live_metrics import stream_id as sid
from streaming_metrics import _exposition as exposition
from streaming_metrics._exposition import Exposition, Render, Request, Response

TEXT = "text/plain;version=0.0.4"
OPENMETRICS = "application/openmetrics-text;version=1.0.0"


@pytest.fixture
def live() -> Iterator[Live]:
    """3k streams (several chunks of 1,000 lines per family) on a settable clock."""
    with live_metrics(3_000) as made:
        yield made


def render_gzip(expo: Exposition, accept: str) -> Response:
    planned = expo.plan(Request("GET", "/metrics", accept=accept, accept_encoding="gzip"))
    assert isinstance(planned, Render)
    response = planned.run()
    assert ("Content-Encoding", "gzip") in response.headers
    return response


def one_member(body: bytes) -> bytes:
    """The data of ``body``, which must be exactly one complete gzip member."""
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = decoder.decompress(body) + decoder.flush()
    assert decoder.eof and decoder.unused_data == b""
    assert gzip.decompress(body) == data  # CRC-32 and length trailer checked
    return data


def segments(expo: Exposition) -> dict[int, tuple[bytes, bytes]]:
    return dict(expo._segments.last)


def reused(before: dict[int, tuple[bytes, bytes]], after: dict[int, tuple[bytes, bytes]]) -> int:
    """Segments of ``after`` that are the very objects ``before`` made."""
    return sum(
        1
        for key, (part, segment) in after.items()
        if key in before and before[key][0] is part and before[key][1] is segment
    )


@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS])
@pytest.mark.parametrize("segment_bytes", [exposition._SEGMENT_BYTES, 1_024])
def test_gzip_bodies_through_changes(
    live: Live,
    monkeypatch: pytest.MonkeyPatch,
    accept: str,
    segment_bytes: int,
) -> None:
    """Unchanged, a few values changed, streams added, ended and expired: every body
    is one gzip member of the encoder's page; unchanged chunks reuse their segment."""
    monkeypatch.setattr(exposition, "_SEGMENT_BYTES", segment_bytes)
    metrics, registry, now = live
    expo = Exposition(registry, None)
    encode = generate_latest if accept == TEXT else generate_openmetrics

    def check() -> dict[int, tuple[bytes, bytes]]:
        assert one_member(render_gzip(expo, accept).body) == encode(registry)
        return segments(expo)

    first = check()
    chunks = 3 * 4  # 3 chunks of 1,000 lines: connections, peak, info, drops
    assert len(first) >= chunks
    assert reused(first, check()) >= chunks  # all chunks reused, unchanged
    again = segments(expo)
    # The last line of two chunks of one family: the chunk after each, reused, must not
    # refer back to the old text (each segment ends with a full flush).
    for n in (999, 1_999):
        metrics.record_websocket_connection(sid(n))
    assert chunks - 2 <= reused(again, check()) < chunks
    for n in range(3_000, 3_300):
        metrics.record_stream_started(sid(n), REGION)
    check()
    for n in range(0, 2_000, 7):
        metrics.record_stream_ended(sid(n), REGION, 5.0, 0)
    check()
    now[0] += 2.0  # past the linger: rows leave, later ones shift between chunks
    check()
    check()


def test_text_and_openmetrics_renders_alternate(
    live: Live,
) -> None:
    """Two formats scraped in turn share chunks and segments: each body stays its own."""
    _, registry, _ = live
    expo = Exposition(registry, None)
    for _ in range(2):
        assert one_member(render_gzip(expo, TEXT).body) == generate_latest(registry)
        assert one_member(render_gzip(expo, OPENMETRICS).body) == generate_openmetrics(registry)


def test_a_part_equal_but_not_identical_is_compressed_afresh() -> None:
    """Reuse is by identity: a new part that happens to be equal is compressed again
    (and stays correct), and a part list of only small parts has no segments."""
    kept = exposition.GzipSegments()
    yielding = exposition._Yielding(CollectorRegistry())
    big = b"x 1.0\n" * 10_000
    body = b"".join(exposition._compress([b"# head\n", big, b"tail\n"], yielding, kept))
    assert gzip.decompress(body) == b"# head\n" + big + b"tail\n"
    (entry,) = kept.last.values()
    assert entry[0] is big
    twin = bytes(bytearray(big))
    body = b"".join(exposition._compress([twin], yielding, kept))
    assert gzip.decompress(body) == twin
    (entry,) = kept.last.values()
    assert entry[0] is twin
    body = b"".join(exposition._compress([b"a\n", b"b\n"], yielding, kept))
    assert gzip.decompress(body) == b"a\nb\n" and kept.last == {}
