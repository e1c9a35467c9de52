"""Fixtures for the stack's end-to-end tests: a synthetic exporter and a real Prometheus."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from nova_streaming.stack.ports import free_port
from nova_testing.prometheus import running_prometheus
from streaming_metrics import definitions as d

STREAMS = ("3f1c2b9e-5f0a-4c1e-9d2a-0b1c2d3e4f50", "7a8b9c0d-1e2f-4a3b-8c5d-6e7f8091a2b3")


@dataclass
class Exporter:
    """A prometheus_client registry with the contract metrics, served on a free port."""

    port: int
    registry: CollectorRegistry
    streams: tuple[str, ...] = STREAMS


@pytest.fixture
def synthetic_exporter() -> Iterator[Exporter]:
    """Serve the contract's metrics with live-looking values, updated on a thread.

    The second stream is the slow one: its frames over the exemplar threshold carry its
    stream id as latency exemplars, and its lag gauge is far above 1 s.
    """
    registry = CollectorRegistry()
    active = Gauge(d.ACTIVE_STREAMS.name, d.ACTIVE_STREAMS.help, ["region"], registry=registry)
    conns = Gauge(
        d.WEBSOCKET_CONNECTIONS.name, d.WEBSOCKET_CONNECTIONS.help, ["stream_id"],
        registry=registry,
    )  # fmt: skip
    peak = Gauge(d.PEAK_VIEWERS.name, d.PEAK_VIEWERS.help, ["stream_id"], registry=registry)
    info = Gauge(
        d.STREAM_INFO.name, d.STREAM_INFO.help, list(d.STREAM_INFO.labels), registry=registry
    )
    errors = Counter(
        d.BROADCAST_ERRORS.name, d.BROADCAST_ERRORS.help, ["error_type"], registry=registry
    )
    latency = Histogram(
        d.RTMP_INGESTION_LATENCY_SECONDS.name,
        d.RTMP_INGESTION_LATENCY_SECONDS.help,
        ["quality"],
        buckets=d.RTMP_INGESTION_LATENCY_SECONDS.buckets,
        registry=registry,
    )
    lag = Gauge(
        d.STREAM_INGEST_LAG_SECONDS.name, d.STREAM_INGEST_LAG_SECONDS.help, ["stream_id"],
        registry=registry,
    )  # fmt: skip
    bitrate = Gauge(
        d.QUALITY_BITRATE_KBPS.name, d.QUALITY_BITRATE_KBPS.help, ["stream_id", "quality"],
        registry=registry,
    )  # fmt: skip
    drops = Counter(
        d.STREAM_FRAME_DROPS.name, d.STREAM_FRAME_DROPS.help, ["stream_id"], registry=registry
    )
    for error_type in d.DEFAULT_ERROR_TYPES:
        errors.labels(error_type)
    active.labels("local").set(len(STREAMS))
    for n, sid in enumerate(STREAMS):
        info.labels(sid, "local", "live").set(1)
        peak.labels(sid).set(5 + n)
        conns.labels(sid).set(3 + n)
        drops.labels(sid)
    lag.labels(STREAMS[0]).set(0.08)
    lag.labels(STREAMS[1]).set(3.2)
    bitrate.labels(STREAMS[0], "720p").set(2500)
    bitrate.labels(STREAMS[1], "480p").set(900)
    port = free_port()
    server, thread = start_http_server(port, "127.0.0.1", registry=registry)
    stop = threading.Event()
    rng = random.Random(7)

    def feed() -> None:
        while not stop.wait(0.1):
            latency.labels("720p").observe(rng.uniform(0.01, 0.2))
            if rng.random() < 0.2:
                latency.labels("480p").observe(3.2, {"stream_id": STREAMS[1]})
            if rng.random() < 0.1:
                errors.labels(rng.choice(["timeout", "frame_drop"])).inc()
                drops.labels(STREAMS[1]).inc()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield Exporter(port, registry)
    finally:
        stop.set()
        feeder.join()
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class RunningPrometheus:
    """A real Prometheus on a free port."""

    url: str


@pytest.fixture
def prometheus(synthetic_exporter: Exporter, tmp_path: Path) -> Iterator[RunningPrometheus]:
    """Prometheus scraping the synthetic exporter every second, with the generated rules."""
    from nova_monitoring.options import RenderOptions
    from nova_monitoring.render import render_rules_file

    rules = render_rules_file(
        tmp_path / "rules.yml",
        RenderOptions(eval_interval="1s", for_scale=0.05, rate_window="30s"),
    )
    with running_prometheus(tmp_path, [f"127.0.0.1:{synthetic_exporter.port}"], [rules]) as url:
        yield RunningPrometheus(url)
