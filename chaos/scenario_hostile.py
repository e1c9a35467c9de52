"""Hostile traffic: nothing anyone on the network sends may page anyone.

A real Prometheus scrapes both replicas (job ``nova-streaming``, every second) while one
legitimate stream with viewers runs (so the bundle's "no stream" and "no viewer" alerts
are quiet on their own); then every alert expression of the generated bundle
(``k8s/monitoring/prometheus-rules.yml``) is evaluated as an instant query: any result
means the alert would be pending from this traffic alone.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from chaos._hostile import (
    TRUSTED,
    UNTRUSTED,
    api_flood,
    forged_callbacks,
    malformed_rtmp,
    port_scan,
    timestamp_jumps,
)
from chaos._invariants import figures
from chaos._report import Check, Context
from chaos._setup import live, world
from chaos._world import SECRET, World
from nova_streaming.stack.prometheus import (
    PrometheusConfig,
    prometheus_argv,
    render_prometheus_config,
)
from nova_streaming.stack.supervisor import http_ready
from nova_testing.ports import free_port

ORDER = 70
TITLE = "hostile traffic"
FAULT = (
    "2 replicas, one legitimate stream with viewers, a real Prometheus scraping; from "
    "127.0.0.2 (outside NOVA_TRUSTED_PEERS): forged on_publish/on_publish_done, a port "
    "scan and malformed RTMP on the ingest port, a flood of GET /api/v1/streams; from "
    "127.0.0.1 (as nginx would relay it): a publisher whose timestamps jump 100,000 "
    "frames forward, then back, and malformed RTMP (a broken relay)."
)
RULES = Path(__file__).resolve().parent.parent / "k8s" / "monitoring" / "prometheus-rules.yml"
ERRORS = "nova_streaming_broadcast_errors_total"
UNTRUSTED_REQUESTS = "nova_streaming_untrusted_requests_total"
DISCONTINUITIES = "nova_streaming_ingest_discontinuities_total"
FRAMES = "nova_streaming_rtmp_ingestion_latency_seconds_count"
# The jumping publisher's onMetaData height: its frames are the only ones at this quality.
JUMPER = {"quality": "240p"}


def alert_rules() -> list[tuple[str, str]]:
    """(alert name, expression) of every alert in the generated bundle."""
    data = yaml.safe_load(RULES.read_text())
    return [
        (rule["alert"], rule["expr"])
        for group in data["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


async def start_prometheus(w: World) -> int:
    """A Prometheus scraping every replica each second; returns its port."""
    port = free_port()
    prom_dir = w.run_dir / "prometheus"
    prom_dir.mkdir()
    config = PrometheusConfig(
        metrics_targets=[f"127.0.0.1:{s.metrics_port}" for s in w.slots],
        # The bundle itself: the SLO burn alerts read its recording rules.
        rule_files=[RULES],
        scrape_interval=1.0,
        scrape_timeout=1.0,
        evaluation_interval=1.0,
    )
    (prom_dir / "prometheus.yml").write_text(render_prometheus_config(config))
    argv = prometheus_argv(prom_dir / "prometheus.yml", prom_dir / "data", port)
    await asyncio.to_thread(
        w.supervisor.start,
        "prometheus",
        argv,
        ready=http_ready(f"http://127.0.0.1:{port}/-/ready"),
        ready_timeout=60,
    )
    return port


async def query(port: int, expr: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


async def scraped_everything(w: World, port: int, within: float = 40.0) -> bool:
    """Every replica target scraped, then every rule group of the bundle evaluated, after
    now: the last traffic is in Prometheus and in the recorded series the alerts read."""
    t0 = time.time()
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < deadline:
            targets = (await client.get(f"http://127.0.0.1:{port}/api/v1/targets")).json()
            active = targets["data"]["activeTargets"]
            fresh = [t for t in active if t["health"] == "up" and _ts(t["lastScrape"]) > t0 + 1]
            rules = (await client.get(f"http://127.0.0.1:{port}/api/v1/rules")).json()
            groups = rules["data"]["groups"]
            evaluated = [g for g in groups if _ts(g.get("lastEvaluation", "")) > t0 + 2]
            if len(fresh) >= len(w.slots) and groups and len(evaluated) == len(groups):
                return True
            await asyncio.sleep(0.5)
    return False


def _ts(rfc3339: str) -> float:
    """Seconds since the epoch of Prometheus' RFC 3339 stamps (nanoseconds cut to micro)."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", rfc3339)
    if match is None:
        return 0.0
    head, fraction, zone = match.groups()
    text = head + (fraction or "")[:7] + ("+00:00" if zone == "Z" else zone)
    return datetime.fromisoformat(text).timestamp()


async def run(ctx: Context) -> list[Check]:
    forged = ctx.pick(full=100, short=10)
    scans = ctx.pick(full=300, short=30)
    flood_seconds = ctx.pick(full=15.0, short=2.0)
    jump_seconds = ctx.pick(full=3.0, short=1.0)
    rounds = ctx.pick(full=6, short=3)
    async with world(ctx, "hostile", replicas=2) as w:
        prom = await start_prometheus(w)
        (b,) = await live(w, 1, ctx.pick(full=50, short=5))
        checks: list[Check] = []
        await w.probe_read(reset=True)

        # 1. Untrusted: forged callbacks, a port scan, malformed RTMP.
        await w.ledger.scrape_all()
        errors_before = w.ledger.total(ERRORS)
        untrusted_before = w.ledger.total(UNTRUSTED_REQUESTS)
        statuses: dict[int, int] = {}
        scanned = sent = closed = 0
        # In rounds a few scrapes apart: a counter born at its first increment shows no
        # rate() in Prometheus until it moves again, so one burst alone proves nothing.
        for round_ in range(rounds):
            if round_:
                await asyncio.sleep(1.2)
            for slot in w.slots:
                forging = await forged_callbacks(slot.port, b.stream_id, SECRET, forged)
                for code, n in forging.items():
                    statuses[code] = statuses.get(code, 0) + n
                scanned += await port_scan(slot.ingest_port, scans)
                s, c = await malformed_rtmp(slot.ingest_port, UNTRUSTED)
                sent, closed = sent + s, closed + c
        await asyncio.sleep(1.0)
        await w.ledger.scrape_all()
        errors_moved = w.ledger.total(ERRORS) - errors_before
        counted = w.ledger.total(UNTRUSTED_REQUESTS) - untrusted_before
        untrusted_total = sum(statuses.values()) + scanned + sent
        checks.append(
            Check(
                "forged callbacks refused",
                "all 403",
                f"statuses {statuses}",
                set(statuses) == {403},
            )
        )
        checks.append(
            Check(
                "untrusted traffic moves no broadcast error",
                "broadcast_errors_total +0",
                f"+{errors_moved:g} after {untrusted_total} untrusted requests/connections",
                errors_moved == 0,
            )
        )
        checks.append(
            Check(
                "untrusted traffic counted as such",
                f"untrusted_requests_total +{untrusted_total}",
                f"+{counted:g}",
                counted == untrusted_total,
            )
        )

        # 2. A flood of the public, unauthenticated listing.
        flood = await api_flood([s.port for s in w.slots], 20, flood_seconds)
        total = sum(flood.values())
        checks.append(
            Check(
                "API flood answered, nothing refused or failed",
                "all 200",
                f"{total:,} requests in {flood_seconds:g} s ({total / flood_seconds:,.0f}/s), "
                f"statuses {flood}",
                set(flood) == {200},
            )
        )
        stall_flood = await w.probe_read(reset=True)
        checks.append(
            Check(
                "worst event-loop stall under the API flood",
                "<= 250 ms",
                f"{stall_flood:.0f} ms",
                stall_flood <= 250,
                figure=True,
            )
        )

        # 3. Timestamp jumps both ways, through nginx (which relays them unchanged).
        await w.ledger.scrape_all()
        drops_before = w.ledger.total(ERRORS, {"error_type": "frame_drop"})
        frames_before = w.ledger.total(FRAMES, JUMPER)
        jumps_before = w.ledger.total(DISCONTINUITIES)
        jumps = await timestamp_jumps(
            w.slots[0].port,
            w.slots[0].ingest_port,
            str(uuid.uuid4()),
            SECRET,
            fps=10,
            seconds=jump_seconds,
            jump_frames=100_000,
        )
        await asyncio.sleep(1.0)
        await w.ledger.scrape_all()
        drops = w.ledger.total(ERRORS, {"error_type": "frame_drop"}) - drops_before
        counted_jumps = w.ledger.total(DISCONTINUITIES) - jumps_before
        frames = w.ledger.total(FRAMES, JUMPER) - frames_before
        checks.append(
            Check(
                "timestamp jumps are not frame drops",
                "frame_drop +0",
                f"+{drops:g} after a jump of 100,000 frames forward and one back "
                f"({frames:g} of its frames ingested)",
                drops == 0,
            )
        )
        checks.append(
            Check(
                "timestamp jumps counted as discontinuities",
                f"ingest_discontinuities_total +{jumps}",
                f"+{counted_jumps:g}",
                counted_jumps == jumps,
            )
        )
        stall_jumps = await w.probe_read(reset=True)
        checks.append(
            Check(
                "worst event-loop stall during the jumps",
                "<= 250 ms",
                f"{stall_jumps:.0f} ms",
                stall_jumps <= 250,
                figure=True,
            )
        )

        # 4. Would any alert of the bundle fire from this? (What anyone can send: untrusted
        # peers, the public API, a broadcaster's timestamps relayed by nginx.)
        fresh = await scraped_everything(w, prom)
        firing = []
        for name, expr in alert_rules():
            if await query(prom, expr):
                firing.append(name)
        checks.append(
            Check(
                "no alert of the bundle fires from hostile traffic",
                "every alert expression empty (Prometheus, instant query)",
                (", ".join(firing) or "none")
                + f" of {len(alert_rules())} alerts; scraped after the traffic: {fresh}",
                not firing and fresh,
            )
        )
        # 5. Malformed RTMP from a trusted address (a broken relay, not something an outsider
        # can make nginx send): that connection closed, the rest survives; counted errors
        # are legitimate here, so it comes after the alert evaluation.
        t_sent = t_closed = 0
        for slot in w.slots:
            s, c = await malformed_rtmp(slot.ingest_port, TRUSTED)
            t_sent, t_closed = t_sent + s, t_closed + c
        alive = [s.index for s in w.live_slots()]
        still = await w.stream_states(b.stream_id)
        checks.append(
            Check(
                "malformed RTMP closes that connection only",
                "replicas alive, legitimate stream active",
                f"{t_closed + closed} of {t_sent + sent} closed by the receiver; replicas "
                f"alive {alive}; stream {sorted(still)}",
                len(alive) == len(w.slots) and still == {"active"},
            )
        )

        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
