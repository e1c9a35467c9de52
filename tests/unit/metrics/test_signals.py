"""Design section 10 in the library: latency exemplars, per-stream lag p95, frame drops."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import prometheus_client.metrics
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.samples import Exemplar

from streaming_metrics import StreamingMetrics, helpers
from streaming_metrics import definitions as d
from streaming_metrics._lag import CLOCK_EVERY, LagWindow

SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
OTHER_SID = "6f1c0a52-8d3e-4b7a-9c21-0e5d4f3a2b10"
REGION = "eu-west-1"
LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS.name
LAG = d.STREAM_INGEST_LAG_SECONDS.name
DROPS = d.STREAM_FRAME_DROPS.name


def exemplars(registry: CollectorRegistry, quality: str = "720p") -> dict[str, Exemplar]:
    """The latency buckets of ``quality`` that hold an exemplar, by ``le``."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if (
                sample.name == LATENCY + "_bucket"
                and sample.labels["quality"] == quality
                and sample.exemplar is not None
            ):
                found[sample.labels["le"]] = sample.exemplar
    return found


def lag(registry: CollectorRegistry, sid: str = SID) -> float | None:
    return registry.get_sample_value(LAG, {"stream_id": sid})


def test_slow_frame_leaves_its_stream_as_exemplar_of_its_bucket(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """A frame above the threshold (0.25 s) names its stream in the bucket it lands in."""
    metrics.record_rtmp_frame_latency("720p", 0.4, SID)
    found = exemplars(registry)
    assert list(found) == ["0.5"]
    assert found["0.5"].labels == {"stream_id": SID}
    assert found["0.5"].value == 0.4
    # Above every finite bound: the +Inf bucket holds it.
    metrics.record_rtmp_frame_latency("720p", 7.5, OTHER_SID)
    assert exemplars(registry)["+Inf"].labels == {"stream_id": OTHER_SID}


def test_fast_frames_leave_one_exemplar_in_n(
    make_metrics: Callable[..., StreamingMetrics], registry: CollectorRegistry
) -> None:
    """Below the threshold only every N-th frame with a stream id leaves an exemplar."""
    metrics = make_metrics(exemplar_sample_every=3)
    metrics.record_rtmp_frame_latency("720p", 0.02, SID)
    metrics.record_rtmp_frame_latency("720p", 0.02, SID)
    assert exemplars(registry) == {}
    metrics.record_rtmp_frame_latency("720p", 0.02, OTHER_SID)
    assert exemplars(registry)["0.025"].labels == {"stream_id": OTHER_SID}
    assert registry.get_sample_value(LATENCY + "_count", {"quality": "720p"}) == 3.0


def test_guide_call_and_disabled_options_leave_no_exemplar(
    make_metrics: Callable[..., StreamingMetrics], registry: CollectorRegistry
) -> None:
    """Two arguments: no exemplar. Threshold inf and sampling 0: none either."""
    metrics = make_metrics(exemplar_threshold_seconds=float("inf"), exemplar_sample_every=0)
    metrics.record_rtmp_frame_latency("720p", 5.0)
    for _ in range(300):
        metrics.record_rtmp_frame_latency("720p", 5.0, SID)
    assert exemplars(registry) == {}
    assert registry.get_sample_value(LATENCY + "_count", {"quality": "720p"}) == 301.0


def test_custom_threshold_and_stream_id_forms(
    make_metrics: Callable[..., StreamingMetrics], registry: CollectorRegistry
) -> None:
    """A lower threshold catches faster frames; a UUID object or upper case is normalised."""
    metrics = make_metrics(exemplar_threshold_seconds=0.01, exemplar_sample_every=0)
    metrics.record_rtmp_frame_latency("1080p", 0.02, uuid.UUID(SID))
    assert exemplars(registry, "1080p")["0.025"].labels == {"stream_id": SID}
    metrics.record_rtmp_frame_latency("1080p", 0.07, SID.upper())
    assert exemplars(registry, "1080p")["0.1"].labels == {"stream_id": SID}


def test_bad_stream_id_is_rejected_and_observes_nothing(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """A stream id that is not a UUID: the call changes nothing but the rejection count."""
    for bad in ("not-a-uuid", 42, ["x"]):
        metrics.record_rtmp_frame_latency("720p", 0.4, bad)  # type: ignore[arg-type]
    assert registry.get_sample_value(LATENCY + "_count", {"quality": "720p"}) == 0.0
    rejected = registry.get_sample_value(
        d.REJECTED_INPUTS.name, {"reason": d.REJECT_INVALID_STREAM_ID}
    )
    assert rejected == 3.0
    # Bad quality or value with a good stream id: the usual slow path, still rejected.
    metrics.record_rtmp_frame_latency("720p", float("nan"), SID)
    metrics.record_rtmp_frame_latency("Bad Quality", 0.1, SID)
    assert registry.get_sample_value(LATENCY + "_count", {"quality": "720p"}) == 0.0
    # An unknown quality with a stream id counts as `other`, exemplar and all.
    metrics.record_rtmp_frame_latency("8k", 0.3, SID)
    assert exemplars(registry, d.OTHER)["0.5"].labels == {"stream_id": SID}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("exemplar_threshold_seconds", -0.1),
        ("exemplar_threshold_seconds", float("nan")),
        ("exemplar_threshold_seconds", "0.25"),
        ("exemplar_sample_every", -1),
        ("exemplar_sample_every", 2.5),
        ("exemplar_sample_every", True),
    ],
)
def test_exemplar_options_are_checked(option: str, value: Any) -> None:
    """Bad exemplar options are configuration errors."""
    with pytest.raises(ValueError, match=option):
        StreamingMetrics(CollectorRegistry(), **{option: value})


def test_openmetrics_exemplar_is_prometheus_clients_syntax(
    metrics: StreamingMetrics, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The latency family in OpenMetrics is byte for byte a prometheus_client Histogram
    observed with the same exemplar; the text format carries no exemplar."""
    monkeypatch.setattr(prometheus_client.metrics.time, "time", lambda: 1_700_000_000.5)
    reference = CollectorRegistry()
    histogram = Histogram(
        LATENCY,
        d.RTMP_INGESTION_LATENCY_SECONDS.help,
        ["quality"],
        buckets=d.RTMP_INGESTION_LATENCY_SECONDS.buckets,
        registry=reference,
    )
    mine = StreamingMetrics(CollectorRegistry(), qualities=["720p"], exemplar_sample_every=0)
    for value in (0.02, 0.4, 3.0):
        mine.record_rtmp_frame_latency("720p", value, SID)
        if value > 0.25:
            histogram.labels("720p").observe(value, {"stream_id": SID})
        else:
            histogram.labels("720p").observe(value)
    histogram.labels(d.OTHER)

    def family(page: bytes) -> list[str]:
        return [line for line in page.decode().splitlines() if LATENCY in line]

    ours = family(generate_openmetrics(mine.registry))
    assert ours == family(generate_openmetrics(reference))
    assert sum(' # {stream_id="' in line for line in ours) == 2
    assert f'le="0.5",quality="720p"}} 2.0 # {{stream_id="{SID}"}} 0.4 1700000000.5' in "\n".join(
        ours
    )
    text = family(generate_latest(mine.registry))
    assert text == family(generate_latest(reference))
    assert not any("#" in line for line in text if not line.startswith("#"))


def test_helper_passes_the_stream_id(clean_default_registry: None) -> None:
    """helpers.record_rtmp_frame_latency takes the optional stream_id too."""
    metrics = StreamingMetrics(CollectorRegistry())
    helpers.set_default_metrics(metrics)
    helpers.record_rtmp_frame_latency("720p", 0.9, SID)
    helpers.record_rtmp_frame_latency("720p", 0.01)
    assert exemplars(metrics.registry)["1.0"].labels == {"stream_id": SID}


# --- per-stream lag -----------------------------------------------------------------------


def test_lag_is_the_p95_of_the_last_ten_seconds(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """p95 (nearest rank) over the frames of the last ten whole seconds, owner only.

    The hot path reads the clock every CLOCK_EVERY frames of a stream: seconds here
    hold multiples of it, so every read falls on a second's first frame.
    """
    metrics.record_stream_started(SID, REGION)
    clock.now = 2000.0

    def frames(count: int, value: float = 0.0) -> None:
        for _ in range(count):
            metrics.record_rtmp_frame_latency("720p", value, SID)

    # 100 frames with lags 0.01 .. 1.00 in one second.
    for n in range(1, 101):
        metrics.record_rtmp_frame_latency("720p", n / 100, SID)
    assert lag(registry) is None  # the second is still open
    clock.advance(1.0)
    frames(CLOCK_EVERY)
    assert lag(registry) == pytest.approx(0.95)
    # Nine more seconds of 100 fast frames: the slow second still counts.
    frames(100 - CLOCK_EVERY)
    for _ in range(8):
        clock.advance(1.0)
        frames(100)
    clock.advance(1.0)
    frames(CLOCK_EVERY)
    # 1000 frames in the window, 900 at 0 and 100 slow: rank 950 is the 50th slow, 0.50.
    assert lag(registry) == pytest.approx(0.50)
    frames(100 - CLOCK_EVERY)
    clock.advance(1.0)
    frames(CLOCK_EVERY)
    assert lag(registry) == 0.0  # the slow second left the window


def test_started_stream_samples_one_exemplar_in_n_per_closed_second(
    make_metrics: Callable[..., StreamingMetrics], registry: CollectorRegistry, clock: Any
) -> None:
    """For a stream with a lag window the sample is picked when a second closes: once N
    frames have gone by, the stream's next frame names it."""
    metrics = make_metrics(exemplar_sample_every=8)
    metrics.record_stream_started(SID, REGION)
    for _ in range(8):
        metrics.record_rtmp_frame_latency("720p", 0.02, SID)
    clock.advance(1.0)
    metrics.record_rtmp_frame_latency("720p", 0.02, SID)  # closes the 8-frame second
    assert exemplars(registry) == {}
    metrics.record_rtmp_frame_latency("720p", 0.003, SID)
    assert exemplars(registry) == {"0.005": exemplars(registry)["0.005"]}
    assert exemplars(registry)["0.005"].labels == {"stream_id": SID}
    # A slow frame still always leaves one, sample or not.
    metrics.record_rtmp_frame_latency("720p", 0.3, SID)
    assert exemplars(registry)["0.5"].labels == {"stream_id": SID}


def test_lag_of_a_stream_that_stops_sending_ages_out(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """No new frame: the scrape reads what is left in the window, then nothing."""
    metrics.record_stream_started(SID, REGION)
    clock.now = 3000.2
    for _ in range(5):
        metrics.record_rtmp_frame_latency("480p", 4.0, SID)
    clock.advance(3.0)
    assert lag(registry) == 4.0  # the open second counts once it is in the past
    clock.advance(8.0)
    assert lag(registry) is None
    assert registry.get_sample_value(DROPS, {"stream_id": SID}) == 0.0


def test_lag_and_drops_only_for_started_tracked_streams(
    make_metrics: Callable[..., StreamingMetrics], registry: CollectorRegistry, clock: Any
) -> None:
    """Not started here: exemplar yes, lag and drops no. Over the cap: no series at all."""
    metrics = make_metrics(max_tracked_streams=1)
    metrics.record_stream_started(SID, REGION)
    metrics.record_stream_started(OTHER_SID, REGION)  # over the cap
    stranger = "0b6e3f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    for sid in (SID, OTHER_SID, stranger):
        metrics.record_rtmp_frame_latency("720p", 0.5, sid)
        metrics.record_frame_drops(sid, 4)
    clock.advance(1.0)
    for sid in (SID, OTHER_SID, stranger):
        metrics.record_rtmp_frame_latency("720p", 0.5, sid)
    assert lag(registry, SID) == 0.5
    assert lag(registry, OTHER_SID) is None and lag(registry, stranger) is None
    assert registry.get_sample_value(DROPS, {"stream_id": SID}) == 4.0
    assert registry.get_sample_value(DROPS, {"stream_id": OTHER_SID}) is None
    assert registry.get_sample_value(DROPS, {"stream_id": stranger}) is None
    assert exemplars(registry)["0.5"].labels == {"stream_id": stranger}


def test_drops_count_and_linger_with_the_stream(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """Drops start at 0, add up, keep their value through the linger, then go."""
    metrics.record_stream_started(SID, REGION)
    assert registry.get_sample_value(DROPS, {"stream_id": SID}) == 0.0
    metrics.record_frame_drops(SID)
    metrics.record_frame_drops(SID, 29)
    metrics.record_frame_drops(SID, -1)
    metrics.record_frame_drops(SID, 1.5)  # type: ignore[arg-type]
    metrics.record_frame_drops("nope", 1)
    assert registry.get_sample_value(DROPS, {"stream_id": SID}) == 30.0
    rejected = {
        reason: registry.get_sample_value(d.REJECTED_INPUTS.name, {"reason": reason})
        for reason in (d.REJECT_NEGATIVE, d.REJECT_INVALID_TYPE, d.REJECT_INVALID_STREAM_ID)
    }
    assert rejected == {
        d.REJECT_NEGATIVE: 1.0,
        d.REJECT_INVALID_TYPE: 1.0,
        d.REJECT_INVALID_STREAM_ID: 1.0,
    }
    metrics.record_stream_ended(SID, REGION, 60.0, 0)
    metrics.record_frame_drops(SID, 5)  # ended: no longer counted
    assert registry.get_sample_value(DROPS, {"stream_id": SID}) == 30.0
    clock.advance(metrics.series_linger_seconds)
    assert registry.get_sample_value(DROPS, {"stream_id": SID}) is None


def test_lag_window_bounds_a_flood() -> None:
    """A peer sending more frames than any frame rate cannot grow a second without bound."""
    window = LagWindow()
    for _ in range(50_000):
        window.add(0.1, 10.0)
    window.add(0.1, 11.0)
    assert sum(len(run) for _, run in window.closed) == 1_000
    assert window.value(11.5) == 0.1


def test_prometheus_accept_header_gets_openmetrics_with_exemplars(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Prometheus' scrape Accept header (2.42, as the local stack runs it) picks
    OpenMetrics, whose page carries the exemplar; a plain text scrape carries none."""
    from streaming_metrics._exposition import Exposition, Render, Request

    metrics.record_rtmp_frame_latency("720p", 0.4, SID)
    prometheus_accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    pages = {}
    for accept in (prometheus_accept, "text/plain;version=0.0.4"):
        planned = Exposition(registry, None).plan(Request("GET", "/metrics", accept=accept))
        assert isinstance(planned, Render)
        response = planned.run()
        pages[accept] = (dict(response.headers)["Content-Type"], response.body.decode())
    content_type, page = pages[prometheus_accept]
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert f'# {{stream_id="{SID}"}} 0.4 ' in page and page.endswith("# EOF\n")
    content_type, page = pages["text/plain;version=0.0.4"]
    assert content_type.startswith("text/plain; version=0.0.4")
    assert "stream_id=" not in page.split("nova_streaming_rtmp_ingestion")[1]
