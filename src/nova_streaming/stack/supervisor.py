"""Child processes of the local stack: start, wait until ready, stop exactly those.

Every child runs in a session (process group) of its own, logs to
``<run_dir>/logs/<name>.log`` and is recorded in ``<run_dir>/stack.json`` with its pid
and kernel start time, so that a later ``stack down`` (another process) can stop
exactly what this run started, and nothing else, even after the orchestrator died: a
recorded pid whose start time differs was reused by an unrelated process and is left
alone.

Example::

    >>> sup = Supervisor(Path("run"))
    >>> child = sup.start("sleeper", ["sleep", "60"])
    >>> sup.stop_all()
    ['sleeper']
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "stack.json"
LOG_DIR = "logs"
# Children get a clean, explicit environment: what the user's shell exports (a stray
# NOVA_* variable, a proxy) must not change what the stack runs.
BASE_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}

ReadyCheck = Callable[[], bool]


class ProcessStartError(RuntimeError):
    """A child exited or did not become ready in time; the message ends with its log tail."""


def http_ready(url: str, status: int = 200) -> ReadyCheck:
    """A readiness check: ``GET url`` answers ``status``.

    Example::

        >>> check = http_ready("http://127.0.0.1:9090/-/ready")
        >>> isinstance(check(), bool)
        True
    """

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return int(response.status) == status
        except urllib.error.HTTPError as exc:
            return exc.code == status
        except (OSError, ValueError):
            return False

    return check


def tcp_ready(port: int, host: str = "127.0.0.1") -> ReadyCheck:
    """A readiness check: something accepts TCP connections on ``host:port``.

    Example::

        >>> tcp_ready(1)()
        False
    """

    def check() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((host, port)) == 0

    return check


def start_ticks(pid: int) -> int | None:
    """The process' start time in clock ticks since boot (``/proc/PID/stat`` field 22).

    None when there is no such process or it is a zombie (already dead).
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass
class Child:
    """One started process: its name, argv, process group and log."""

    name: str
    argv: list[str]
    pid: int
    ticks: int | None
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        """Whether the process is still running (and is still the one we started)."""
        if self.popen is not None:
            return self.popen.poll() is None
        return self.ticks is not None and start_ticks(self.pid) == self.ticks

    def record(self) -> dict[str, Any]:
        """The JSON form written to the state file."""
        return {"name": self.name, "pid": self.pid, "ticks": self.ticks, "argv": self.argv}

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts children, waits for their readiness, and stops all of them.

    Thread-safe: broadcaster restarts happen on another thread than the start-up.

    Example::

        >>> with Supervisor(Path("run")) as sup:
        ...     _ = sup.start("sleeper", ["sleep", "60"], ready=lambda: True)
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        progress: Callable[[str], None] | None = None,
        extra_state: Mapping[str, Any] | None = None,
    ) -> None:
        self.run_dir = run_dir.resolve()
        self.log_dir = self.run_dir / LOG_DIR
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._progress = progress or (lambda _msg: None)
        self._children: list[Child] = []
        self._lock = threading.RLock()
        self._closed = False
        self._extra_state: dict[str, Any] = dict(extra_state or {})
        self._write_state()

    # --- starting ---------------------------------------------------------------------

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready: ReadyCheck | None = None,
        ready_timeout: float = 30.0,
        log_name: str | None = None,
    ) -> Child:
        """Start ``argv`` as ``name`` and, with ``ready``, wait until it answers.

        Raises :class:`ProcessStartError` (with the log tail) when the process exits
        early or is not ready within ``ready_timeout``; the process is stopped then.
        """
        with self._lock:
            if self._closed:
                raise ProcessStartError(f"stack: not starting {name}: the stack is stopping")
            log_path = self.log_dir / f"{log_name or name}.log"
            child_env = {**BASE_ENV, "HOME": str(self.run_dir), **(env or {})}
            with log_path.open("ab") as log:
                try:
                    popen = subprocess.Popen(
                        list(argv),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=child_env,
                        cwd=str(cwd or self.run_dir),
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise ProcessStartError(
                        f"stack: cannot start {name} ({argv[0]}): {exc.strerror or exc}"
                    ) from exc
            child = Child(
                name=name,
                argv=list(argv),
                pid=popen.pid,
                ticks=start_ticks(popen.pid),
                log_path=log_path,
                popen=popen,
            )
            self._children.append(child)
            self._write_state()
        if ready is not None:
            self.wait_ready(child, ready, ready_timeout)
        return child

    def wait_ready(self, child: Child, ready: ReadyCheck, timeout: float) -> None:
        """Poll ``ready`` until true; stop the child and raise if it dies or times out."""
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            if not child.alive():
                code = child.popen.returncode if child.popen is not None else None
                self.stop(child)
                raise ProcessStartError(
                    f"stack: {child.name} exited (code {code}) before it was ready; "
                    f"log {child.log_path}:\n{child.log_tail()}"
                )
            if time.monotonic() >= deadline:
                self.stop(child)
                raise ProcessStartError(
                    f"stack: {child.name} not ready after {timeout:.0f}s; "
                    f"log {child.log_path}:\n{child.log_tail()}"
                )
            time.sleep(0.1)

    # --- inspecting -------------------------------------------------------------------

    @property
    def children(self) -> list[Child]:
        """The children started and not yet stopped, in start order."""
        with self._lock:
            return list(self._children)

    def set_state(self, key: str, value: Any) -> None:
        """Record extra JSON data (URLs, scenario) in the state file."""
        with self._lock:
            self._extra_state[key] = value
            self._write_state()

    # --- stopping ---------------------------------------------------------------------

    def stop(self, child: Child, timeout: float = 10.0) -> None:
        """Stop one child and its whole process group; forget it."""
        stop_group(child.pid, child.ticks, timeout=timeout, popen=child.popen)
        with self._lock:
            if child in self._children:
                self._children.remove(child)
                self._write_state()

    def stop_all(self, timeout: float = 10.0) -> list[str]:
        """Stop every child, last started first; returns their names. Idempotent."""
        with self._lock:
            self._closed = True
            children = list(reversed(self._children))
        stopped: list[str] = []
        for child in children:
            self._progress(f"stopping {child.name}")
            self.stop(child, timeout=timeout)
            stopped.append(child.name)
        return stopped

    def close(self) -> None:
        """Stop everything and remove the state file."""
        self.stop_all()
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / STATE_FILE).unlink()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _write_state(self) -> None:
        state = {
            "orchestrator": {"pid": os.getpid(), "ticks": start_ticks(os.getpid())},
            "children": [child.record() for child in self._children],
            **self._extra_state,
        }
        path = self.run_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, path)


def stop_group(
    pid: int,
    ticks: int | None,
    *,
    timeout: float = 10.0,
    popen: subprocess.Popen[bytes] | None = None,
) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL what is left after ``timeout``.

    Without ``popen`` the pid is only signalled when its start time still equals
    ``ticks`` (the same process, not a reused pid). A stopped (SIGSTOP) group gets a
    SIGCONT too, so that it can act on the SIGTERM.
    """
    if popen is None and (ticks is None or start_ticks(pid) != ticks):
        _kill_group_leftovers(pid, ticks)
        return
    if popen is not None and popen.poll() is not None:
        _kill_group_leftovers(pid, ticks)
        return
    for sig in (signal.SIGTERM, signal.SIGCONT):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
    if not _wait_gone(pid, ticks, popen, timeout):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _wait_gone(pid, ticks, popen, 5.0)
    _kill_group_leftovers(pid, ticks)


def _wait_gone(
    pid: int, ticks: int | None, popen: subprocess.Popen[bytes] | None, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None:
            if popen.poll() is not None:
                return True
        elif start_ticks(pid) != ticks:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _kill_group_leftovers(pid: int, ticks: int | None) -> None:
    """Kill members of the group ``pid`` that outlived its leader (nginx workers...).

    Only when the leader's pid is free (not reused by another process), and only
    processes of group ``pid`` that started no earlier than the leader: those are ours.
    """
    if start_ticks(pid) is not None and start_ticks(pid) != ticks:
        return
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        member = int(entry.name)
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        pgrp, state, member_ticks = int(fields[2]), fields[0], int(fields[19])
        if pgrp != pid or state in ("Z", "X") or member == os.getpid():
            continue
        if ticks is not None and member_ticks < ticks:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The state file of a stack run in ``run_dir``, or None when there is none."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"stack: unreadable state file {run_dir / STATE_FILE}: {exc}") from exc
    return data if isinstance(data, dict) else None


def stop_recorded(
    run_dir: Path, *, timeout: float = 30.0, progress: Callable[[str], None] | None = None
) -> list[str]:
    """Stop the stack recorded in ``run_dir`` (``stack down``); returns what was stopped.

    The orchestrator gets SIGTERM and stops its own children; whatever it leaves (it
    was killed, or it hangs) is stopped here from the recorded pids.

    Example::

        >>> stop_recorded(Path("run"))  # nothing recorded: nothing to do
        []
    """
    say = progress or (lambda _msg: None)
    state = read_state(run_dir)
    if state is None:
        return []
    stopped: list[str] = []
    orchestrator = state.get("orchestrator") or {}
    opid, oticks = orchestrator.get("pid"), orchestrator.get("ticks")
    if isinstance(opid, int) and opid != os.getpid() and start_ticks(opid) == oticks:
        say(f"asking the stack (pid {opid}) to stop")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(opid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while start_ticks(opid) == oticks and time.monotonic() < deadline:
            time.sleep(0.1)
        if start_ticks(opid) == oticks:
            say(f"the stack (pid {opid}) did not stop in {timeout:.0f}s: killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(opid, signal.SIGKILL)
        stopped.append("stack")
    # Re-read: the orchestrator rewrites the file as it stops its children.
    state = read_state(run_dir) or {}
    for record in reversed(state.get("children") or []):
        pid, ticks, name = record.get("pid"), record.get("ticks"), record.get("name", "?")
        if isinstance(pid, int) and ticks is not None and start_ticks(pid) == ticks:
            say(f"stopping {name} (pid {pid})")
            stop_group(pid, ticks, timeout=10.0)
            stopped.append(str(name))
    with contextlib.suppress(FileNotFoundError):
        (run_dir / STATE_FILE).unlink()
    return stopped
