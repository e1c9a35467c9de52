"""The sharded latency histogram: exact under threads, exported as prometheus_client's."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from nova_testing.threads import run_threads
from streaming_metrics import StreamingMetrics, helpers
from streaming_metrics import definitions as d
from streaming_metrics._histogram import ShardedHistogram

LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS
THREADS = 8
# Multiples of 1/64 up to 4 s: every partial sum is exact in a float, so the sum is the
# same in any order the threads' observations are added up.
STEP = 1 / 64
values = st.integers(0, 256).map(lambda n: n * STEP)


def _hammer(record: Callable[[float], None], per_thread: list[list[float]]) -> None:
    """Run one thread per list, all released at once, each recording its values."""
    start = threading.Barrier(len(per_thread))

    def recorder(mine: list[float]) -> Callable[[], None]:
        def run() -> None:
            start.wait(timeout=60)
            for value in mine:
                record(value)

        return run

    run_threads([recorder(mine) for mine in per_thread])


def _expected(observed: list[float]) -> tuple[list[float], float, float]:
    """(cumulative bucket counts, +Inf last; count; sum) as a histogram must export them."""
    cumulative = [float(sum(1 for v in observed if v <= bound)) for bound in LATENCY.buckets]
    return [*cumulative, float(len(observed))], float(len(observed)), sum(observed)


def _exported(registry: CollectorRegistry, quality: str) -> tuple[list[float], float, float]:
    get = registry.get_sample_value
    les = [*(str(float(b)) for b in LATENCY.buckets), "+Inf"]
    found = [get(LATENCY.name + "_bucket", {"quality": quality, "le": le}) for le in les]
    buckets = [value for value in found if value is not None]
    count = get(LATENCY.name + "_count", {"quality": quality})
    total = get(LATENCY.name + "_sum", {"quality": quality})
    assert len(buckets) == len(les) and count is not None and total is not None
    return buckets, count, total


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(values, min_size=1, max_size=12), min_size=THREADS, max_size=THREADS),
    st.integers(100, 400),
    st.booleans(),
)
def test_eight_threads_on_one_series_count_exactly(
    cycles: list[list[float]], length: int, through_helper: bool
) -> None:
    """8 threads observing the same quality at once: buckets, count and sum are exact,
    through the method or the module helper, while another thread scrapes."""
    # Each thread repeats its drawn values up to `length` observations: enough to
    # interleave, while the drawn example stays small enough to shrink.
    per_thread = [(mine * length)[:length] for mine in cycles]
    registry = CollectorRegistry()
    metrics = StreamingMetrics(registry)
    record: Callable[[float], None]
    if through_helper:
        helpers.set_default_metrics(metrics)
        record = functools.partial(helpers.record_rtmp_frame_latency, "720p")
    else:
        record = functools.partial(metrics.record_rtmp_frame_latency, "720p")
    stop = threading.Event()
    scraper = threading.Thread(
        target=lambda: [generate_latest(registry) for _ in iter(stop.is_set, True)]
    )
    scraper.start()
    try:
        _hammer(record, per_thread)
        stop.set()
        scraper.join()
        exported = _exported(registry, "720p")
    finally:
        stop.set()
        scraper.join()
        if through_helper:
            helpers.reset_default_metrics()
    observed = [v for mine in per_thread for v in mine]
    assert exported == _expected(observed)


def test_ended_threads_are_folded_not_lost() -> None:
    """Counts of threads that have ended survive the scrapes that fold them away."""
    registry = CollectorRegistry()
    metrics = StreamingMetrics(registry)
    for _ in range(3):
        _hammer(lambda v: metrics.record_rtmp_frame_latency("480p", v), [[0.5] * 100] * THREADS)
        generate_latest(registry)
    metrics.record_rtmp_frame_latency("480p", 0.5)
    series = metrics._latency_children["480p"]
    # Only the calling thread's shard is left after a scrape: the others were folded.
    generate_latest(registry)
    assert len(series._shards) == 1
    assert _exported(registry, "480p") == _expected([0.5] * (3 * 100 * THREADS + 1))


@pytest.mark.parametrize("encoder", [generate_latest, generate_openmetrics])
def test_page_identical_to_a_prometheus_client_histogram(encoder: Callable[..., bytes]) -> None:
    """The same observations (bucket edges, zero, huge values) give the same bytes as a
    prometheus_client Histogram, in text and OpenMetrics, exemplars included."""
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = ShardedHistogram(LATENCY)
    ours_registry.register(ours)
    theirs = Histogram(
        LATENCY.name,
        LATENCY.help,
        LATENCY.labels,
        buckets=LATENCY.buckets,
        registry=theirs_registry,
    )
    observations = [0.0, 0.001, 0.0011, 0.045, 0.1, 0.25, 0.2500001, 1.0, 1.5, 7e300, 0.3]
    for quality in ("1080p", "720p", "other"):
        mine, child = ours.series(quality), theirs.labels(quality)
        # The creation time is a wall-clock reading: pin ours to theirs.
        mine.created = child._created  # no public accessor
        for n, value in enumerate(observations):
            exemplar = {"stream_id": f"s{n}"} if n % 3 == 0 else None
            mine.observe(value, exemplar)
            child.observe(value, exemplar)
            # Exemplar timestamps too are wall-clock readings.
            if exemplar is not None:
                index = mine.keys.index(next(k for k in mine.keys[1:] if value <= k))
                stored = mine.exemplars[index]
                assert stored is not None
                for bucket in child._buckets:  # no public accessor
                    got = bucket.get_exemplar()
                    if got is not None and got.labels == exemplar:
                        mine.exemplars[index] = got
    assert encoder(ours_registry) == encoder(theirs_registry)
    assert b"_bucket" in encoder(ours_registry)


def test_rejected_values_leave_the_histogram_untouched() -> None:
    """Negative, NaN, infinite, bool and non-number values are counted as rejections,
    never observed, through the method and the helper."""
    registry = CollectorRegistry()
    metrics = StreamingMetrics(registry)
    helpers.set_default_metrics(metrics)
    try:
        bad: list[Any] = [-0.001, -1e-300, float("nan"), float("inf"), -float("inf"), True]
        bad += ["0.1", None]
        for value in bad:
            metrics.record_rtmp_frame_latency("720p", value)
            helpers.record_rtmp_frame_latency("720p", value)
        # An int is a valid number of seconds, taken by the slow path.
        helpers.record_rtmp_frame_latency("720p", 2)
        metrics.record_rtmp_frame_latency("720p", 1.7976931348623157e308)
        get = registry.get_sample_value
        assert _exported(registry, "720p")[1:] == (2.0, 2.0 + 1.7976931348623157e308)
        assert get(LATENCY.name + "_bucket", {"quality": "720p", "le": "1.0"}) == 0.0
        rejected = sum(
            get(d.REJECTED_INPUTS.name, {"reason": reason}) or 0.0 for reason in d.REJECT_REASONS
        )
        assert rejected == 2.0 * len(bad)
    finally:
        helpers.reset_default_metrics()
