"""Idle viewers per process, memory per connection and the time of one broadcast to all.

The service under test (the real app, its own process) against a bare ``websockets``
server (its own process) at 1k, 5k and 10k connected viewers, one client process driving
both the same way, in the same run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench import Context, Section, Table, Target
from bench._procs import Child, rss_bytes, wait_until
from bench._report import fmt_bytes, fmt_ratio

ORDER = 30
TITLE = "Service: viewers"

# The targets: 10k viewers in one process at <= 1.5x the bare server's memory per
# connection, and one count update to all 10k viewers in <= 1.5x the bare broadcast.
MAX_MEMORY_RATIO = 1.5
MAX_BROADCAST_RATIO = 1.5
TARGET_VIEWERS = 10_000
BATCH = 200
BARE = "bare `websockets` server"
NOVA = "nova-streaming service"

_PROSE = f"""
**Server under test: the service itself**: `create_app` with the memory presence engine,
served by uvicorn with the service's own `uvicorn_config` (sans-I/O websockets, the
default keep-alive pings), in its own process (`bench/_ws_servers.py nova`), with one
stream started through `app.state.service.registry.start`; viewers connect to
`/ws/streams/{{id}}`, get their `hello` and stay idle. **Baseline: a bare `websockets`
asyncio server** (`websockets.asyncio.server.serve`, default pings) in its own process
that keeps each connection open in a set and does nothing else: the least a Python
WebSocket server holding idle connections costs. Both run in the same bench run, one
after the other, and are driven by the same client process (`bench/_ws_clients.py`: raw
WebSocket clients on one `asyncio.Protocol` each, no task per connection, answering
pings; the client side is not measured), connecting {BATCH} viewers at a time over
127.0.0.1 up to 1k, 5k and 10k. Both processes raise `RLIMIT_NOFILE`.

Memory: RSS (`VmRSS` of `/proc/PID/status`) after a `gc.collect()` in the server, with N
viewers connected and counted by the server, minus the RSS before any viewer (the
service with its stream started): RSS per connection = (RSS(N) - RSS(idle)) / N; ratio
= service / bare.

Broadcast: the bench tells the server to send one `viewers` count update (the JSON the
hub sends, the same size for both) to every connection; the server stamps
`time.monotonic()` before its send loop; every client stamps the first text frame it
receives afterwards. Delivery time = last client stamp - server stamp (`CLOCK_MONOTONIC`
is system-wide, so stamps of different processes compare). The service sends through
`ViewerHub.broadcast` (what the hub's coalesced ticker calls for a stream whose count
changed; the ticker itself is set to a 1 h period so it cannot fire while viewers
connect); the bare server through `websockets.asyncio.server.broadcast`. The delivery
time includes the client process reading 10k frames on the other core, the same for
both; the server's own send-loop time is shown too. Median of the repeats per level.
"""


@dataclass
class Level:
    """What one server showed with ``viewers`` connected."""

    viewers: int
    connected: int
    connect_seconds: float
    rss: int
    delivery: list[float] = field(default_factory=list)
    send_loop: list[float] = field(default_factory=list)
    received: list[int] = field(default_factory=list)


@dataclass
class ServerRun:
    """One server through every level."""

    kind: str
    idle_rss: int
    levels: list[Level]

    def per_connection(self, level: Level) -> float:
        return (level.rss - self.idle_rss) / max(level.connected, 1)


def _settled_rss(server: Child, pid: int) -> int:
    server.request({"cmd": "gc"})
    time.sleep(0.5)
    return rss_bytes(pid)


def measure(kind: str, levels: list[int], broadcasts: int, ctx: Context) -> ServerRun:
    """Start the ``kind`` server and a client, walk the levels, stop both."""
    with Child("bench._ws_servers", kind) as server:
        ready = server.reply(timeout=60)
        pid = int(ready["pid"])
        idle = _settled_rss(server, pid)
        results: list[Level] = []
        with Child("bench._ws_clients", "127.0.0.1", str(ready["port"]), ready["path"]) as client:
            client.reply(timeout=30)
            for n in levels:
                ctx.log(f"service: {kind}: connecting {n:,} viewers")
                done = client.request({"cmd": "connect", "total": n, "batch": BATCH}, 240)
                connected = int(done["connected"])
                if connected < n:
                    raise RuntimeError(
                        f"bench: only {connected} of {n} viewers connected to the {kind} "
                        f"server ({done['failed']} failed)"
                    )
                if kind == "nova":
                    client.request({"cmd": "texts", "min": 1, "timeout": 60}, 90)  # hellos
                wait_until(
                    lambda n=n: server.request({"cmd": "count"})["count"] >= n,  # type: ignore[misc]
                    60,
                    f"the {kind} server to count {n} viewers",
                )
                level = Level(n, connected, float(done["seconds"]), _settled_rss(server, pid))
                for _ in range(broadcasts):
                    client.request({"cmd": "arm"})
                    sent = server.request({"cmd": "broadcast"}, 120)
                    got = client.request({"cmd": "collect", "timeout": 60}, 90)
                    if got["last"] is None:
                        raise RuntimeError(f"bench: no viewer of the {kind} server got the update")
                    level.delivery.append(float(got["last"]) - float(sent["t0"]))
                    level.send_loop.append(float(sent["t1"]) - float(sent["t0"]))
                    level.received.append(int(got["received"]))
                    time.sleep(0.2)
                results.append(level)
            # Server first: its side of each socket takes the TIME_WAIT, so the client's
            # ephemeral ports are free again for the next server.
            server.stop()
    return ServerRun(kind, idle, results)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _tables(bare: ServerRun, nova: ServerRun) -> tuple[list[Table], dict[str, float]]:
    memory_rows = []
    broadcast_rows = []
    ratios: dict[str, float] = {}
    for b, s in zip(bare.levels, nova.levels, strict=True):
        mem_ratio = nova.per_connection(s) / bare.per_connection(b)
        d_bare = statistics.median(b.delivery)
        d_nova = statistics.median(s.delivery)
        ratios[f"memory@{s.viewers}"] = mem_ratio
        ratios[f"broadcast@{s.viewers}"] = d_nova / d_bare
        memory_rows.append(
            (
                f"{s.viewers:,}",
                fmt_bytes(b.rss),
                fmt_bytes(bare.per_connection(b)),
                fmt_bytes(s.rss),
                fmt_bytes(nova.per_connection(s)),
                fmt_ratio(mem_ratio),
                f"{b.connect_seconds:.1f} s / {s.connect_seconds:.1f} s",
            )
        )
        broadcast_rows.append(
            (
                f"{s.viewers:,}",
                _ms(d_bare),
                _ms(d_nova),
                fmt_ratio(d_nova / d_bare),
                f"{_ms(statistics.median(b.send_loop))} / {_ms(statistics.median(s.send_loop))}",
                f"{min(b.received):,} / {min(s.received):,}",
            )
        )
    memory = Table(
        "Resident memory per idle connection",
        (
            "viewers",
            "bare RSS",
            "bare per conn",
            "service RSS",
            "service per conn",
            "ratio (service / bare)",
            "connect time of the added viewers bare / service",
        ),
        memory_rows,
        note=f"Idle RSS (no viewer): bare {fmt_bytes(bare.idle_rss)}, service "
        f"{fmt_bytes(nova.idle_rss)} (app, registry, hub, one active stream). Connect time: "
        f"from the first to the last upgrade of the viewers added at that level (each level "
        f"adds to the previous one), {BATCH} at a time, client and server sharing "
        "the two cores.",
    )
    repeats = len(bare.levels[0].delivery)
    broadcast = Table(
        f"One count update to every viewer (median of {repeats})",
        (
            "viewers",
            "bare delivery",
            "service delivery",
            "ratio (service / bare)",
            "server send loop bare / service",
            "viewers reached (min) bare / service",
        ),
        broadcast_rows,
    )
    return [memory, broadcast], ratios


def run(ctx: Context) -> list[Section]:
    """Measure the bare server, then the service, at each level; compare."""
    levels = [ctx.pick(full=n, quick=q) for n, q in ((1_000, 100), (5_000, 300), (10_000, 500))]
    broadcasts = ctx.repeats(5)
    bare = measure("bare", levels, broadcasts, ctx)
    nova = measure("nova", levels, broadcasts, ctx)
    tables, ratios = _tables(bare, nova)
    top = levels[-1]
    held = nova.levels[-1].connected
    mem = ratios[f"memory@{top}"]
    bcast = ratios[f"broadcast@{top}"]
    targets = [
        Target(
            f"{TARGET_VIEWERS:,} viewers in one process at ≤ {MAX_MEMORY_RATIO}× the bare "
            f"server's RSS per connection (measured at {top:,})",
            f"{TARGET_VIEWERS:,} held, ≤ {MAX_MEMORY_RATIO:.2f}×",
            f"{held:,} held, {fmt_ratio(mem)}",
            held >= top and mem <= MAX_MEMORY_RATIO,
        ),
        Target(
            f"one count update to all {top:,} viewers vs the bare `websockets` broadcast",
            f"≤ {MAX_BROADCAST_RATIO:.2f}×",
            fmt_ratio(bcast),
            bcast <= MAX_BROADCAST_RATIO,
        ),
    ]
    raw: dict[str, Any] = {
        run_.kind: {
            "idle_rss": run_.idle_rss,
            "levels": [lvl.__dict__ for lvl in run_.levels],
        }
        for run_ in (bare, nova)
    } | {"ratios": ratios}
    return [Section("Service: idle viewers and broadcast", _PROSE, tables, targets, raw=raw)]
