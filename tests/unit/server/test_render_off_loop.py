"""The render's loop-friendliness (GC paused, GIL released) changes nothing visible.

The page must stay byte for byte what prometheus_client makes from the same registry,
and the garbage collector's switch must be exactly as the application left it after
any render: plain, failed, nested or overlapping.
"""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Iterable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from streaming_metrics import StreamingMetrics
from streaming_metrics._exposition import (
    _GC_PAUSE,
    Exposition,
    Render,
    Request,
    Response,
    _One,
    _Yielding,
)

TEXT = "text/plain;version=0.0.4"
OPENMETRICS = "application/openmetrics-text;version=1.0.0"
REGION = "eu-west-1"
WAIT_S = 30.0


@pytest.fixture(autouse=True)
def gc_state() -> Iterator[None]:
    """Every test starts with automatic GC on and leaves it as it found it."""
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()


@pytest.fixture
def populated() -> CollectorRegistry:
    """1k active streams through the library plus ordinary client metrics."""
    registry = CollectorRegistry()
    now = [1000.0]
    metrics = StreamingMetrics(registry, regions=[REGION], clock=lambda: now[0])
    for n in range(1_000):
        sid = str(uuid.UUID(int=n + 1, version=4))
        metrics.record_stream_started(sid, REGION)
        metrics.record_websocket_connection(sid)
        metrics.record_viewer_count_change(sid, n, REGION)
        if n % 10 == 0:
            metrics.record_quality_bitrate(sid, "720p", 2500.5)
            # Slow frames: exemplars naming the stream, and a lag once the second closes.
            metrics.record_rtmp_frame_latency("720p", 0.3 + n / 10_000, sid)
            metrics.record_frame_drops(sid, n + 1)
    now[0] += 1.0
    for n in range(0, 1_000, 10):
        metrics.record_rtmp_frame_latency("1080p", 2.5, str(uuid.UUID(int=n + 1, version=4)))
    metrics.record_rtmp_frame_latency("720p", 0.045)
    metrics.record_broadcast_error("timeout")
    Gauge("demo_temperature_celsius", "Demo gauge.", registry=registry).set(21.5)
    Counter("demo_requests", "Demo counter.\nTwo lines.", ["path"], registry=registry).labels(
        'a"b\\c'
    ).inc()
    Histogram("demo_latency_seconds", "Demo histogram.", registry=registry).observe(0.2)
    return registry


def render(registry: CollectorRegistry, accept: str, query: str = "") -> Response:
    """One /metrics render through the shared exposition code."""
    planned = Exposition(registry, None).plan(
        Request("GET", "/metrics", query=query, accept=accept, accept_encoding="identity")
    )
    assert isinstance(planned, Render)
    return planned.run()


class _Probe:
    """A collector that runs a callback while the registry is being collected."""

    def __init__(self, during: object) -> None:
        self._during = during

    def collect(self) -> Iterable[Metric]:
        assert callable(self._during)
        self._during()
        return []


@pytest.mark.parametrize(
    ("accept", "encoder"), [(TEXT, generate_latest), (OPENMETRICS, generate_openmetrics)]
)
def test_page_identical_to_prometheus_client(
    populated: CollectorRegistry, accept: str, encoder: object
) -> None:
    """At 1k streams the page equals prometheus_client's own, text and OpenMetrics."""
    assert callable(encoder)
    expected = encoder(populated)
    assert expected.count(b"\n") > 3_000
    response = render(populated, accept)
    assert response.status == 200
    assert response.body == expected


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
        "application/openmetrics-text;version=1.0.0;escaping=dots",
        "application/openmetrics-text;version=1.0.0;escaping=values",
        "text/plain;version=1.0.0;escaping=allow-utf-8",
        "text/plain;version=1.0.0;escaping=dots",
        "application/openmetrics-text",
        "",
    ],
)
def test_page_identical_for_every_escaping(populated: CollectorRegistry, accept: str) -> None:
    """Whatever format and escaping the Accept header picks, the page is the encoder's."""
    encoder, _ = choose_encoder(accept)
    response = render(populated, accept)
    assert response.status == 200
    assert response.body == encoder(populated)


def test_stream_families_write_their_own_lines(populated: CollectorRegistry) -> None:
    """Each per-stream family writes lines equal to what prometheus_client makes of it."""
    written = 0
    for metric in populated.collect():
        make_lines = getattr(metric, "exposition_lines", None)
        if make_lines is None:
            continue
        lines = "".join(make_lines(7))
        expected = generate_latest(_One(metric)).decode().split("\n", 2)[2]
        assert lines == expected
        written += lines.count("\n")
    # connections, peaks, stream_info and frame drops for 1k streams; a bitrate and a
    # lag for every 10th.
    assert written == 4_200


def test_stream_family_with_replaced_samples_uses_them(populated: CollectorRegistry) -> None:
    """A per-stream family whose samples someone replaced is encoded from those."""
    for metric in populated.collect():
        if metric.name == "nova_streaming_stream_info":
            metric.samples = metric.samples[:1]
            assert metric.exposition_lines() is None  # type: ignore[attr-defined]
            assert generate_latest(_One(metric)).count(b"\n") == 3
            return
    raise AssertionError("no stream_info family")


@pytest.mark.parametrize("every", [1, 7, 100, 10_000])
@pytest.mark.parametrize("encoder", [generate_latest, generate_openmetrics])
def test_yielding_collector_preserves_page(
    populated: CollectorRegistry, every: int, encoder: object
) -> None:
    """Releasing the GIL every N samples (across family borders) changes no byte."""
    assert callable(encoder)
    assert encoder(_Yielding(populated, every, slice_s=0.0, handoff_s=0.0)) == encoder(populated)


def test_yielding_leaves_collector_metrics_untouched() -> None:
    """A collector that reuses its Metric objects gets them back unchanged."""
    metric = Metric("demo_cached", "Cached family.", "gauge")
    metric.add_sample("demo_cached", {"k": "v"}, 1.0)
    samples = metric.samples

    class Cached:
        def collect(self) -> Iterable[Metric]:
            return [metric]

    first = generate_latest(_Yielding(Cached(), 1, slice_s=0.0, handoff_s=0.0))
    assert metric.samples is samples
    again = generate_latest(_Yielding(Cached(), 1, slice_s=0.0, handoff_s=0.0))
    assert again == first == generate_latest(Cached())


def test_name_filter_still_filters(populated: CollectorRegistry) -> None:
    """name[] keeps whole families and sample names through the yielding render."""
    body = render(
        populated,
        TEXT,
        "name[]=nova_streaming_stream_info&name[]=demo_latency_seconds_count",
    ).body.decode()
    lines = [line for line in body.splitlines() if not line.startswith("#")]
    assert len(lines) == 1_001
    assert sum(line.startswith("nova_streaming_stream_info{") for line in lines) == 1_000
    assert "demo_latency_seconds_count 1.0" in lines


def test_gc_paused_during_render_and_restored(populated: CollectorRegistry) -> None:
    """Automatic GC is off while the registry is collected and on again afterwards."""
    seen: list[bool] = []
    populated.register(_Probe(lambda: seen.append(gc.isenabled())))
    assert render(populated, OPENMETRICS).status == 200
    assert seen == [False]
    assert gc.isenabled()


def test_gc_restored_after_failing_collector(populated: CollectorRegistry) -> None:
    """A collector that raises gives a 500 and still leaves GC on."""

    def boom() -> None:
        raise RuntimeError("collector broke")

    populated.register(_Probe(boom))
    assert render(populated, TEXT).status == 500
    assert gc.isenabled()


def test_gc_left_disabled_when_application_disabled_it(populated: CollectorRegistry) -> None:
    """An application that turned GC off finds it off after renders, failed ones too."""
    gc.disable()
    assert render(populated, TEXT).status == 200
    assert not gc.isenabled()

    def boom() -> None:
        raise RuntimeError("collector broke")

    populated.register(_Probe(boom))
    assert render(populated, TEXT).status == 500
    assert not gc.isenabled()


def test_nested_pause_on_one_thread() -> None:
    """Nested pauses on one thread turn GC back on only when the outer one ends."""
    with _GC_PAUSE:
        with _GC_PAUSE:
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_renders_restore_gc(populated: CollectorRegistry) -> None:
    """Two renders on two threads, the first ending last: GC stays off until both end."""
    first_inside = threading.Event()
    second_done = threading.Event()
    seen_after_second: list[bool] = []
    results: dict[str, int] = {}
    errors: list[BaseException] = []

    def hold() -> None:
        # Only the first render blocks; the second one passes straight through.
        if not first_inside.is_set():
            first_inside.set()
            if not second_done.wait(WAIT_S):
                raise AssertionError("second render did not finish")
            seen_after_second.append(gc.isenabled())

    populated.register(_Probe(hold))
    exposition = Exposition(populated, None)

    def scrape(key: str) -> None:
        try:
            planned = exposition.plan(Request("GET", "/metrics", accept=TEXT))
            assert isinstance(planned, Render)
            results[key] = planned.run().status
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=scrape, args=("first",))
    first.start()
    try:
        assert first_inside.wait(WAIT_S), "first render did not start"
        scrape("second")
        # The first render still runs, so collection must still be paused.
        assert not gc.isenabled()
        second_done.set()
    finally:
        second_done.set()
        first.join(WAIT_S)
    assert not first.is_alive()
    assert not errors
    assert results == {"first": 200, "second": 200}
    assert seen_after_second == [False]
    assert gc.isenabled()
