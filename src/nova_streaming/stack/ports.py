"""Loopback port checks: find a free port, or fail early naming the port that is taken.

Example::

    >>> port = free_port()
    >>> check_ports_free({"prometheus": port})  # raises PortInUseError if taken
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Mapping

LOOPBACK = "127.0.0.1"


class PortInUseError(RuntimeError):
    """A port the stack needs is already taken; the message names it and its role.

    Example::

        >>> str(PortInUseError("prometheus", 9090))
        'stack: port 9090 (prometheus) is already in use on 127.0.0.1; ...'
    """

    def __init__(self, role: str, port: int, host: str = LOOPBACK) -> None:
        self.role = role
        self.port = port
        self.host = host
        super().__init__(
            f"stack: port {port} ({role}) is already in use on {host}; stop whatever "
            f"listens there (ss -ltnp 'sport = :{port}') or choose another port with "
            f"the matching --*-port option"
        )


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago on ``host`` (the kernel's choice).

    Example::

        >>> 1024 <= free_port() <= 65535
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether nothing listens on ``host:port`` and it can be bound.

    Both a bind (catches listeners on a wildcard address) and a connect (catches a
    listener bound with SO_REUSEPORT) are tried.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) != 0


def check_ports_free(ports: Mapping[str, int], host: str = LOOPBACK) -> None:
    """Raise :class:`PortInUseError` for the first role whose port is taken.

    Also rejects one port given to two roles, which would otherwise fail later and
    less clearly.
    """
    seen: dict[int, str] = {}
    for role, port in ports.items():
        if not 1 <= port <= 65535:
            raise ValueError(f"stack: port for {role} must be in 1..65535, got {port}")
        if port in seen:
            raise ValueError(f"stack: port {port} is given to both {seen[port]} and {role}")
        seen[port] = role
    for role, port in ports.items():
        if not port_is_free(port, host):
            raise PortInUseError(role, port, host)


def wait_port_open(port: int, host: str = LOOPBACK, timeout: float = 10.0) -> bool:
    """Poll until something accepts connections on ``host:port`` or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
