"""A real Prometheus decodes the library's gzip bodies built from reused segments.

Prometheus asks for gzip; with 3,000 streams every per-stream family spans several
chunks of 1,000 lines, each compressed on its own and reused while unchanged. Prometheus
scrapes repeatedly while values change between scrapes: every scrape must succeed and
carry every series, and the changed value must arrive.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from nova_testing.prometheus import instant_query, poll, running_prometheus
from streaming_metrics import StreamingMetrics, start_metrics_server
from streaming_metrics import definitions as d

pytestmark = pytest.mark.slow

STREAMS = 3_000
CONNECTIONS = d.WEBSOCKET_CONNECTIONS.name


def sid(n: int) -> str:
    return str(uuid.UUID(int=n + 1, version=4))


def scalar(base: str, promql: str) -> float | None:
    result = instant_query(base, promql)
    return float(result[0]["value"][1]) if result else None


@pytest.fixture
def exporter() -> Iterator[tuple[StreamingMetrics, int]]:
    metrics = StreamingMetrics(CollectorRegistry(), regions=["local"], max_tracked_streams=STREAMS)
    for n in range(STREAMS):
        metrics.record_stream_started(sid(n), "local")
        metrics.record_websocket_connection(sid(n))
    server = start_metrics_server(0, "127.0.0.1", metrics.registry)
    try:
        yield metrics, server.port
    finally:
        server.close()


def test_prometheus_reads_every_series_from_reused_gzip_segments(
    exporter: tuple[StreamingMetrics, int], tmp_path: Path
) -> None:
    metrics, port = exporter
    with running_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as base:
        every = f"count({CONNECTIONS})"
        poll(lambda: scalar(base, every) == STREAMS, 60, "every series scraped")
        # Two chunks change (their last lines: the next chunk's reused segment must
        # not refer back to the old text); the rest are reused, scrape after scrape.
        changed = f'{CONNECTIONS}{{stream_id="{sid(1_999)}"}}'
        for step in range(1, 4):
            for n in (999, 1_999):
                metrics.record_websocket_connection(sid(n))
            poll(lambda s=step: scalar(base, changed) == 1 + s, 30, f"change {step}")
            assert scalar(base, every) == STREAMS
            assert scalar(base, f"sum({CONNECTIONS})") == STREAMS + 2 * step
        # Every scrape so far succeeded (a body Prometheus could not decode is a down
        # target for that scrape).
        assert scalar(base, "min_over_time(up[5m])") == 1.0
