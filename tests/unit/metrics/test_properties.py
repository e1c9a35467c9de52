"""Property tests: random call sequences keep the contract's invariants."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d

IDS = [f"00000000-0000-4000-8000-{n:012x}" for n in range(4)]
REGIONS = ["eu-west-1", "us-east-2"]
CAP = 2
LINGER = 60.0
PER_STREAM = {
    d.WEBSOCKET_CONNECTIONS.name,
    d.PEAK_VIEWERS.name,
    d.QUALITY_BITRATE_KBPS.name,
    d.STREAM_INFO.name,
}
GAUGES = PER_STREAM | {d.ACTIVE_STREAMS.name, d.TRACKED_STREAMS.name}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# A stream id as callers may spell it: canonical lower or upper case.
stream_ids = st.builds(
    lambda i, upper: IDS[i].upper() if upper else IDS[i],
    st.integers(0, len(IDS) - 1),
    st.booleans(),
)
regions = st.sampled_from(REGIONS)
amounts = st.one_of(st.integers(0, 20_000), st.floats(0, 1e6, allow_nan=False))
bad_ids = st.sampled_from(["nope", "", IDS[0] + "x", None, 7])
bad_labels = st.sampled_from(["Bad", "", "a b", "x" * 64, None])
bad_amounts = st.sampled_from([math.nan, math.inf, -math.inf, -1, "3", None, True])

operations = st.one_of(
    st.tuples(st.just("start"), stream_ids, regions, st.sampled_from(["live", "pre-recorded"])),
    st.tuples(st.just("end"), stream_ids, regions, amounts, st.integers(0, 20_000)),
    st.tuples(st.just("forget"), stream_ids),
    st.tuples(st.just("connect"), stream_ids),
    st.tuples(st.just("disconnect"), stream_ids),
    st.tuples(st.just("viewers"), stream_ids, st.integers(0, 20_000)),
    st.tuples(st.just("bitrate"), stream_ids, st.sampled_from(["720p", "1080p", "9k"]), amounts),
    st.tuples(st.just("latency"), st.sampled_from(["720p", "9k"]), st.floats(0, 5)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 10.0, 30.0, 59.9, 60.0, 120.0])),
    st.tuples(st.just("bad_id"), st.sampled_from(["start", "connect", "end", "viewers"]), bad_ids),
    st.tuples(st.just("bad_label"), st.sampled_from(["start", "error", "latency"]), bad_labels),
    st.tuples(st.just("bad_amount"), st.sampled_from(["end", "viewers", "latency"]), bad_amounts),
)


@dataclass
class Model:
    """What the contract promises, tracked independently of the implementation."""

    active: dict[str, str] = field(default_factory=dict)  # stream -> region given at start
    max_seen: dict[str, float] = field(default_factory=dict)  # stream -> max count since start
    # stream -> clock time after which it must have no per-stream series (if not revived)
    gone_after: dict[str, float] = field(default_factory=dict)
    # stream -> local viewers connected; forgotten streams wait for 0 before lingering
    conns: dict[str, int] = field(default_factory=dict)
    forgotten_with_viewers: set[str] = field(default_factory=set)
    ends: int = 0
    rejected: int = 0


def apply(metrics: StreamingMetrics, clock: Clock, model: Model, op: tuple[Any, ...]) -> None:
    kind = op[0]
    sid = op[1].lower() if kind not in {"latency", "advance"} and isinstance(op[1], str) else None
    if kind == "start":
        metrics.record_stream_started(op[1], op[2], op[3])
        assert sid is not None
        if sid not in model.active:
            model.active[sid] = op[2]
            model.max_seen[sid] = 0.0
        model.gone_after.pop(sid, None)
        model.forgotten_with_viewers.discard(sid)
    elif kind == "end":
        metrics.record_stream_ended(op[1], op[2], op[3], op[4])
        assert sid is not None
        if sid in model.active:
            del model.active[sid]
            model.ends += 1
            model.gone_after.setdefault(sid, clock.now + LINGER)
    elif kind == "forget":
        metrics.forget_stream(op[1])
        assert sid is not None
        model.active.pop(sid, None)
        if model.conns.get(sid, 0) > 0 and sid not in model.gone_after:
            # Connected viewers keep their series until the last one leaves.
            model.forgotten_with_viewers.add(sid)
        else:
            model.gone_after.setdefault(sid, clock.now + LINGER)
    elif kind == "connect":
        metrics.record_websocket_connection(op[1])
        assert sid is not None
        model.gone_after.pop(sid, None)
        model.conns[sid] = model.conns.get(sid, 0) + 1
    elif kind == "disconnect":
        metrics.record_websocket_disconnection(op[1])
        assert sid is not None
        if model.conns.get(sid, 0) > 0:
            model.conns[sid] -= 1
            if model.conns[sid] == 0 and sid in model.forgotten_with_viewers:
                model.forgotten_with_viewers.discard(sid)
                model.gone_after.setdefault(sid, clock.now + LINGER)
    elif kind == "viewers":
        metrics.record_viewer_count_change(op[1], op[2], REGIONS[0])
        assert sid is not None
        if sid in model.active:
            model.max_seen[sid] = max(model.max_seen[sid], float(op[2]))
    elif kind == "bitrate":
        metrics.record_quality_bitrate(op[1], op[2], op[3])
    elif kind == "latency":
        metrics.record_rtmp_frame_latency(op[1], op[2])
    elif kind == "advance":
        clock.now += op[1]
        for gone, deadline in model.gone_after.items():
            if clock.now >= deadline:  # removed with its series: no viewer count survives
                model.conns.pop(gone, None)
                model.forgotten_with_viewers.discard(gone)
    elif kind == "bad_id":
        model.rejected += 1
        target = {
            "start": lambda: metrics.record_stream_started(op[2], REGIONS[0]),
            "connect": lambda: metrics.record_websocket_connection(op[2]),
            "end": lambda: metrics.record_stream_ended(op[2], REGIONS[0], 1.0, 1),
            "viewers": lambda: metrics.record_viewer_count_change(op[2], 1, REGIONS[0]),
        }[op[1]]
        target()
    elif kind == "bad_label":
        model.rejected += 1
        target = {
            "start": lambda: metrics.record_stream_started(IDS[0], op[2]),
            "error": lambda: metrics.record_broadcast_error(op[2]),
            "latency": lambda: metrics.record_rtmp_frame_latency(op[2], 0.1),
        }[op[1]]
        target()
    elif kind == "bad_amount":
        model.rejected += 1
        target = {
            "end": lambda: metrics.record_stream_ended(IDS[0], REGIONS[0], op[2], 1),
            "viewers": lambda: metrics.record_viewer_count_change(IDS[0], op[2], REGIONS[0]),
            "latency": lambda: metrics.record_rtmp_frame_latency("720p", op[2]),
        }[op[1]]
        target()


def check(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Clock, model: Model
) -> None:
    samples = [s for family in registry.collect() for s in family.samples]
    by_stream: dict[str, set[str]] = {}
    connection_streams: set[str] = set()
    for s in samples:
        if s.name in GAUGES:
            assert s.value >= 0.0, s
        if s.name in PER_STREAM:
            by_stream.setdefault(s.labels["stream_id"], set()).add(s.name)
        if s.name == d.WEBSOCKET_CONNECTIONS.name:
            connection_streams.add(s.labels["stream_id"])
        if s.name == d.PEAK_VIEWERS.name and s.labels["stream_id"] in model.active:
            assert s.value == model.max_seen[s.labels["stream_id"]], s
        if s.name == d.STREAM_INFO.name:
            assert s.labels["stream_id"] in model.active, s
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}

    def get(name: str, labels: dict[str, str] | None = None) -> float | None:
        return values.get((name, tuple(sorted((labels or {}).items()))))

    for region in REGIONS:
        expected = sum(1 for r in model.active.values() if r == region)
        assert (get(d.ACTIVE_STREAMS.name, {"region": region}) or 0.0) == expected
    tracked = get(d.TRACKED_STREAMS.name)
    assert tracked == len(connection_streams) == metrics.tracked_streams
    assert tracked is not None and tracked <= CAP
    for sid, deadline in model.gone_after.items():
        if clock.now >= deadline:
            assert sid not in by_stream, (sid, by_stream.get(sid))
    for sid in model.active:
        if metrics.is_tracked(sid):
            assert {d.STREAM_INFO.name, d.PEAK_VIEWERS.name} <= by_stream[sid]
    durations = sum(
        get(d.STREAM_DURATION_SECONDS.name + "_count", {"stream_type": t}) or 0.0
        for t in ("live", "pre-recorded")
    )
    assert durations == model.ends
    rejected = sum(get(d.REJECTED_INPUTS.name, {"reason": r}) or 0.0 for r in d.REJECT_REASONS)
    assert rejected == model.rejected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=10, max_size=60))
def test_random_call_sequences_keep_invariants(ops: list[tuple[Any, ...]]) -> None:
    """Gauges >= 0, exact active and peak, none after linger, tracked <= cap, exact rejections."""
    clock = Clock()
    registry = CollectorRegistry()
    metrics = StreamingMetrics(
        registry, max_tracked_streams=CAP, series_linger_seconds=LINGER, clock=clock
    )
    model = Model()
    for op in ops:
        apply(metrics, clock, model, op)
        check(metrics, registry, clock, model)
        assert_scrape_reuse_is_invisible(metrics, registry)


def assert_scrape_reuse_is_invisible(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """What a scrape reuses from the last one (the record list and stream id column
    while the roster is unchanged, the stream_info columns while no info changed) never
    shows: the page equals the one rendered with nothing to reuse."""
    reused = generate_latest(registry)
    metrics._roster = None
    metrics._info_memo.last = None
    assert generate_latest(registry) == reused


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 2)), max_size=80))
def test_connection_gauge_matches_a_floored_counter(steps: list[tuple[bool, int]]) -> None:
    """For owned streams the connection gauge equals a counter floored at 0, whatever the order."""
    registry = CollectorRegistry()
    metrics = StreamingMetrics(registry)
    expected = [0, 0, 0]
    for sid in IDS[:3]:
        metrics.record_stream_started(sid, REGIONS[0])
    for connect, index in steps:
        if connect:
            metrics.record_websocket_connection(IDS[index])
            expected[index] += 1
        else:
            metrics.record_websocket_disconnection(IDS[index])
            expected[index] = max(0, expected[index] - 1)
    for index, sid in enumerate(IDS[:3]):
        value = registry.get_sample_value(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": sid})
        assert value == expected[index]
