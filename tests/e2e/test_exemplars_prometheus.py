"""Exemplars end to end: the library's exporter scraped by a real Prometheus with
exemplar storage (the local stack's command line), queried through its exemplar API."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from nova_streaming.stack.ports import free_port
from nova_streaming.stack.prometheus import (
    PrometheusConfig,
    prometheus_argv,
    render_prometheus_config,
)
from nova_streaming.stack.supervisor import Supervisor, http_ready
from streaming_metrics import StreamingMetrics, start_metrics_server
from streaming_metrics import definitions as d

pytestmark = pytest.mark.slow

SLOW = "5b1f0c3e-9a7d-4e2b-8c61-2f3a4b5c6d7e"
FAST = "0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b"
LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS.name


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


@pytest.fixture
def exporter() -> Iterator[tuple[StreamingMetrics, int]]:
    """StreamingMetrics served by the library's metrics server; a slow and a fast stream
    sending frames from a thread (the ingest's call, with the stream id)."""
    metrics = StreamingMetrics(CollectorRegistry(), regions=["local"], exemplar_sample_every=0)
    for sid in (SLOW, FAST):
        metrics.record_stream_started(sid, "local")
    server = start_metrics_server(0, "127.0.0.1", metrics.registry)
    stop = threading.Event()

    def frames() -> None:
        while not stop.wait(0.05):
            metrics.record_rtmp_frame_latency("480p", 3.5, SLOW)
            metrics.record_rtmp_frame_latency("720p", 0.02, FAST)

    feeder = threading.Thread(target=frames, daemon=True)
    feeder.start()
    try:
        yield metrics, server.port
    finally:
        stop.set()
        feeder.join()
        server.close()


def test_prometheus_stores_the_slow_streams_exemplar(
    exporter: tuple[StreamingMetrics, int], tmp_path: Path
) -> None:
    """Prometheus negotiates OpenMetrics, keeps the slow frames' exemplars (the +Inf
    bucket, stream_id of the slow stream, never the fast one) and the lag gauge shows
    the slow stream's real lag, far above the histogram's 1 s top bucket."""
    _metrics, port = exporter
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        render_prometheus_config(
            PrometheusConfig(
                metrics_targets=[f"127.0.0.1:{port}"],
                rule_files=[],
                scrape_interval=1.0,
                scrape_timeout=1.0,
                evaluation_interval=1.0,
            )
        )
    )
    argv = prometheus_argv(config, tmp_path / "data", prom_port)
    assert "--enable-feature=exemplar-storage" in argv
    base = f"http://127.0.0.1:{prom_port}"
    with Supervisor(tmp_path / "run") as supervisor:
        supervisor.start("prometheus", argv, ready=http_ready(f"{base}/-/ready"))

        def exemplars() -> list[dict[str, Any]]:
            end = time.time()
            query = urllib.parse.urlencode(
                {"query": f"{LATENCY}_bucket", "start": f"{end - 300:.3f}", "end": f"{end:.3f}"}
            )
            data = _get(f"{base}/api/v1/query_exemplars?{query}")["data"]
            return [
                {**group["seriesLabels"], **ex["labels"], "value": float(ex["value"])}
                for group in data or []
                for ex in group["exemplars"]
            ]

        found = _wait(exemplars, 60, "exemplars in Prometheus")
        assert {e["stream_id"] for e in found} == {SLOW}
        assert all(e["le"] == "+Inf" and e["quality"] == "480p" for e in found)
        assert all(e["value"] == 3.5 for e in found)

        def lag() -> list[Any]:
            query = urllib.parse.urlencode({"query": d.STREAM_INGEST_LAG_SECONDS.name})
            result: list[Any] = _get(f"{base}/api/v1/query?{query}")["data"]["result"]
            return result

        by_stream = {r["metric"]["stream_id"]: float(r["value"][1]) for r in _wait(lag, 30, "lag")}
        assert by_stream[SLOW] == 3.5
        assert by_stream.get(FAST, 0.02) == 0.02
