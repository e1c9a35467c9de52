"""Fixtures for the exposition tests: a populated registry, both front ends on real
loopback sockets, and a raw HTTP client (http.client: no automatic decompression)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streaming_metrics import definitions as d
from streaming_metrics.server import metrics_app, start_metrics_server


@dataclass(frozen=True)
class Endpoint:
    """Where a front end listens."""

    host: str
    port: int


@dataclass(frozen=True)
class Reply:
    """A raw HTTP reply: status, headers (case-insensitive) and undecoded body."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


Fetch = Callable[..., Reply]
Serve = Callable[..., Endpoint]


def fetch_raw(
    endpoint: Endpoint | tuple[str, int],
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request on a fresh connection; the body is returned as sent (no gunzip)."""
    host, port = (endpoint.host, endpoint.port) if isinstance(endpoint, Endpoint) else endpoint
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


@pytest.fixture
def fetch() -> Fetch:
    """The raw HTTP client."""
    return fetch_raw


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry holding a gauge, a labelled counter and two histograms."""
    reg = CollectorRegistry()
    Gauge("demo_temperature_celsius", "Demo gauge.", registry=reg).set(21.5)
    requests = Counter("demo_requests", "Demo counter.", ["path"], registry=reg)
    requests.labels("/a").inc(3)
    Histogram("demo_latency_seconds", "Demo histogram.", registry=reg).observe(0.2)
    # The contract's histogram whose family name itself ends in _total.
    viewers = Histogram(
        d.VIEWERS_TOTAL.name,
        d.VIEWERS_TOTAL.help,
        list(d.VIEWERS_TOTAL.labels),
        buckets=d.VIEWERS_TOTAL.buckets,
        registry=reg,
    )
    viewers.labels("eu").observe(7)
    return reg


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    """Poll a condition until it holds or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def serve_threaded() -> Iterator[Serve]:
    """Start the threaded server on 127.0.0.1:<free port>; closed after the test."""
    servers = []

    def start(registry: CollectorRegistry, token: str | None = None) -> Endpoint:
        server = start_metrics_server(0, "127.0.0.1", registry, token=token)
        servers.append(server)
        return Endpoint("127.0.0.1", server.port)

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def serve_uvicorn() -> Iterator[Serve]:
    """Serve metrics_app with uvicorn on 127.0.0.1:<free port>; stopped after the test."""
    running: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(registry: CollectorRegistry, token: str | None = None) -> Endpoint:
        config = uvicorn.Config(
            metrics_app(registry, token=token),
            lifespan="on",
            log_level="warning",
            http="h11",
            ws="none",
            loop="asyncio",
        )
        server = uvicorn.Server(config)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        wait_for(lambda: server.started, "uvicorn to start")
        return Endpoint("127.0.0.1", sock.getsockname()[1])

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(params=["threaded", "asgi-uvicorn"])
def serve(request: pytest.FixtureRequest) -> Serve:
    """Each front end in turn: the threaded server and the ASGI app under uvicorn."""
    name = "serve_threaded" if request.param == "threaded" else "serve_uvicorn"
    fixture: Serve = request.getfixturevalue(name)
    return fixture
