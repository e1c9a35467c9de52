"""End to end: `stack up --replicas 2 --fast` (healthy), Redis presence over two replicas.

The stack starts Redis and two service replicas; nginx-rtmp relays every stream to ONE
replica (the owner, the only one exporting ``stream_info``) while the simulated viewers
spread over BOTH. Both replicas must then report the same global viewer count per
stream, equal to the sum of the replicas' local connection gauges, and the Integration
Checklist must pass with ``--replicas 2``. Everything the stack started is stopped
afterwards, also when the test fails, and no process of it remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from nova_streaming.stack.ports import free_port
from nova_streaming.stack.supervisor import read_state, start_ticks, stop_recorded
from nova_streaming.stack.verify import VerifyConfig, format_table, verify
from streaming_metrics import definitions as d

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0
SPREAD_TIMEOUT_S = 45.0
VERIFY_WAIT_S = 90.0
PORT_NAMES = ("rtmp", "nginx_stat", "http", "metrics", "ingest", "prometheus",
              "alertmanager", "receiver", "preview", "redis")  # fmt: skip


@dataclass
class RunningStack:
    """A `stack up` subprocess and what it recorded."""

    proc: subprocess.Popen[bytes]
    run_dir: Path
    log: Path
    urls: dict[str, str] = field(default_factory=dict)
    # Every child ever recorded (broadcasters restart with new pids): (name, pid, ticks).
    seen: set[tuple[str, int, int]] = field(default_factory=set)

    def record_children(self) -> list[dict[str, Any]]:
        """Remember the children the state file lists now; return them."""
        children = list((read_state(self.run_dir) or {}).get("children") or [])
        for child in children:
            if child.get("ticks") is not None:
                self.seen.add((str(child["name"]), int(child["pid"]), int(child["ticks"])))
        return children

    def output(self) -> str:
        """The orchestrator's output so far (for failure messages)."""
        return self.log.read_text(errors="replace")[-4000:]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _metrics(url: str) -> dict[str, dict[str, float]]:
    """``{sample name: {stream_id: value}}`` for the per-stream series of one replica."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "stream_id" in sample.labels:
                out.setdefault(sample.name, {})[sample.labels["stream_id"]] = sample.value
    return out


def _stack_processes(run_dir: Path, orchestrator: int | None, groups: set[int]) -> list[str]:
    """Live processes of this stack: the orchestrator, a recorded group, or cwd in run_dir."""
    found: list[str] = []
    root = str(run_dir.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "stat").read_text()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):
            continue
        pid, pgid = int(entry.name), int(fields[2])
        if pid == orchestrator or pgid in groups or cwd == root or cwd.startswith(root + "/"):
            found.append(f"{pid} (group {pgid}, cwd {cwd}): {raw[: raw.rindex(')') + 1]}")
    return found


async def _viewers_see_the_global_count(
    ws_bases: list[str], api: str, stream_id: str, patience_s: float
) -> str:
    """One client per replica on ``stream_id``; wait until both show the API's count.

    Returns "" on success, else what was last seen. Each client's count is its ``hello``,
    then its latest ``viewers`` message.
    """
    seen: list[int | None] = [None] * len(ws_bases)

    async def listen(index: int, ws: ClientConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") in ("hello", "viewers"):
                seen[index] = int(message["viewers"])

    last = ""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(f"{base}/ws/streams/{stream_id}"))
            for base in ws_bases
        ]
        tasks = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(clients)]
        try:
            deadline = time.monotonic() + patience_s
            while time.monotonic() < deadline:
                views = await asyncio.to_thread(_get_json, f"{api}/{stream_id}")
                if all(count == views["viewers"] for count in seen):
                    return ""
                last = f"clients saw {seen}, API says {views['viewers']}"
                await asyncio.sleep(0.25)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return last or "no message"


def _redis_pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


@pytest.fixture
def replicated_stack(tmp_path: Path) -> Iterator[RunningStack]:
    """`stack up --replicas 2 --fast` on free ports; stopped (and checked gone) afterwards."""
    ports = {name: free_port() for name in PORT_NAMES}
    # Replica 1's ports are the base ports + the step: pick a step whose ports are free.
    step = 0
    for candidate in range(1, 2000):
        probe = [ports[n] + candidate for n in ("http", "metrics", "ingest")]
        if all(_port_free(p) for p in probe) and not set(probe) & set(ports.values()):
            step = candidate
            break
    assert step, "no free replica port step"
    run_dir = tmp_path / "run"
    flags = [f"--{name.replace('_', '-')}-port={port}" for name, port in ports.items()]
    log = tmp_path / "stack.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nova_streaming.cli", "stack", "up", "--fast",
             "--replicas", "2", "--replica-step", str(step), "--run-dir", str(run_dir),
             "--k8s-dir", str(REPO / "k8s" / "monitoring"), "--duration", "240", *flags],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )  # fmt: skip
    stack = RunningStack(proc, run_dir, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (run_dir / "urls.json").exists():
            assert proc.poll() is None, stack.output()
            assert time.monotonic() < deadline, "stack not ready in time\n" + stack.output()
            time.sleep(0.5)
        stack.urls = json.loads((run_dir / "urls.json").read_text())
        stack.record_children()
        yield stack
    finally:
        stack.record_children()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C does
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Whatever the orchestrator could not stop goes by the state file.
        stop_recorded(run_dir, timeout=10)
    groups = {pid for _name, pid, _ticks in stack.seen}
    for name, pid, ticks in stack.seen:
        assert start_ticks(pid) != ticks, f"{name} (pid {pid}) still runs"
    assert _stack_processes(run_dir, proc.pid, groups) == []
    assert read_state(run_dir) is None
    assert proc.returncode == 0, stack.output()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_two_replicas_share_viewers_and_pass_the_checklist(
    replicated_stack: RunningStack,
) -> None:
    """Redis + 2 replicas: one owner per stream, viewers on both, equal global counts, verify."""
    stack = replicated_stack
    urls = stack.urls
    children = stack.record_children()
    names = {c["name"] for c in children}
    # The leftover detector used at teardown sees every running child (it can fail).
    running = _stack_processes(stack.run_dir, stack.proc.pid, {c["pid"] for c in children})
    assert len(running) > len(children), running
    assert {"redis", "service-0", "service-1", "nginx", "alertmanager", "prometheus"} <= names
    state = read_state(stack.run_dir) or {}
    redis_argv = next(c["argv"] for c in state["children"] if c["name"] == "redis")
    assert _redis_pong(int(redis_argv[redis_argv.index("--port") + 1]))
    for index in (0, 1):
        argv = next(c["argv"] for c in state["children"] if c["name"] == f"service-{index}")
        assert argv[argv.index("--presence") + 1] == "redis"

    api = [f"{urls[f'service_{i}']}/api/v1/streams" for i in (0, 1)]
    metrics = [urls[f"metrics_{i}"] for i in (0, 1)]
    conns, info = d.WEBSOCKET_CONNECTIONS.name, d.STREAM_INFO.name
    agreed: set[str] = set()
    last: str = ""
    deadline = time.monotonic() + SPREAD_TIMEOUT_S
    while True:
        stack.record_children()
        views = [{s["stream_id"]: s["viewers"] for s in _get_json(u)["streams"]} for u in api]
        pages = [_metrics(u) for u in metrics]
        local = [page.get(conns, {}) for page in pages]
        owned = [set(page.get(info, {})) for page in pages]
        both_local = all(sum(counts.values()) > 0 for counts in local)
        for sid, count in views[0].items():
            total = local[0].get(sid, 0.0) + local[1].get(sid, 0.0)
            if views[1].get(sid) == count and total == count and count > 0:
                agreed.add(sid)
        active = set(views[0]) & set(views[1])
        # nginx pushes to the last replica only: it owns every stream, replica 0 none.
        single_owner = owned[0] == set() and active <= owned[1]
        if both_local and single_owner and len(active) >= 3 and active <= agreed:
            break
        last = f"api={views} local={local} owned={owned} agreed={sorted(agreed)}\n" + stack.output()
        assert time.monotonic() < deadline, "replicas never agreed:\n" + last
        time.sleep(0.5)

    # What a viewer sees (hello, then viewers updates) is the global count, on both replicas.
    # A live stream: the pre-recorded one may end while we watch.
    live = [s for s in _get_json(api[0])["streams"] if s["stream_type"] == "live"]
    busiest = max(live, key=lambda s: int(s["viewers"]))["stream_id"]
    ws_bases = [urls[f"service_{i}"].replace("http://", "ws://") for i in (0, 1)]
    problem = asyncio.run(
        _viewers_see_the_global_count(ws_bases, api[0], busiest, SPREAD_TIMEOUT_S)
    )
    assert problem == "", problem

    checks = verify(
        VerifyConfig(
            prometheus_url=urls["prometheus"],
            alertmanager_url=urls["alertmanager"],
            receiver_url=urls["receiver"],
            scenario="healthy",
            replicas=2,
            window_minutes=2,
        ),
        wait=VERIFY_WAIT_S,
        interval=3,
    )
    stack.record_children()
    assert all(c.ok for c in checks), format_table(checks) + "\n\n" + stack.output()
    assert any(c.name == "recording rule nova:streaming:duration:avg has series" for c in checks)
