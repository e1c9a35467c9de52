"""The supervisor stops everything it started, and nothing else."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from nova_streaming.stack.ports import PortInUseError, check_ports_free, free_port
from nova_streaming.stack.supervisor import (
    ProcessStartError,
    Supervisor,
    read_state,
    start_ticks,
    stop_recorded,
    tcp_ready,
)


def _gone(pid: int) -> bool:
    return start_ticks(pid) is None


def _wait(predicate: object, timeout: float = 10.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def test_stop_all_stops_children_their_groups_and_nothing_else(tmp_path: Path) -> None:
    """Children, their own children and frozen (SIGSTOP) ones all stop; a bystander lives."""
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        sup = Supervisor(tmp_path)
        plain = sup.start("plain", ["sleep", "60"])
        forking = sup.start("forking", ["sh", "-c", "sleep 60 & sleep 60 & wait"])
        frozen = sup.start("frozen", ["sleep", "60"])
        assert _wait(lambda: len(_group_members(forking.pid)) >= 3)
        os.killpg(frozen.pid, signal.SIGSTOP)
        state = read_state(tmp_path)
        assert state is not None
        assert [c["name"] for c in state["children"]] == ["plain", "forking", "frozen"]

        assert sup.stop_all(timeout=5) == ["frozen", "forking", "plain"]

        for child in (plain, forking, frozen):
            assert _gone(child.pid)
            assert _group_members(child.pid) == []
        assert bystander.poll() is None
        assert read_state(tmp_path)["children"] == []  # type: ignore[index]
        sup.close()
        assert read_state(tmp_path) is None
    finally:
        bystander.kill()
        bystander.wait()


def test_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    """A child that ignores SIGTERM is SIGKILLed after the timeout."""
    with Supervisor(tmp_path) as sup:
        child = sup.start("stubborn", ["sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60"])
        sup.stop(child, timeout=0.5)
        assert _gone(child.pid)


def test_not_ready_child_is_stopped_and_reported_with_its_log(tmp_path: Path) -> None:
    """A child that dies before it is ready raises with its log tail and leaves nothing."""
    with Supervisor(tmp_path) as sup:
        with pytest.raises(ProcessStartError, match=r"(?s)early.*exited.*boom"):
            sup.start("early", ["sh", "-c", "echo boom; exit 3"], ready=lambda: False)
        with pytest.raises(ProcessStartError, match="not ready after"):
            sup.start("slow", ["sleep", "60"], ready=lambda: False, ready_timeout=0.3)
        assert sup.children == []


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    """A binary that does not exist fails naming it, not with a traceback from Popen."""
    with (
        Supervisor(tmp_path) as sup,
        pytest.raises(ProcessStartError, match="/nonexistent/prometheus"),
    ):
        sup.start("prometheus", ["/nonexistent/prometheus"])


def test_stop_recorded_stops_what_the_state_file_names(tmp_path: Path) -> None:
    """``stack down`` stops recorded children by pid and start time, then drops the file."""
    sup = Supervisor(tmp_path)
    port = free_port()
    child = sup.start(
        "listener",
        ["python3", "-c", f"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));"
         "s.listen();time.sleep(60)"],
        ready=tcp_ready(port),
    )  # fmt: skip
    # Simulate a dead orchestrator: the file stays, the Popen object is forgotten.
    stopped = stop_recorded(tmp_path, timeout=5)
    assert "listener" in stopped
    assert _wait(lambda: child.popen is not None and child.popen.poll() is not None)
    assert read_state(tmp_path) is None
    assert stop_recorded(tmp_path) == []


def test_reused_pid_is_left_alone(tmp_path: Path) -> None:
    """A recorded pid whose start time differs (a reused pid) is never signalled."""
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        ticks = start_ticks(bystander.pid)
        assert ticks is not None
        (tmp_path / "stack.json").write_text(
            json.dumps(
                {
                    "orchestrator": {},
                    "children": [{"name": "old", "pid": bystander.pid, "ticks": ticks - 1}],
                }
            )
        )
        assert stop_recorded(tmp_path) == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_port_in_use_names_the_port_and_role() -> None:
    """A taken port fails the check with its number and role in the message."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"port {port} \(prometheus\)"):
            check_ports_free({"preview": free_port(), "prometheus": port})


def test_same_port_for_two_roles_is_refused() -> None:
    """Two roles on one port are refused before anything is bound."""
    port = free_port()
    with pytest.raises(ValueError, match=f"port {port} is given to both a and b"):
        check_ports_free({"a": port, "b": port})
