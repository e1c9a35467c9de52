"""The probes and ports of the service Deployment work against the real service.

`nova-streaming serve` (the image's ENTRYPOINT) runs with the Deployment's own
environment: its literal NOVA_ values as rendered, each secretKeyRef filled with a test
value, and only what a pod gets from the cluster replaced for this machine: loopback
bind addresses, free ports (others run servers here) and, for the scaled variant, the
Redis URL of a real Redis started for the test. Every httpGet probe of the manifest is
then requested on the port its name resolves to.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova_testing.kustomize import kustomize_build
from nova_testing.manifests import Resource, one
from nova_testing.ports import free_port
from nova_testing.redis_server import RedisServer

CLI = str(Path(sys.executable).parent / "nova-streaming")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis for the scaled variant's presence."""
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        server.cleanup()


def _manifest_env(container: Resource) -> dict[str, str]:
    env = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = f"test-{item['name'].lower()}"
    return env


def _probes(container: Resource) -> list[tuple[str, str, str]]:
    found = []
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[kind]["httpGet"]
        found.append((kind, probe["path"], probe["port"]))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["single", "scaled"])
def test_probes_answer_on_a_service_started_with_the_manifest_env(
    variant: str, k8s: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """startup, readiness and liveness paths answer 200 on the `http` port; /metrics
    answers on the `metrics` port; the ingest port accepts connections."""
    deployment = one(kustomize_build(k8s / variant), "Deployment", "nova-streaming")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_")}
    env.update(_manifest_env(container))
    if env["NOVA_PRESENCE"] == "redis":
        env["NOVA_REDIS_URL"] = request.getfixturevalue("redis_url")
    ports = {name: free_port() for name in ("http", "metrics", "ingest")}
    env.update(
        NOVA_HOST="127.0.0.1",
        NOVA_METRICS_HOST="127.0.0.1",
        NOVA_PORT=str(ports["http"]),
        NOVA_METRICS_PORT=str(ports["metrics"]),
        NOVA_INGEST_PORT=str(ports["ingest"]),
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([CLI, "serve"], env=env, stdout=sink, stderr=sink)
    try:
        probes = _probes(container)
        assert {port for _, _, port in probes} == {"http"}
        ready_path = next(path for kind, path, _ in probes if kind == "readinessProbe")
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{ports['http']}{ready_path}").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, f"serve exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"never ready: {log.read_text()}"
            time.sleep(0.05)
        for kind, path, port in probes:
            response = httpx.get(f"http://127.0.0.1:{ports[port]}{path}")
            assert response.status_code == 200, (kind, path)
        assert httpx.get(f"http://127.0.0.1:{ports['http']}/no-such-probe").status_code == 404
        metrics = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics").text
        assert f'region="{env["NOVA_REGION"]}"' in metrics
        with socket.create_connection(("127.0.0.1", ports["ingest"]), timeout=5):
            pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
