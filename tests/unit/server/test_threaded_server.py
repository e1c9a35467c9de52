"""The threaded server's own behaviour: binding, ports, IPv6, closing, bad clients."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterable
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from streaming_metrics._exposition import MAX_CONCURRENT_RENDERS
from streaming_metrics.server import MetricsServer, start_metrics_server


def test_attributes_and_url(registry: CollectorRegistry, fetch: Any) -> None:
    """port 0 gets a real port; addr, port and url describe where it serves."""
    with start_metrics_server(0, "127.0.0.1", registry) as server:
        assert server.port > 0
        assert server.addr == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"


def test_url_is_fetchable(registry: CollectorRegistry) -> None:
    """The url attribute is a working scrape URL."""
    import urllib.request

    with (
        start_metrics_server(0, "127.0.0.1", registry) as server,
        urllib.request.urlopen(server.url, timeout=10) as response,
    ):
        body = response.read().decode("utf-8")
    names = {f.name for f in text_string_to_metric_families(body)}
    assert "demo_temperature_celsius" in names


def test_ipv6_loopback(registry: CollectorRegistry, fetch: Any) -> None:
    """Binding ::1 serves over IPv6 and the url brackets the address."""
    with start_metrics_server(0, "::1", registry) as server:
        assert server.addr == "::1"
        assert server.url == f"http://[::1]:{server.port}/metrics"
        endpoint = ("::1", server.port)
        reply = fetch(endpoint, "/metrics")
        assert reply.status == 200
        assert b"demo_temperature_celsius 21.5" in reply.body


def test_wildcard_url_points_at_loopback(registry: CollectorRegistry) -> None:
    """On 0.0.0.0 the url uses 127.0.0.1, a host one can actually connect to."""
    with start_metrics_server(0, "0.0.0.0", registry) as server:
        assert server.addr == "0.0.0.0"
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"


def test_port_in_use_raises_naming_address(registry: CollectorRegistry) -> None:
    """A port already taken raises OSError(EADDRINUSE) whose message names addr:port."""
    with start_metrics_server(0, "127.0.0.1", registry) as first:
        with pytest.raises(OSError) as info:
            start_metrics_server(first.port, "127.0.0.1", registry)
        assert info.value.errno == errno.EADDRINUSE
        assert f"127.0.0.1:{first.port}" in str(info.value)
        assert "already in use" in str(info.value)


def test_port_in_use_ipv6_message(registry: CollectorRegistry) -> None:
    """The port-in-use message brackets an IPv6 address."""
    with (
        start_metrics_server(0, "::1", registry) as first,
        pytest.raises(OSError, match=rf"\[::1\]:{first.port}"),
    ):
        start_metrics_server(first.port, "::1", registry)


def test_close_frees_port(registry: CollectorRegistry, fetch: Any) -> None:
    """After close() the port is free: connections are refused and a new server binds it."""
    server = start_metrics_server(0, "127.0.0.1", registry)
    port = server.port
    endpoint = ("127.0.0.1", port)
    assert fetch(endpoint, "/healthz").status == 200
    server.close()
    assert server.closed
    with pytest.raises(ConnectionRefusedError):
        fetch(endpoint, "/healthz")
    with start_metrics_server(port, "127.0.0.1", registry) as again:
        assert again.port == port
        assert fetch(endpoint, "/healthz").status == 200


def test_close_is_idempotent(registry: CollectorRegistry) -> None:
    """close() twice, or after the with block, does nothing more and does not raise."""
    with start_metrics_server(0, "127.0.0.1", registry) as server:
        pass
    assert server.closed
    server.close()
    server.close()
    assert "closed" in repr(server)


def test_close_drops_keepalive_connections(registry: CollectorRegistry) -> None:
    """An open keep-alive connection stops being served once the server is closed."""
    import http.client

    server = start_metrics_server(0, "127.0.0.1", registry)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        assert first.read() == b"ok"
        assert not first.will_close  # HTTP/1.1 keep-alive
        server.close()
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            conn.request("GET", "/healthz")
            conn.getresponse().read()
    finally:
        conn.close()


def test_keepalive_serves_several_requests(registry: CollectorRegistry) -> None:
    """Successful answers keep the connection open for the next scrape."""
    import http.client

    with start_metrics_server(0, "127.0.0.1", registry) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            for _ in range(3):
                conn.request("GET", "/metrics")
                response = conn.getresponse()
                assert response.status == 200
                assert b"demo_requests_total" in response.read()
        finally:
            conn.close()


def test_default_registry_when_none(fetch: Any) -> None:
    """registry=None serves prometheus_client's default REGISTRY."""
    collector = _StaticCollector("nova_server_test_default_registry_probe")
    REGISTRY.register(collector)
    try:
        with start_metrics_server(0, "127.0.0.1") as server:
            endpoint = ("127.0.0.1", server.port)
            body = fetch(endpoint, "/metrics").body
        assert b"nova_server_test_default_registry_probe 1.0" in body
    finally:
        REGISTRY.unregister(collector)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"GET " + b"/" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n" + b"X-Bad-Header-Without-Colon\r\n\r\n",
        b"GET /metrics?name[]=%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
        b"",
    ],
    ids=[
        "tls-hello",
        "garbage",
        "bad-version",
        "oversize-line",
        "bad-header",
        "bad-query-bytes",
        "bad-auth-bytes",
        "empty",
    ],
)
def test_malformed_requests_do_not_kill_server(
    registry: CollectorRegistry, fetch: Any, raw: bytes
) -> None:
    """Garbage, TLS hellos, oversize lines and bad bytes get an error or a close; the
    server keeps answering."""
    with start_metrics_server(0, "127.0.0.1", registry) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        if answer:
            status = int(answer.split(b" ", 2)[1])
            assert status in (200, 400, 401, 404, 414, 431, 505), answer[:200]
        endpoint = ("127.0.0.1", server.port)
        assert fetch(endpoint, "/metrics").status == 200


def test_concurrent_render_limit(registry: CollectorRegistry, fetch: Any) -> None:
    """Beyond the concurrent-render limit a scrape gets 503 at once; once the renders
    finish, scrapes succeed again."""
    gate = threading.Event()
    inside = threading.Semaphore(0)

    class Slow:
        def collect(self) -> Iterable[Metric]:
            inside.release()
            gate.wait(timeout=60)
            yield GaugeMetricFamily("demo_slow", "Blocks until released.", value=1)

    registry.register(Slow())
    with start_metrics_server(0, "127.0.0.1", registry) as server:
        endpoint = ("127.0.0.1", server.port)
        replies: list[int] = []
        workers = [
            threading.Thread(target=lambda: replies.append(fetch(endpoint, "/metrics").status))
            for _ in range(MAX_CONCURRENT_RENDERS)
        ]
        for worker in workers:
            worker.start()
        try:
            for _ in range(MAX_CONCURRENT_RENDERS):
                assert inside.acquire(timeout=30), "renders did not start"
            refused = fetch(endpoint, "/metrics")
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "1"
            assert fetch(endpoint, "/healthz").status == 200
        finally:
            gate.set()
            for worker in workers:
                worker.join(timeout=30)
        assert replies == [200] * MAX_CONCURRENT_RENDERS
        assert fetch(endpoint, "/metrics").status == 200


@pytest.mark.parametrize("port", [-1, 65536, "8081", True, 1.5])
def test_bad_port_rejected(port: Any) -> None:
    """A port that is not an int in 0..65535 is a ValueError naming the port."""
    with pytest.raises(ValueError, match="port"):
        start_metrics_server(port, "127.0.0.1", CollectorRegistry())


@pytest.mark.parametrize("token", ["", "has space", "tab\there", "naïve"])
def test_bad_token_rejected(token: str) -> None:
    """A token that cannot travel in a Bearer header is refused at start."""
    with pytest.raises(ValueError, match="token"):
        start_metrics_server(0, "127.0.0.1", CollectorRegistry(), token=token)


def test_unresolvable_address() -> None:
    """An address that does not resolve raises OSError naming it."""
    with pytest.raises(OSError, match=r"no-such-host\.invalid"):
        start_metrics_server(0, "no-such-host.invalid", CollectorRegistry())


def test_bad_registry_type() -> None:
    """Something that is not a CollectorRegistry is a TypeError at start."""
    with pytest.raises(TypeError, match="CollectorRegistry"):
        start_metrics_server(0, "127.0.0.1", object())  # type: ignore[arg-type]


def test_server_threads_are_daemons(registry: CollectorRegistry) -> None:
    """The serving thread is a daemon, so it never keeps the process alive."""
    with start_metrics_server(0, "127.0.0.1", registry) as server:
        threads = [t for t in threading.enumerate() if t.name == f"metrics-server-{server.port}"]
        assert len(threads) == 1
        assert threads[0].daemon
    assert isinstance(server, MetricsServer)


class _StaticCollector:
    """A collector exposing one constant gauge."""

    def __init__(self, name: str) -> None:
        self._name = name

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(self._name, "Probe.", value=1)


@pytest.mark.parametrize(
    "target", [b"http://[::1/metrics", b"http://]x/metrics", b"http://[x]/metrics"]
)
def test_unparsable_request_target_gets_400(registry: CollectorRegistry, target: bytes) -> None:
    """A request target urlsplit cannot parse (an unclosed IPv6 bracket) gets a 400
    status line, not a silently dropped connection."""
    with (
        start_metrics_server(0, "127.0.0.1", registry) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"bad request" in answer
