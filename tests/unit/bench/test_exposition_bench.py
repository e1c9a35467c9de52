"""The exposition bench's building blocks work against the real library and uvicorn."""

from __future__ import annotations

import asyncio

from bench.bench_exposition import (
    PROMETHEUS_HEADERS,
    REGION,
    TEXT_HEADERS,
    _stall_scenario,
    asgi_get,
    populate,
)
from prometheus_client import generate_latest


def test_populate_creates_the_asked_number_of_active_streams() -> None:
    """populate(n) leaves n active streams, each with connection and peak series."""
    metrics, registry = populate(7)
    assert registry.get_sample_value("nova_streaming_active_streams", {"region": REGION}) == 7
    page = generate_latest(registry).decode()
    assert page.count("nova_streaming_websocket_connections{") == 7
    assert page.count("nova_streaming_peak_viewers{") == 7
    metrics.unregister()


async def test_asgi_get_scrapes_metrics_app_in_process() -> None:
    """The in-process driver gets the same page the app serves, plain and gzipped."""
    from streaming_metrics import metrics_app

    metrics, registry = populate(3)
    app = metrics_app(registry)
    try:
        status, body = await asgi_get(app, TEXT_HEADERS)
        assert status == 200
        assert body == generate_latest(registry)
        status, gz = await asgi_get(app, PROMETHEUS_HEADERS)
        assert status == 200 and gz[:2] == b"\x1f\x8b"
    finally:
        app.close()
        metrics.unregister()


def test_stall_scenario_serves_scrapes_over_a_real_socket() -> None:
    """The stall scenario runs uvicorn, ticks, and completes the asked scrapes."""
    from streaming_metrics import metrics_app

    metrics, registry = populate(3)
    app = metrics_app(registry)
    try:
        scraped = asyncio.run(_stall_scenario(app, 2, 0.0))
        idle = asyncio.run(_stall_scenario(app, 0, 0.05))
    finally:
        app.close()
        metrics.unregister()
    assert scraped.scrapes == 2 and scraped.ticks > 0
    assert idle.scrapes == 0 and idle.ticks > 0


def test_every_stream_changes_changes_every_connection_series() -> None:
    """The "every value changed" case's hook moves each stream's connection count."""
    from bench.bench_exposition import _EveryStreamChanges, stream_ids

    metrics, registry = populate(5)
    change = _EveryStreamChanges(metrics, 5)
    name = "nova_streaming_websocket_connections"
    try:
        ids = stream_ids(5)
        before = [registry.get_sample_value(name, {"stream_id": sid}) for sid in ids]
        assert before == [1.0] * 5
        change()
        assert [registry.get_sample_value(name, {"stream_id": sid}) for sid in ids] == [2.0] * 5
        change()
        assert [registry.get_sample_value(name, {"stream_id": sid}) for sid in ids] == before
    finally:
        metrics.unregister()
