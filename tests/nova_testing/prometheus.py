"""A real Prometheus for end-to-end tests: started on a free port against given
targets, queried through its HTTP API, polled with a deadline."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from nova_streaming.stack.ports import free_port
from nova_streaming.stack.prometheus import (
    PrometheusConfig,
    prometheus_argv,
    render_prometheus_config,
)
from nova_streaming.stack.supervisor import Supervisor, http_ready


@contextlib.contextmanager
def running_prometheus(
    workdir: Path, targets: Sequence[str], rule_files: Sequence[Path] = ()
) -> Iterator[str]:
    """Prometheus scraping ``targets`` every second (exemplar storage on, as the local
    stack runs it), evaluating ``rule_files`` every second; yields its base URL."""
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        render_prometheus_config(
            PrometheusConfig(
                metrics_targets=list(targets),
                rule_files=list(rule_files),
                scrape_interval=1.0,
                scrape_timeout=1.0,
                evaluation_interval=1.0,
            )
        )
    )
    base = f"http://127.0.0.1:{port}"
    with Supervisor(workdir / "run") as supervisor:
        supervisor.start(
            "prometheus",
            prometheus_argv(config, workdir / "data", port),
            ready=http_ready(f"{base}/-/ready"),
        )
        yield base


def get_json(url: str) -> Any:
    """The JSON document at ``url``."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def instant_query(base: str, promql: str) -> list[Any]:
    """The result vector of ``promql`` evaluated now."""
    result: list[Any] = get_json(
        f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    )["data"]["result"]
    return result


def poll(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """``predicate()`` once it is truthy (every 0.25 s); fail the test after
    ``timeout`` seconds, naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)
