"""A throwaway redis-server on a free loopback port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

import redis

from nova_testing.ports import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
BIND_ATTEMPTS = 3
"""First starts of a server whose free port another process bound before it could."""


class RedisServer:
    """A redis-server on 127.0.0.1 (no persistence), restartable on its port.

    Example::

        server = RedisServer()
        server.start()
        try:
            server.client().ping()
        finally:
            server.stop()
            server.cleanup()
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="nova-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self._started = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it answers PING.

        The port was only seen free: another process may bind it first. On the first
        start the server then gets a new free port (up to ``BIND_ATTEMPTS`` in all); a
        restart must keep its port, so there the failure is raised. "Answers" means
        this process answers: a PING could otherwise reach whatever Redis took the
        port (another test's, perhaps stopped or about to be killed)."""
        attempts = 1 if self._started else BIND_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if self._launch():
                self._started = True
                return
            if attempt < attempts:
                self.port = free_port()
        raise RuntimeError(f"redis-server did not start on {self.port} (port taken?)")

    def _launch(self) -> bool:
        """Run redis-server on ``self.port``; True once it answers, False if it exited
        (its port taken); RuntimeError if it neither answers nor exits in time."""
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
        try:
            while True:
                if self.proc.poll() is not None:
                    self.proc = None
                    return False
                try:
                    if int(client.info("server")["process_id"]) == self.proc.pid:
                        return True
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer on {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Kill the server (a crash, as far as clients can tell); it can be started again."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        """Remove the server's working directory (after the last stop)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
