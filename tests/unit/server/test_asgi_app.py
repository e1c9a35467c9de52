"""The ASGI app's own behaviour: rendering off the event loop, lifespan, other scopes,
mounting inside a Starlette service."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from streaming_metrics._exposition import MAX_CONCURRENT_RENDERS
from streaming_metrics.server import MetricsApp, metrics_app


class _ThreadProbe:
    """A collector recording, for each collect, its thread and whether a loop runs there."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def collect(self) -> Iterable[Metric]:
        try:
            asyncio.get_running_loop()
            loop_running = True
        except RuntimeError:
            loop_running = False
        self.calls.append((threading.get_ident(), loop_running))
        yield GaugeMetricFamily("demo_probe", "Records where collect ran.", value=1)


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_render_runs_off_event_loop(registry: CollectorRegistry) -> None:
    """collect() runs on a worker thread with no running event loop, never on the loop."""
    probe = _ThreadProbe()
    registry.register(probe)
    app = metrics_app(registry)
    loop_thread = threading.get_ident()
    async with _client(app) as client:
        replies = await asyncio.gather(*(client.get("/metrics") for _ in range(5)))
    app.close()
    assert [r.status_code for r in replies] == [200] * 5
    assert len(probe.calls) == 5
    for thread_id, loop_running in probe.calls:
        assert thread_id != loop_thread
        assert not loop_running
    # A small dedicated pool: concurrent scrapes do not each get a thread.
    assert len({thread_id for thread_id, _ in probe.calls}) <= 2


async def test_loop_stays_responsive_during_render(registry: CollectorRegistry) -> None:
    """While a render is blocked, the loop still answers /healthz."""
    gate = threading.Event()
    started = threading.Event()

    class Blocking:
        def collect(self) -> Iterable[Metric]:
            started.set()
            gate.wait(timeout=60)
            yield GaugeMetricFamily("demo_blocking", "Blocks until released.", value=1)

    registry.register(Blocking())
    app = metrics_app(registry)
    async with _client(app) as client:
        scrape = asyncio.create_task(client.get("/metrics"))
        await asyncio.to_thread(started.wait, 30)
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert not scrape.done()
        gate.set()
        reply = await scrape
    app.close()
    assert reply.status_code == 200
    assert "demo_blocking 1.0" in reply.text


async def test_render_limit_503(registry: CollectorRegistry) -> None:
    """Beyond the concurrent-render limit the app answers 503 without queueing work."""
    gate = threading.Event()

    class Blocking:
        def collect(self) -> Iterable[Metric]:
            gate.wait(timeout=60)
            yield GaugeMetricFamily("demo_blocking", "Blocks until released.", value=1)

    registry.register(Blocking())
    app = metrics_app(registry)
    async with _client(app) as client:
        scrapes = [
            asyncio.create_task(client.get("/metrics")) for _ in range(MAX_CONCURRENT_RENDERS + 1)
        ]
        # While the renders are blocked, only a refused scrape can finish.
        done, _ = await asyncio.wait(scrapes, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert [t.result().status_code for t in done] == [503]
        gate.set()
        replies = await asyncio.gather(*scrapes)
        after = await client.get("/metrics")
    app.close()
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] * MAX_CONCURRENT_RENDERS + [503]
    assert after.status_code == 200


async def test_lifespan_protocol(registry: CollectorRegistry) -> None:
    """The app completes lifespan startup and shutdown, and serves again afterwards."""
    app = metrics_app(registry)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await inbox.put({"type": "lifespan.startup"})
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send), 10
    )
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    async with _client(app) as client:
        assert (await client.get("/metrics")).status_code == 200
    app.close()


async def test_websocket_scope_is_refused(registry: CollectorRegistry) -> None:
    """A websocket scope is closed without being accepted."""
    app = metrics_app(registry)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "websocket", "path": "/metrics", "headers": []}, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]


async def test_unknown_scope_type_raises(registry: CollectorRegistry) -> None:
    """An unknown scope type raises, as the ASGI spec asks."""
    app = metrics_app(registry)

    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def send(message: Any) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="scope type"):
        await app({"type": "telepathy"}, receive, send)


async def test_inside_starlette_routes(registry: CollectorRegistry) -> None:
    """Routed from a Starlette service, /metrics and /healthz work beside its routes."""
    app = metrics_app(registry, token="tkn")

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("viewers")

    service = Starlette(routes=[Route("/", home), Route("/metrics", app), Route("/healthz", app)])
    async with _client(service) as client:
        assert (await client.get("/")).text == "viewers"
        assert (await client.get("/healthz")).text == "ok"
        assert (await client.get("/metrics")).status_code == 401
        reply = await client.get("/metrics", headers={"Authorization": "Bearer tkn"})
    app.close()
    assert reply.status_code == 200
    names = {f.name for f in text_string_to_metric_families(reply.text)}
    assert "demo_temperature_celsius" in names


async def test_under_starlette_mount(registry: CollectorRegistry) -> None:
    """Mounted under a prefix, the app serves <prefix>/metrics and <prefix>/healthz."""
    app = metrics_app(registry)
    service = Starlette(routes=[Mount("/ops", app=app)])
    async with _client(service) as client:
        metrics = await client.get("/ops/metrics")
        health = await client.get("/ops/healthz")
        missing = await client.get("/ops/other")
    app.close()
    assert metrics.status_code == 200
    assert "demo_requests_total" in metrics.text
    assert health.text == "ok"
    assert missing.status_code == 404


async def test_gzip_through_httpx(registry: CollectorRegistry) -> None:
    """A client that accepts gzip (httpx by default) gets gzip and decodes it."""
    app = metrics_app(registry)
    async with _client(app) as client:
        reply = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    app.close()
    assert reply.headers["content-encoding"] == "gzip"
    assert "demo_latency_seconds_bucket" in reply.text


async def _asgi_get(app: Any, path: str = "/metrics") -> int:
    """One GET straight through the ASGI interface; returns the status sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    await app(scope, receive, send)
    return int(sent[0]["status"])


async def test_cancelled_queued_scrapes_give_back_their_render_slots(
    registry: CollectorRegistry,
) -> None:
    """Scrapes cancelled while queued behind busy workers (client gone) free their slots:
    afterwards the full render limit is available again, none is 503."""
    gate = threading.Event()
    inside = threading.Semaphore(0)

    class Blocking:
        def collect(self) -> Iterable[Metric]:
            inside.release()
            gate.wait(timeout=60)
            yield GaugeMetricFamily("demo_blocking", "Blocks until released.", value=1)

    registry.register(Blocking())
    app = metrics_app(registry)
    try:
        scrapes = [asyncio.create_task(_asgi_get(app)) for _ in range(MAX_CONCURRENT_RENDERS)]
        # Both workers busy; the other renders wait in the executor's queue.
        for _ in range(MetricsApp._WORKERS):
            assert await asyncio.to_thread(inside.acquire, True, 30), "renders did not start"
        queued = scrapes[MetricsApp._WORKERS :]
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        gate.set()
        assert await asyncio.gather(*scrapes[: MetricsApp._WORKERS]) == [200] * 2
        # The full limit again: as many concurrent scrapes as slots, all rendered.
        again = await asyncio.gather(*(_asgi_get(app) for _ in range(MAX_CONCURRENT_RENDERS)))
    finally:
        gate.set()
        app.close()
    assert again == [200] * MAX_CONCURRENT_RENDERS


async def test_close_with_queued_renders_gives_back_their_slots(
    registry: CollectorRegistry,
) -> None:
    """close() while renders wait in the queue frees their slots (a later request starts
    new workers and may use the full limit)."""
    gate = threading.Event()
    inside = threading.Semaphore(0)

    class Blocking:
        def collect(self) -> Iterable[Metric]:
            inside.release()
            gate.wait(timeout=60)
            yield GaugeMetricFamily("demo_blocking", "Blocks until released.", value=1)

    registry.register(Blocking())
    app = metrics_app(registry)
    try:
        scrapes = [asyncio.create_task(_asgi_get(app)) for _ in range(MAX_CONCURRENT_RENDERS)]
        for _ in range(MetricsApp._WORKERS):
            assert await asyncio.to_thread(inside.acquire, True, 30), "renders did not start"
        app.close()
        gate.set()
        await asyncio.gather(*scrapes, return_exceptions=True)
        again = await asyncio.gather(*(_asgi_get(app) for _ in range(MAX_CONCURRENT_RENDERS)))
    finally:
        gate.set()
        app.close()
    assert again == [200] * MAX_CONCURRENT_RENDERS


async def test_big_page_is_sent_in_pieces() -> None:
    """A page over 128 KiB goes out in body messages of at most 128 KiB that join to
    the page (a single family's block included)."""
    from prometheus_client import Gauge, generate_latest

    registry = CollectorRegistry()
    gauge = Gauge("demo_wide", "Many series.", ["n"], registry=registry)
    for n in range(5_000):
        gauge.labels(str(n)).set(n)
    app = metrics_app(registry)
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        messages.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": []}
    try:
        await app(scope, receive, send)
    finally:
        app.close()
    bodies = [m for m in messages if m["type"] == "http.response.body"]
    page = generate_latest(registry)
    assert len(page) > 2 * 65_536
    assert len(bodies) >= len(page) // (2 * 65_536)
    assert all(len(m["body"]) <= 2 * 65_536 for m in bodies)
    assert all(m.get("more_body") for m in bodies[:-1]) and not bodies[-1].get("more_body")
    assert b"".join(m["body"] for m in bodies) == page


async def test_other_tasks_run_between_the_pieces_of_a_big_page() -> None:
    """A server whose send never suspends (the socket takes every piece at once) still
    runs the loop's other tasks between two pieces: 40 pieces back to back were the
    worst event-loop stall of a 50k-stream scrape."""
    from prometheus_client import Gauge

    registry = CollectorRegistry()
    gauge = Gauge("demo_wide", "Many series.", ["n"], registry=registry)
    for n in range(5_000):
        gauge.labels(str(n)).set(n)
    app = metrics_app(registry)
    passes = 0
    seen: list[int] = []
    done = asyncio.Event()

    async def other_task() -> None:
        nonlocal passes
        while not done.is_set():
            passes += 1
            await asyncio.sleep(0)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:  # never suspends
        if message["type"] == "http.response.body":
            seen.append(passes)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": []}
    other = asyncio.create_task(other_task())
    try:
        await app(scope, receive, send)
    finally:
        done.set()
        await other
        app.close()
    assert len(seen) >= 3
    assert all(later > earlier for earlier, later in itertools.pairwise(seen))
