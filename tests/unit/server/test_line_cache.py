"""Cached per-stream lines: a render after any change is still prometheus_client's page.

The cache keeps label prefixes, value texts and whole chunks between scrapes; these
tests change what the cache keyed on (values, streams added and removed, labels that
would need escaping, values equal as floats but written differently) and compare each
page with prometheus_client's own encoders on the same registry.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from nova_testing.live_metrics import REGION, Live, live_metrics
from nova_testing.live_metrics import stream_id as sid
from streaming_metrics import _exposition as exposition
from streaming_metrics._exposition import Exposition, Render, Request, Response
from streaming_metrics._line_cache import LineCache

TEXT = "text/plain;version=0.0.4"
OPENMETRICS = "application/openmetrics-text;version=1.0.0"


@dataclass
class Family:
    """A column family as the cache reads it."""

    sample_name: str
    label_names: tuple[str, ...]
    columns: tuple[list[str], ...]
    values: list[float]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 64 rows, so a 1k-stream family spans many chunks."""
    monkeypatch.setattr(exposition, "_LINES_PER_CHUNK", 64)


@pytest.fixture
def live() -> Iterator[Live]:
    """A StreamingMetrics with 1k streams on a settable clock."""
    with live_metrics(1_000) as made:
        yield made


def render(expo: Exposition, accept: str, encoding: str = "identity") -> Response:
    planned = expo.plan(Request("GET", "/metrics", accept=accept, accept_encoding=encoding))
    assert isinstance(planned, Render)
    return planned.run()


def assert_pages_match(expo: Exposition, registry: CollectorRegistry) -> None:
    assert render(expo, TEXT).body == generate_latest(registry)
    assert render(expo, OPENMETRICS).body == generate_openmetrics(registry)


@pytest.mark.usefixtures("small_chunks")
def test_pages_match_through_changes(
    live: Live,
) -> None:
    """Unchanged, values changed, streams added, ended and forgotten: always identical."""
    metrics, registry, now = live
    expo = Exposition(registry, None)
    assert_pages_match(expo, registry)
    assert_pages_match(expo, registry)  # every chunk from the cache
    for n in range(0, 1_000, 97):  # a few values in a few chunks
        metrics.record_websocket_connection(sid(n))
        metrics.record_quality_bitrate(sid(n), "720p", 2500.25 + n)
        metrics.record_frame_drops(sid(n), n + 1)
    assert_pages_match(expo, registry)
    for n in range(1_000, 1_200):  # new streams at the end
        metrics.record_stream_started(sid(n), REGION)
        metrics.record_websocket_connection(sid(n))
    assert_pages_match(expo, registry)
    for n in range(10, 400, 3):  # stream_info rows leave from the middle
        metrics.record_stream_ended(sid(n), REGION, 5.0, 0)
    assert_pages_match(expo, registry)
    now[0] += 2.0  # past the linger: every row of those streams leaves, later ones shift
    assert_pages_match(expo, registry)
    for n in range(1_000):  # every value changes
        metrics.record_viewer_count_change(sid(n), 1, REGION)
        metrics.record_websocket_connection(sid(n))
    assert_pages_match(expo, registry)


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS])
def test_gzip_page_is_the_encoders_page(live: Live, accept: str) -> None:
    """With gzip, the body decompresses to prometheus_client's page, every time."""
    _, registry, _ = live
    expo = Exposition(registry, None)
    expected = (generate_latest if accept == TEXT else generate_openmetrics)(registry)
    for _ in range(2):
        response = render(expo, accept, "gzip")
        assert ("Content-Encoding", "gzip") in response.headers
        assert gzip.decompress(response.body) == expected


def test_chunks_unchanged_are_reused_and_changed_ones_rebuilt() -> None:
    """A chunk whose rows and values are as before is the same object; others are new."""
    cache = LineCache()
    family = Family("demo_x", ("stream_id",), ([f"s{i}" for i in range(10)],), [1.0] * 10)
    first = list(cache.chunks(family, 4) or [])
    family.values = [1.0] * 5 + [2.0] + [1.0] * 4
    second = list(cache.chunks(family, 4) or [])
    assert second[0] is first[0] and second[2] is first[2]
    assert second[1] is not first[1]
    assert second[1] == b"".join(
        f'demo_x{{stream_id="s{i}"}} {2.0 if i == 5 else 1.0}\n'.encode() for i in range(4, 8)
    )


def test_values_equal_as_floats_keep_their_own_text() -> None:
    """-0.0 and 0.0 are equal but written apart; NaN and infinities as Go writes them."""
    cache = LineCache()
    family = Family("demo_x", ("stream_id",), (["a", "b", "c", "d"],), [0.0, -0.0, 1e7, 1.5])
    assert b"".join(cache.chunks(family, 2) or []) == (
        b'demo_x{stream_id="a"} 0.0\ndemo_x{stream_id="b"} -0.0\n'
        b'demo_x{stream_id="c"} 1e+07\ndemo_x{stream_id="d"} 1.5\n'
    )
    family.values = [-0.0, 0.0, math.inf, math.nan]
    assert b"".join(cache.chunks(family, 2) or []) == (
        b'demo_x{stream_id="a"} -0.0\ndemo_x{stream_id="b"} 0.0\n'
        b'demo_x{stream_id="c"} +Inf\ndemo_x{stream_id="d"} NaN\n'
    )


def test_labels_sorted_by_name_and_escaping_left_to_prometheus_client() -> None:
    """Labels are written in name order; a value needing escapes gives None."""
    cache = LineCache()
    family = Family("demo_y", ("b", "a"), (["x", "y"], ["1", "2"]), [1.0, 2.0])
    assert b"".join(cache.chunks(family, 10) or []) == (
        b'demo_y{a="1",b="x"} 1.0\ndemo_y{a="2",b="y"} 2.0\n'
    )
    family.columns = (["x", 'q"uote'], ["1", "2"])
    assert cache.chunks(family, 10) is None
