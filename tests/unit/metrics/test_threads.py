"""Concurrency: threads hammering the hot paths while others scrape and change lifecycles."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from nova_testing.threads import run_threads
from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d

OWNED = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
VIEWERS_ONLY = "6f1c0a52-8d3e-4b7a-9c21-0e5d4f3a2b10"
REGION = "eu-west-1"
THREADS = 8
ROUNDS = 3000


def test_hammered_connection_gauges_are_exact(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Concurrent connects/disconnects (with scrapes and lifecycles) leave exact gauges."""
    metrics.record_stream_started(OWNED, REGION)
    stop = threading.Event()

    def viewer(stream_id: str, keep: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(ROUNDS):
                metrics.record_websocket_connection(stream_id)
                if i >= keep:
                    metrics.record_websocket_disconnection(stream_id)

        return run

    def scraper() -> None:
        while not stop.is_set():
            generate_latest(registry)

    def churn() -> None:
        for n in range(300):
            sid = f"00000000-0000-4000-8000-{n:012x}"
            metrics.record_stream_started(sid, REGION)
            metrics.record_websocket_connection(sid)
            metrics.record_stream_ended(sid, REGION, 1.0, 1)

    scrape_thread = threading.Thread(target=scraper)
    scrape_thread.start()
    try:
        run_threads(
            [viewer(OWNED, 100) for _ in range(THREADS // 2)]
            + [viewer(VIEWERS_ONLY, 50) for _ in range(THREADS // 2)]
            + [churn]
        )
    finally:
        stop.set()
        scrape_thread.join()
    get = registry.get_sample_value
    assert get(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": OWNED}) == 100.0 * (THREADS // 2)
    assert get(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": VIEWERS_ONLY}) == 50.0 * (THREADS // 2)
    assert get(d.ACTIVE_STREAMS.name, {"region": REGION}) == 1.0
    assert get(d.STREAM_DURATION_SECONDS.name + "_count", {"stream_type": "live"}) == 300.0


def test_hammered_disconnects_never_go_negative(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """More disconnects than connects from many threads end at exactly 0, never below."""
    metrics.record_stream_started(OWNED, REGION)
    for _ in range(THREADS * 100):
        metrics.record_websocket_connection(OWNED)

    def leave() -> None:
        for _ in range(500):
            metrics.record_websocket_disconnection(OWNED)

    run_threads([leave for _ in range(THREADS)])
    assert registry.get_sample_value(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": OWNED}) == 0.0


def test_hammered_latency_and_errors_count_exactly(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Concurrent frame latencies and errors lose no observation."""

    def frames() -> None:
        for _ in range(ROUNDS):
            metrics.record_rtmp_frame_latency("720p", 0.02)
            metrics.record_broadcast_error("frame_drop")

    run_threads([frames for _ in range(THREADS)])
    get = registry.get_sample_value
    total = float(THREADS * ROUNDS)
    assert get(d.RTMP_INGESTION_LATENCY_SECONDS.name + "_count", {"quality": "720p"}) == total
    assert get(d.BROADCAST_ERRORS.name, {"error_type": "frame_drop"}) == total


def test_linger_expiry_races_with_connections(
    make_metrics: Callable[..., StreamingMetrics], registry: CollectorRegistry, clock: Any
) -> None:
    """Connections racing with scrape-time expiry are never lost."""
    metrics = make_metrics(series_linger_seconds=1.0)
    ids = [f"00000000-0000-4000-8000-{n:012x}" for n in range(20)]
    for sid in ids:
        metrics.record_stream_started(sid, REGION)
        metrics.record_stream_ended(sid, REGION, 1.0, 0)
    clock.advance(0.5)

    def connect_all() -> None:
        for sid in ids:
            metrics.record_websocket_connection(sid)

    def expire() -> None:
        clock.advance(0.5)
        for _ in range(50):
            metrics.expire_lingering()
            generate_latest(registry)

    run_threads([connect_all, connect_all, expire])
    # Each stream ends with either its two connections (revived) or, if it expired
    # before the first connection, a fresh viewers-only record with both: never one.
    for sid in ids:
        assert registry.get_sample_value(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": sid}) == 2.0


def test_hammered_helpers_connection_gauge_is_exact(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """The module helpers' inlined connection paths, 8 threads on one stream started
    here and on one only viewed here, end at exact counts."""
    from streaming_metrics import helpers

    helpers.set_default_metrics(metrics)
    try:
        helpers.record_stream_started(OWNED, REGION)

        def viewer(stream_id: str, keep: int) -> Callable[[], None]:
            def run() -> None:
                for i in range(ROUNDS):
                    helpers.record_websocket_connection(stream_id)
                    if i >= keep:
                        helpers.record_websocket_disconnection(stream_id)

            return run

        run_threads(
            [viewer(OWNED, 70) for _ in range(THREADS // 2)]
            + [viewer(VIEWERS_ONLY, 30) for _ in range(THREADS // 2)]
        )
        get = registry.get_sample_value
        assert get(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": OWNED}) == 70.0 * (THREADS // 2)
        assert get(d.WEBSOCKET_CONNECTIONS.name, {"stream_id": VIEWERS_ONLY}) == 30.0 * (
            THREADS // 2
        )
    finally:
        helpers.reset_default_metrics()
