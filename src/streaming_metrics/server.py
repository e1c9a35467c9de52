"""Exposition of a registry over HTTP: a threaded server and an ASGI app (work in progress)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry


class MetricsServer:
    """A running metrics HTTP server (work in progress)."""

    port: int
    addr: str
    url: str

    def close(self) -> None:
        """Stop serving."""


def start_metrics_server(
    port: int = 8081,
    addr: str = "0.0.0.0",
    registry: CollectorRegistry | None = None,
    *,
    token: str | None = None,
) -> MetricsServer:
    """Start serving /metrics (work in progress)."""
    raise NotImplementedError


def metrics_app(registry: CollectorRegistry | None = None, *, token: str | None = None) -> Any:
    """Return an ASGI app serving /metrics (work in progress)."""
    raise NotImplementedError
