"""The threaded server under idle and flooding clients, on real loopback sockets: idle
connections cost no thread and do not hold up a scrape, a connection that sends no
complete request is closed after the idle timeout, connections beyond the cap are
refused at once (and counted), and the bearer token is checked before any render."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import GaugeMetricFamily

from streaming_metrics.server import MetricsServer, start_metrics_server

from .conftest import wait_for


@contextlib.contextmanager
def _connections(server: MetricsServer, count: int) -> Iterator[list[socket.socket]]:
    """``count`` open connections that send nothing (closed on exit)."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            opened.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _threads_of(server: MetricsServer) -> set[str]:
    """Names of the live threads of ``server`` (they carry its port)."""
    return {
        t.name
        for t in threading.enumerate()
        if t.name.endswith(f"-{server.port}") or f"-{server.port}-" in t.name
    }


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset counts as closed)."""
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_idle_connections_take_no_thread_and_do_not_block_a_scrape(
    registry: CollectorRegistry, fetch: Any
) -> None:
    """40 idle connections (under the cap) start no thread; a scrape is answered while
    they stay open."""
    with start_metrics_server(0, "127.0.0.1", registry, max_connections=64) as server:
        assert fetch(("127.0.0.1", server.port), "/healthz").status == 200
        before = _threads_of(server)  # the serve loop and one worker
        with _connections(server, 40):
            wait_for(lambda: server.open_connections == 40, "40 idle connections accepted")
            assert _threads_of(server) == before
            reply = fetch(("127.0.0.1", server.port), "/metrics")
            assert reply.status == 200
            assert b"demo_temperature_celsius 21.5" in reply.body
            # At most one more worker (the first may not be back when the scrape came).
            assert len(_threads_of(server)) <= len(before) + 1
        wait_for(lambda: server.open_connections == 0, "idle connections closed")
        assert server.refused_connections == 0


def test_flood_beyond_the_cap_is_refused_at_once(registry: CollectorRegistry, fetch: Any) -> None:
    """With the cap reached, a new connection gets 503 and is closed without waiting for
    anything, and it is counted; the open ones are unaffected."""
    with (
        start_metrics_server(0, "127.0.0.1", registry, max_connections=8) as server,
        _connections(server, 8),
    ):
        wait_for(lambda: server.open_connections == 8, "the cap reached")
        for n in range(1, 6):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
                answer = _read_all(extra)  # no request sent: the refusal needs none
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
            assert b"Connection: close" in answer
            assert server.refused_connections == n
        assert server.open_connections == 8


def test_scrape_after_flood_recedes(registry: CollectorRegistry, fetch: Any) -> None:
    """A refused flood leaves the server serving as soon as the flood's connections go."""
    with start_metrics_server(0, "127.0.0.1", registry, max_connections=4) as server:
        with _connections(server, 4):
            wait_for(lambda: server.open_connections == 4, "the cap reached")
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
                assert _read_all(extra).startswith(b"HTTP/1.1 503 ")
        wait_for(lambda: server.open_connections == 0, "flood gone")
        assert fetch(("127.0.0.1", server.port), "/metrics").status == 200


@pytest.mark.parametrize("partial", [b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"])
def test_connection_without_a_complete_request_is_closed_after_the_idle_timeout(
    registry: CollectorRegistry, partial: bytes
) -> None:
    """A silent client, or one that stops mid-headers (slowloris), is closed by the server
    after the idle timeout, not after 30 s."""
    with (
        start_metrics_server(0, "127.0.0.1", registry, idle_timeout=0.5) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock,
    ):
        sock.sendall(partial)
        # recv returns b"" once the server closes; a 20 s socket timeout means it did not.
        assert _read_all(sock) == b""
        wait_for(lambda: server.open_connections == 0, "connection released")


def test_idle_keepalive_connection_is_closed_after_the_idle_timeout(
    registry: CollectorRegistry,
) -> None:
    """After an answer, a keep-alive connection that sends nothing more is closed too."""
    with (
        start_metrics_server(0, "127.0.0.1", registry, idle_timeout=0.5) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock,
    ):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_all(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"ok")


def test_pipelined_requests_are_all_answered(registry: CollectorRegistry) -> None:
    """Two requests in one packet get two answers, in order, on the same connection."""
    with (
        start_metrics_server(0, "127.0.0.1", registry) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock,
    ):
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answer = _read_all(sock)  # the 404 closes the connection
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"HTTP/1.1 404 " in answer


def test_token_checked_before_any_render(registry: CollectorRegistry, fetch: Any) -> None:
    """Without the bearer token, /metrics answers 401 and the registry is never
    collected; with it, one render."""
    collected: list[int] = []

    class Counting:
        def collect(self) -> Iterable[Metric]:
            collected.append(1)
            yield GaugeMetricFamily("demo_counted", "Counts collects.", value=1)

    registry.register(Counting())
    with start_metrics_server(0, "127.0.0.1", registry, token="tok") as server:
        endpoint = ("127.0.0.1", server.port)
        for auth in (None, "Bearer wrong", "Basic dG9rOg=="):
            headers = {"Authorization": auth} if auth else {}
            assert fetch(endpoint, "/metrics", headers=headers).status == 401
        assert collected == []
        ok = fetch(endpoint, "/metrics", headers={"Authorization": "Bearer tok"})
        assert ok.status == 200 and b"demo_counted 1.0" in ok.body
        assert collected == [1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": True}, "max_connections"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"idle_timeout": float("nan")}, "idle_timeout"),
    ],
)
def test_bad_limits_rejected(kwargs: dict[str, Any], match: str) -> None:
    """Limits that cannot work are a ValueError at start."""
    with pytest.raises(ValueError, match=match):
        start_metrics_server(0, "127.0.0.1", CollectorRegistry(), **kwargs)
