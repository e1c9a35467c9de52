"""A real Prometheus scrapes both front ends through the bearer token."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

TOKEN = "scrape-token-123"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """Start Prometheus on a free loopback port scraping the given targets every second."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(targets: list[str], token: str) -> str:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is a system package of this project (scripts/setup)"
        (tmp_path / "token").write_text(token)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "nova",
                    "authorization": {"credentials_file": str(tmp_path / "token")},
                    "static_configs": [{"targets": targets}],
                }
            ],
        }
        # JSON is YAML: no YAML library needed.
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))
        port = _free_port()
        procs.append(
            subprocess.Popen(
                [
                    binary,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _targets(api: str) -> list[dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{api}/api/v1/targets", timeout=5) as response:
            data: list[dict[str, Any]] = json.load(response)["data"]["activeTargets"]
            return data
    except OSError:
        return []


@pytest.mark.slow
def test_prometheus_scrapes_both_front_ends(
    prometheus: Any, serve: Any, registry: CollectorRegistry
) -> None:
    """Prometheus, with the bearer token, scrapes each front end successfully (up)."""
    endpoint = serve(registry, token=TOKEN)
    api = prometheus([f"{endpoint.host}:{endpoint.port}"], TOKEN)
    deadline = time.monotonic() + 60
    targets: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        targets = _targets(api)
        if targets and targets[0]["health"] != "unknown":
            break
        time.sleep(0.2)
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]


@pytest.mark.slow
def test_prometheus_wrong_token_is_down(
    prometheus: Any, serve_threaded: Any, registry: CollectorRegistry
) -> None:
    """Prometheus with a wrong token sees the target down with a 401."""
    endpoint = serve_threaded(registry, token=TOKEN)
    api = prometheus([f"{endpoint.host}:{endpoint.port}"], "not-the-token")
    deadline = time.monotonic() + 60
    targets: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        targets = _targets(api)
        if targets and targets[0]["health"] != "unknown":
            break
        time.sleep(0.2)
    assert [t["health"] for t in targets] == ["down"]
    assert "401" in targets[0]["lastError"]
