"""The multi-replica fixture itself: a port picked free but taken by another process
before the replica binds it must not fail the test that asked for the replica."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


async def test_a_replica_process_whose_port_was_taken_meanwhile_is_started_on_new_ports(
    cluster: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first port the fixture picks is the one another process listens on (the race
    between ``free_port()`` and the child's bind, made certain): the replica exits 3 on
    its bind, and the fixture starts it again on new ports."""
    conftest = sys.modules[type(cluster).__module__]
    real_free_port = conftest.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        picks = iter([port])
        monkeypatch.setattr(conftest, "free_port", lambda: next(picks, None) or real_free_port())
        proc = await cluster.process("port-race")
    assert proc.port != port
    assert proc.proc.poll() is None
    failed = (tmp_path / "port-race-1.log.port-taken-1").read_text()
    assert f"('127.0.0.1', {port}): address already in use" in failed


async def test_an_in_process_replica_does_not_bind_a_port_picked_beforehand(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process replicas bind their RTMP receiver on a port of the kernel's choice at
    start: the port in their settings being taken by then does not matter."""
    conftest = sys.modules[type(cluster).__module__]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        monkeypatch.setattr(conftest, "free_port", lambda: port)
        replica = await cluster.replica()
        assert replica.settings.ingest_port == port
        assert replica.ingest_port != port
    # The RTMP handshake completes: the receiver listens there.
    pub = await cluster.publisher(replica.ingest_port)
    await pub.handshake()
