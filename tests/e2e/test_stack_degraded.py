"""End to end: `stack up --scenario degraded --fast`, then `verify` passes.

The stack runs the same generated rules with compressed time (the monitoring
renderer's ``for_scale``, ``eval_interval`` and ``rate_window`` options), real nginx-rtmp,
the service, Prometheus, Alertmanager, ffmpeg broadcasters and WebSocket viewers. The
checklist must pass, including the no-viewers, error-rate (with timeouts counted) and
ingestion-latency alerts delivered to the local receiver. Everything the stack started
is stopped afterwards, also when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nova_streaming.stack.ports import free_port
from nova_streaming.stack.scenario import HIGH_ERROR_RATE, HIGH_LATENCY, NO_VIEWERS
from nova_streaming.stack.supervisor import read_state, start_ticks, stop_recorded
from nova_streaming.stack.verify import VerifyConfig, format_table, verify

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0
VERIFY_WAIT_S = 150.0
PORT_NAMES = ("rtmp", "nginx_stat", "http", "metrics", "ingest", "prometheus",
              "alertmanager", "receiver", "preview", "redis")  # fmt: skip


def _stop(proc: subprocess.Popen[bytes], run_dir: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Whatever the orchestrator could not stop (it was killed) goes by the state file.
    stop_recorded(run_dir, timeout=10)


def test_degraded_stack_passes_the_checklist(tmp_path: Path) -> None:
    """Degraded scenario, compressed time: every check passes and alerts reach the receiver."""
    ports = {name: free_port() for name in PORT_NAMES}
    run_dir = tmp_path / "run"
    flags = [f"--{name.replace('_', '-')}-port={port}" for name, port in ports.items()]
    log = (tmp_path / "stack.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nova_streaming.cli", "stack", "up", "--fast",
         "--scenario", "degraded", "--run-dir", str(run_dir),
         "--k8s-dir", str(REPO / "k8s" / "monitoring"), "--duration", "280", *flags],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    children: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (run_dir / "urls.json").exists():
            assert proc.poll() is None, (tmp_path / "stack.out").read_text()
            assert time.monotonic() < deadline, "stack not ready in time"
            time.sleep(0.5)
        children = list((read_state(run_dir) or {}).get("children") or [])
        assert {c["name"] for c in children} >= {
            "service-0", "nginx", "alertmanager", "prometheus"
        }  # fmt: skip
        urls = json.loads((run_dir / "urls.json").read_text())
        config = VerifyConfig(
            prometheus_url=urls["prometheus"],
            alertmanager_url=urls["alertmanager"],
            receiver_url=urls["receiver"],
            scenario="degraded",
            window_minutes=2,
            service_url=urls["service_0"],
        )
        checks = verify(config, wait=VERIFY_WAIT_S, interval=3)
        table = format_table(checks)
        assert all(c.ok for c in checks), (
            f"{table}\n\nstack log:\n" + (tmp_path / "stack.out").read_text()[-3000:]
        )
        received = json.loads(
            subprocess.run(
                ["curl", "-sf", f"{urls['receiver']}/alerts"],
                capture_output=True, check=True, timeout=10,
            ).stdout
        )  # fmt: skip
        names = {
            a["labels"]["alertname"]
            for n in received
            for a in n["alerts"]
            if a["status"] == "firing"
        }
        assert {NO_VIEWERS, HIGH_ERROR_RATE, HIGH_LATENCY} <= names
    finally:
        _stop(proc, run_dir)
        log.close()
    for child in children:
        assert start_ticks(int(child["pid"])) != child["ticks"], f"{child['name']} still runs"
    assert read_state(run_dir) is None
