"""``nova-streaming stack up`` fails fast and clearly when a port is taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nova_streaming.stack.orchestrator import StackPorts
from nova_streaming.stack.ports import free_port
from nova_streaming.stack.supervisor import read_state

pytestmark = pytest.mark.slow


def _port_flags() -> list[str]:
    flags: list[str] = []
    for name in ("rtmp", "nginx_stat", "http", "metrics", "ingest", "prometheus",
                 "alertmanager", "receiver", "preview", "redis"):  # fmt: skip
        flags += ["--" + name.replace("_", "-") + "-port", str(free_port())]
    return flags


def test_stack_up_with_a_taken_port_fails_naming_it(tmp_path: Path) -> None:
    """A port already in use stops `stack up` before anything starts, naming the port."""
    flags = _port_flags()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flags[flags.index("--prometheus-port") + 1] = str(port)
        result = subprocess.run(
            [sys.executable, "-m", "nova_streaming.cli", "stack", "up",
             "--run-dir", str(tmp_path / "run"), "--replicas", "2", *flags],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"port {port} (prometheus) is already in use" in result.stderr
    assert "starting" not in result.stdout
    state = read_state(tmp_path / "run")
    assert state is None or state["children"] == []


def test_replica_ports_follow_the_step() -> None:
    """Replica i listens on the first replica's ports plus i times the step."""
    ports = StackPorts(http=20000, metrics=20001, ingest=20002, replica_step=10)
    assert ports.replica(2) == (20020, 20021, 20022)
    roles = ports.roles(2, redis=True, preview=False)
    assert roles["service 1 http"] == 20010
    assert "redis" in roles and "preview" not in roles
