"""Exemplars end to end: the library's exporter scraped by a real Prometheus with
exemplar storage (the local stack's command line), queried through its exemplar API."""

from __future__ import annotations

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
from nova_streaming.stack.prometheus import prometheus_argv
from nova_testing.prometheus import get_json, instant_query, poll, running_prometheus
from streaming_metrics import StreamingMetrics, start_metrics_server
from streaming_metrics import definitions as d

pytestmark = pytest.mark.slow

SLOW = "5b1f0c3e-9a7d-4e2b-8c61-2f3a4b5c6d7e"
FAST = "0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b"
LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS.name


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
    # The local stack's Prometheus keeps exemplars; so does this one (the same argv).
    argv = prometheus_argv(tmp_path / "prometheus.yml", tmp_path / "data", free_port())
    assert "--enable-feature=exemplar-storage" in argv
    with running_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as base:

        def exemplars() -> list[dict[str, Any]]:
            end = time.time()
            query = urllib.parse.urlencode(
                {"query": f"{LATENCY}_bucket", "start": f"{end - 300:.3f}", "end": f"{end:.3f}"}
            )
            data = get_json(f"{base}/api/v1/query_exemplars?{query}")["data"]
            return [
                {**group["seriesLabels"], **ex["labels"], "value": float(ex["value"])}
                for group in data or []
                for ex in group["exemplars"]
            ]

        found = poll(exemplars, 60, "exemplars in Prometheus")
        assert {e["stream_id"] for e in found} == {SLOW}
        assert all(e["le"] == "+Inf" and e["quality"] == "480p" for e in found)
        assert all(e["value"] == 3.5 for e in found)

        def lag() -> list[Any]:
            return instant_query(base, d.STREAM_INGEST_LAG_SECONDS.name)

        by_stream = {r["metric"]["stream_id"]: float(r["value"][1]) for r in poll(lag, 30, "lag")}
        assert by_stream[SLOW] == 3.5
        assert by_stream.get(FAST, 0.02) == 0.02
