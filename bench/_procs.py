"""Child processes for the system benchmarks: start, talk JSON lines, measure, stop.

A bench child (``python -m bench._<name> ...``) prints one JSON object per line on
stdout and reads one JSON command per line on stdin; :class:`Child` sends a command and
waits (bounded) for the reply. Memory and CPU of any process are read from ``/proc``, so
they are measured from outside, without instrumenting the process under test.

Example::

    with Child("bench._ws_servers", "bare") as server:
        ready = server.reply(timeout=30)         # {"port": ..., "pid": ...}
        server.request({"cmd": "count"})         # {"count": 0}
        print(rss_bytes(server.pid))
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")
NOFILE = 65536


def nofile_limit() -> int:
    """The open-file limit this process (and the children it starts) can reach: the hard
    ``RLIMIT_NOFILE`` unless root may raise it past :data:`NOFILE`."""
    return raise_nofile()


def raise_nofile(limit: int = NOFILE) -> int:
    """Raise this process's open-file limit to ``limit`` (root may raise the hard limit
    too); returns the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= limit:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(hard, limit)))
    except (ValueError, OSError):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"bench: no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (``/proc/PID/stat`` utime + stime)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; fields after its closing parenthesis are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children_of(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (nginx's workers under its master)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; ``TimeoutError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class Child:
    """A bench child process speaking JSON lines; always stopped on exit of the block."""

    def __init__(self, module: str, *args: str, stop_timeout: float = 15.0) -> None:
        self.module = module
        self._stop_timeout = stop_timeout
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # progress and errors of the child go to the bench's stderr
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def reply(self, timeout: float) -> dict[str, Any]:
        """The next JSON line the child prints; raises if it exits or stays silent."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"bench: {self.module} gave no reply in {timeout:g} s") from None
        if line is None:
            raise RuntimeError(
                f"bench: {self.module} exited (status {self.process.wait(5)}) before replying"
            )
        data = json.loads(line)
        if not isinstance(data, dict):
            raise RuntimeError(f"bench: {self.module} replied {line!r}")
        if "error" in data:
            raise RuntimeError(f"bench: {self.module}: {data['error']}")
        return data

    def send(self, command: dict[str, Any]) -> None:
        """Send one command without waiting (collect its answer with :meth:`reply`), so
        several children can work on their commands at once."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def request(self, command: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Send one command and wait for its reply."""
        self.send(command)
        return self.reply(timeout)

    def stop(self) -> None:
        """Ask the child to quit (stdin closed), then terminate, then kill."""
        proc = self.process
        if proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.close()
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(self._stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(self._stop_timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def emit(data: dict[str, Any]) -> None:
    """Print one JSON reply line (used by the children)."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def commands() -> AsyncIterator[dict[str, Any]]:
    """Async iterator over JSON commands on stdin (children's side); ends at EOF or quit."""
    import asyncio

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        command = json.loads(line)
        if command.get("cmd") == "quit":
            return
        yield command
