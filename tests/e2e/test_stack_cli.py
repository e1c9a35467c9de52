"""``nova-streaming stack up`` fails fast and clearly when a port is taken."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nova_streaming.stack.orchestrator import StackPorts
from nova_streaming.stack.supervisor import read_state

pytestmark = pytest.mark.slow


_ROLES = ("rtmp", "nginx_stat", "http", "metrics", "ingest", "prometheus", "alertmanager",
          "receiver", "preview", "redis")  # fmt: skip
_REPLICA_ROLES = ("http", "metrics", "ingest")
_STEP = 100


def _reserve(port: int = 0) -> socket.socket | None:
    """Hold ``port`` (0: one of the kernel's choice) bound but not listening, with
    SO_REUSEADDR: nobody else can bind it or get it as an ephemeral port, yet the
    stack's own check (a SO_REUSEADDR bind and a connect) still finds it free."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except (OSError, OverflowError):
        sock.close()
        return None
    return sock


def _reserve_run(count: int) -> list[socket.socket]:
    """``count`` held ports ``_STEP`` apart (a role's port for each replica)."""
    while True:
        first = _reserve()
        if first is None:
            raise RuntimeError("no free port on 127.0.0.1")
        held = [first]
        port = int(first.getsockname()[1])
        for index in range(1, count):
            sock = _reserve(port + index * _STEP)
            if sock is None:
                break
            held.append(sock)
        if len(held) == count:
            return held
        for sock in held:
            sock.close()


def _port_flags(held: contextlib.ExitStack, replicas: int) -> list[str]:
    """A ``--*-port`` flag per role, every port the stack would use (replica ``i``'s
    ones too, ``i * step`` above the first's) held until ``held`` closes: a port merely
    seen free could be taken by another process before ``stack up`` checks it, and the
    error would then name that port instead of the one the test took."""
    flags = ["--replica-step", str(_STEP)]
    for name in _ROLES:
        ports = _reserve_run(replicas if name in _REPLICA_ROLES else 1)
        for sock in ports:
            held.enter_context(sock)
        flags += ["--" + name.replace("_", "-") + "-port", str(ports[0].getsockname()[1])]
    return flags


def test_stack_up_with_a_taken_port_fails_naming_it(tmp_path: Path) -> None:
    """A port already in use stops `stack up` before anything starts, naming the port."""
    with contextlib.ExitStack() as held, socket.socket() as taken:
        flags = _port_flags(held, replicas=2)
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
