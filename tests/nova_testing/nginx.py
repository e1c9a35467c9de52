"""nginx (with the RTMP module) run in the foreground for a test, always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

WAIT_SECONDS = 15.0


@dataclass
class NginxProcess:
    """A running nginx: its prefix, RTMP and stat ports, and process."""

    prefix: Path
    rtmp_port: int
    stat_port: int
    process: subprocess.Popen[bytes]

    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def run_nginx(prefix: Path, conf: Path, rtmp_port: int, stat_port: int) -> Iterator[NginxProcess]:
    """Run nginx in the foreground in its own process group, return once its RTMP port
    accepts connections; always stopped (the whole group) on exit.

    Example::

        with run_nginx(prefix, write_nginx_config(config), rtmp_port, stat_port) as nginx:
            ...  # publish to nginx.rtmp_port
    """
    process = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    nginx = NginxProcess(prefix, rtmp_port, stat_port, process)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"nginx exited: {stderr}\n{nginx.error_log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", rtmp_port), timeout=0.2),
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not listen: {nginx.error_log()}")
            time.sleep(0.05)
        yield nginx
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stray workers of the group
        if process.stderr is not None:
            process.stderr.close()
