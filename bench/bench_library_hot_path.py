"""The library's hot paths against prometheus_client and OpenTelemetry doing the same work.

Per-frame ingest latency (``record_rtmp_frame_latency``) and the viewer connection gauges
(``record_websocket_connection``/``record_websocket_disconnection``) run once per frame
and per viewer; the design asks that they do no label lookup work that could be cached,
so their baseline is the cheapest thing prometheus_client offers: a cached label child.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import uuid
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram

from bench import Context, Section, Table, Target
from bench._report import fmt_ns, fmt_ratio
from bench._timing import OpCase, OpStats, time_ops

ORDER = 10
TITLE = "Library hot path"

# Issue #11's target: the guide's helpers (a frame latency; a connection plus a
# disconnection) at most 0.3x a cached prometheus_client child.
MAX_RATIO = 0.3
# The service's per-frame call (the method with a stream id: exemplars and lag window)
# was held to 1.3x before issue #11; measured at about 0.4x since, so the bound is
# tightened to 0.6x, which leaves room for a noisy machine.
MAX_RATIO_WITH_STREAM = 0.6
QUALITY = "720p"
# Falls in the middle of the bucket list (after the 0.025 bound): a typical frame lag.
SECONDS = 0.045
# Above the exemplar threshold (0.25 s): every such frame leaves an exemplar.
SLOW_SECONDS = 0.4
STREAM_ID = str(uuid.UUID(int=0x1B4E28BA2FA14D3BA3F5EF19B5A7633B))

_LATENCY_PROSE = f"""
One observation of a frame's ingest latency (`{QUALITY}`, {SECONDS} s). **Baseline: a
prometheus_client `Histogram` child for the same quality, fetched once with `.labels()`
and cached, then `child.observe(v)`**, the cheapest way to observe a labelled
histogram. The same buckets as ours (`nova_streaming_rtmp_ingestion_latency_seconds`).
Compared: `.labels(q).observe(v)` on every call; our `StreamingMetrics` method on an
instance with its own registry; the guide's module helper
`streaming_metrics.helpers.record_rtmp_frame_latency` (what callers use, over the
default instance, here installed with `set_default_metrics` on a private registry);
and the OpenTelemetry SDK: `histogram.record(v, attributes={{"quality": q}})` with a
`MeterProvider`, an `InMemoryMetricReader` and a view with the same explicit bucket
boundaries (attributes dict built once).

Exemplars (design section 10): the same calls with the frame's `stream_id` (what the
ingest passes), on a started stream, so each frame also feeds the stream's lag window
and one frame in 100 (the default) leaves an exemplar. The second target is the
`StreamingMetrics` method with a stream id (≤ 0.60×; it was 1.30× before issue #11): the
call the service's ingest makes for every frame (it holds the bound method); the helper
with a stream id is shown too (one Python call more). For slow frames (`{SLOW_SECONDS}`
s, above the 0.25 s threshold) every frame leaves one: shown against prometheus_client's own
`child.observe(v, {{"stream_id": s}})`, the cheapest way to store an exemplar with it.

What made the difference (issue #11): the histogram is ours now
(`streaming_metrics/_histogram.py`), not a prometheus_client child: one counts list per
thread (a `threading.local`, so no lock and no lost update), the bucket found with
`bisect` on a tuple whose sentinels also reject negative, NaN and infinite values, the
quality validated once when its series is made (a dict lookup per frame), and the
helper inlining that fast path on the default instance (one Python call instead of
three). The export is still prometheus_client's, byte for byte.

Method: `timeit` statements calling a bound method held in a local name, 25 rounds of
about 20 ms per case, every case once per round in shuffled order; the per-iteration
cost of timeit's empty loop (measured the same way) is subtracted. Ratios use the best
(minimum) run of each case, the usual estimate of a micro-benchmark's cost without
interference; medians are shown for the spread.
"""

HELPER_WITH_STREAM = "`helpers.record_rtmp_frame_latency` with stream_id"
METHOD_WITH_STREAM = "`StreamingMetrics.record_rtmp_frame_latency` with stream_id"

_CONNECTION_PROSE = """
One viewer arriving and leaving: a connection and a disconnection on an active stream
(one pair per operation). **Baseline: a cached prometheus_client `Gauge` child,
`child.inc(); child.dec()`.** Compared: `.labels(stream_id)` on every call, our
`StreamingMetrics` methods, the module helpers, and an OpenTelemetry SDK
`UpDownCounter` (`add(1, attrs); add(-1, attrs)`). The same method as above. The
threshold is the latency target's, applied because the design names the connection
gauges as the other hot path.

What made the difference (issue #11): a stream's connection count is the length of a
list (`list.append` and `list.pop` are each atomic in CPython, and `pop` on an empty
list refuses to go below 0), so neither call takes a lock; the helpers inline that on
the default instance's stream records (one Python call each).
"""


def _latency_cases() -> tuple[list[OpCase], Callable[[], object]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    from streaming_metrics import StreamingMetrics, helpers
    from streaming_metrics import definitions as d

    buckets = d.RTMP_INGESTION_LATENCY_SECONDS.buckets
    prom = Histogram(
        "bench_rtmp_latency_seconds",
        "Baseline histogram.",
        ["quality"],
        buckets=buckets,
        registry=CollectorRegistry(),
    )
    child = prom.labels(QUALITY)
    ours = StreamingMetrics(CollectorRegistry())
    ours.record_stream_started(STREAM_ID, "eu-west-1")
    helpers.set_default_metrics(StreamingMetrics(CollectorRegistry()))
    helpers.record_stream_started(STREAM_ID, "eu-west-1")
    provider = MeterProvider(
        metric_readers=[InMemoryMetricReader()],
        views=[
            View(
                instrument_name="rtmp_latency",
                aggregation=ExplicitBucketHistogramAggregation(boundaries=list(buckets)),
            )
        ],
    )
    otel = provider.get_meter("bench").create_histogram("rtmp_latency", unit="s")
    attrs = {"quality": QUALITY}
    ns = {
        "q": QUALITY,
        "v": SECONDS,
        "a": attrs,
        "s": STREAM_ID,
        "w": SLOW_SECONDS,
        "e": {"stream_id": STREAM_ID},
    }
    cases = [
        OpCase("prometheus_client cached child `observe`", "f(v)", {**ns, "f": child.observe}),
        OpCase(
            "prometheus_client `.labels(q).observe`", "f(q).observe(v)", {**ns, "f": prom.labels}
        ),
        OpCase(
            "`StreamingMetrics.record_rtmp_frame_latency`",
            "f(q, v)",
            {**ns, "f": ours.record_rtmp_frame_latency},
        ),
        OpCase(
            "`helpers.record_rtmp_frame_latency`",
            "f(q, v)",
            {**ns, "f": helpers.record_rtmp_frame_latency},
        ),
        OpCase("OpenTelemetry SDK `histogram.record`", "f(v, a)", {**ns, "f": otel.record}),
        OpCase(
            METHOD_WITH_STREAM,
            "f(q, v, s)",
            {**ns, "f": ours.record_rtmp_frame_latency},
        ),
        OpCase(
            HELPER_WITH_STREAM,
            "f(q, v, s)",
            {**ns, "f": helpers.record_rtmp_frame_latency},
        ),
        OpCase(
            f"prometheus_client cached child `observe` with exemplar ({SLOW_SECONDS} s)",
            "f(w, e)",
            {**ns, "f": child.observe},
        ),
        OpCase(
            f"`helpers.record_rtmp_frame_latency` with stream_id, slow frame ({SLOW_SECONDS} s)",
            "f(q, w, s)",
            {**ns, "f": helpers.record_rtmp_frame_latency},
        ),
    ]
    return cases, provider.shutdown


def _connection_cases() -> tuple[list[OpCase], Callable[[], object]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from streaming_metrics import StreamingMetrics, helpers

    gauge = Gauge(
        "bench_websocket_connections",
        "Baseline gauge.",
        ["stream_id"],
        registry=CollectorRegistry(),
    )
    child = gauge.labels(STREAM_ID)
    ours = StreamingMetrics(CollectorRegistry())
    ours.record_stream_started(STREAM_ID, "eu-west-1")
    helpers.set_default_metrics(StreamingMetrics(CollectorRegistry()))
    helpers.record_stream_started(STREAM_ID, "eu-west-1")
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    otel = provider.get_meter("bench").create_up_down_counter("websocket_connections")
    ns = {"s": STREAM_ID, "a": {"stream_id": STREAM_ID}}
    cases = [
        OpCase(
            "prometheus_client cached child `inc`+`dec`",
            "i(); d()",
            {**ns, "i": child.inc, "d": child.dec},
        ),
        OpCase(
            "prometheus_client `.labels(s).inc`+`.labels(s).dec`",
            "f(s).inc(); f(s).dec()",
            {**ns, "f": gauge.labels},
        ),
        OpCase(
            "`StreamingMetrics` connection+disconnection",
            "c(s); d(s)",
            {
                **ns,
                "c": ours.record_websocket_connection,
                "d": ours.record_websocket_disconnection,
            },
        ),
        OpCase(
            "`helpers` connection+disconnection",
            "c(s); d(s)",
            {
                **ns,
                "c": helpers.record_websocket_connection,
                "d": helpers.record_websocket_disconnection,
            },
        ),
        OpCase(
            "OpenTelemetry SDK `UpDownCounter.add` ±1", "f(1, a); f(-1, a)", {**ns, "f": otel.add}
        ),
    ]
    return cases, provider.shutdown


def _bound(label: str) -> float:
    """The target ratio of a checked case."""
    return MAX_RATIO_WITH_STREAM if label == METHOD_WITH_STREAM else MAX_RATIO


def ratios_of(stats: dict[str, OpStats]) -> dict[str, float]:
    """Each case's best time over the first (baseline) case's."""
    base = next(iter(stats.values())).best_ns
    return {label: s.best_ns / base for label, s in stats.items()}


def _table(title: str, stats: dict[str, OpStats], unit: str) -> tuple[Table, dict[str, float]]:
    labels = list(stats)
    base = stats[labels[0]]
    rows = []
    ratios = {}
    for label in labels:
        s = stats[label]
        ratio = s.best_ns / base.best_ns
        ratios[label] = ratio
        rows.append(
            (
                label + (" (baseline)" if label == labels[0] else ""),
                fmt_ns(s.best_ns),
                fmt_ratio(ratio),
                fmt_ns(s.median_ns),
                fmt_ratio(s.median_ns / base.median_ns),
            )
        )
    columns = (
        "case",
        f"best ns/{unit}",
        "ratio (best)",
        f"median ns/{unit}",
        "ratio (median)",
    )
    return Table(title, columns, rows), ratios


def _profile(case: OpCase, calls: int = 200_000) -> Table:
    """Where one case spends its time (cProfile; inflates small functions, read as shares)."""
    code = f"for _ in range({calls}):\n    {case.stmt}"
    profiler = cProfile.Profile()
    profiler.runctx(code, dict(case.namespace), {})
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    rows = []
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(entry[1][2] for entry in entries) or 1.0
    for (filename, line, func), (_cc, ncalls, tottime, _ct, _callers) in entries[:8]:
        where = f"{filename.rsplit('/', 2)[-1] if '/' in filename else filename}:{line}"
        rows.append((f"`{func}` ({where})", f"{ncalls:,}", f"{tottime / total:.0%}"))
    return Table(
        f"Profile of {case.label} ({calls:,} calls, own time per function)",
        ("function", "calls", "share of own time"),
        rows,
        note="cProfile adds a fixed cost per call, so it overstates small functions; "
        "read the shares, not the absolute times.",
    )


def run(ctx: Context) -> list[Section]:
    """Time the latency and connection hot paths against their baselines."""
    from streaming_metrics import helpers

    # Many short runs rather than a few long ones: on a shared machine a short run is
    # more likely to fit between preemptions, and the minimum finds those runs.
    repeats = ctx.repeats(25)
    run_seconds = 0.005 if ctx.quick else 0.02
    sections = []
    for key, title, prose, build, unit, helper_label in (
        (
            "latency",
            "Hot path: frame latency histogram",
            _LATENCY_PROSE,
            _latency_cases,
            "op",
            "`helpers.record_rtmp_frame_latency`",
        ),
        (
            "connections",
            "Hot path: connection gauges",
            _CONNECTION_PROSE,
            _connection_cases,
            "pair",
            "`helpers` connection+disconnection",
        ),
    ):
        ctx.log(f"hot path: {key}")
        cases, shutdown = build()
        try:
            stats = time_ops(cases, repeats=repeats, run_seconds=run_seconds)
            profile = None
            checked = [helper_label] + ([METHOD_WITH_STREAM] if key == "latency" else [])
            worst = max(checked, key=lambda label: ratios_of(stats)[label])
            if ratios_of(stats)[worst] > _bound(worst):
                helper_case = next(c for c in cases if c.label == worst)
                profile = _profile(helper_case, 20_000 if ctx.quick else 200_000)
        finally:
            helpers.reset_default_metrics()
            shutdown()
        table, ratios = _table(f"{title}: time per {unit}", stats, unit)
        targets = [
            Target(
                f"{label} vs cached child (best of {repeats})",
                f"≤ {_bound(label):.2f}×",
                fmt_ratio(ratios[label]),
                ratios[label] <= _bound(label),
            )
            for label in checked
        ]
        tables = [table] if profile is None else [table, profile]
        raw = {
            label: {"best_ns": s.best_ns, "median_ns": s.median_ns, "runs_ns": s.runs_ns}
            for label, s in stats.items()
        }
        sections.append(Section(title, prose, tables=tables, targets=targets, raw={key: raw}))
    return sections
