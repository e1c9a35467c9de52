"""10,000 viewers churning at 1,000 joins+leaves per second, plus slow consumers."""

from __future__ import annotations

import asyncio
import time

from bench._procs import cpu_seconds

from chaos._invariants import end_streams, figures, gc_full_passes, gc_pauses, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, world

ORDER = 60
TITLE = "viewer churn and slow consumers"
FAULT = (
    "2 replicas, one stream; 10,000 viewers (short version: 300) held, then 1,000 joins + "
    "leaves per second (short: 100) for 30 s (short: 3 s), while slow consumers (200; "
    "short: 20) never answer pings and read their socket only in short bursts."
)


async def run(ctx: Context) -> list[Check]:
    viewers = ctx.pick(full=10_000, short=300)
    rate = ctx.pick(full=1000, short=100)
    seconds = ctx.pick(full=30.0, short=3.0)
    slow = ctx.pick(full=200, short=20)
    async with world(ctx, "churn", replicas=2) as w:
        (b,) = await live(w, 1, viewers)
        await w.probe_read(reset=True)
        await w.fleet_cmd({"cmd": "hold", "stream": b.stream_id, "n": slow, "slow": True})
        cpu0 = {s.pid: cpu_seconds(s.pid) for s in w.live_slots()}
        await w.ledger.scrape_all()
        gc0 = gc_full_passes(w)
        t_churn = time.monotonic()
        churn = await w.fleet_cmd(
            {"cmd": "churn", "stream": b.stream_id, "rate": rate, "seconds": seconds}, wait=300
        )
        t_end = time.monotonic()
        # How busy the replicas were: a stall figure near a full core is a saturated
        # loop (answers queue behind the joins), not one long blocking call.
        busy = [(cpu_seconds(pid) - c) / (t_end - t_churn) for pid, c in cpu0.items()]
        achieved = (churn["joins"] + churn["leaves"]) / seconds
        checks = [
            Check(
                "churn rate achieved by the clients",
                f">= 90% of {rate:,} joins+leaves/s",
                f"{achieved:,.0f}/s ({churn['joins']:,} joins, {churn['leaves']:,} leaves)",
                achieved >= 0.9 * rate,
                figure=True,
            ),
            Check(
                "replica CPU during the churn",
                "reported",
                ", ".join(f"{100 * b:.0f}%" for b in busy) + " of one core per replica",
                True,
                figure=True,
            ),
        ]
        # Slow consumers are dropped by the server (keep-alive), not buffered for ever.
        deadline = time.monotonic() + 4 * w.timings.ws_ping + 20
        dropped = 0
        while time.monotonic() < deadline:
            count = await w.fleet_cmd({"cmd": "count"})
            dropped = int(count["slow_dropped"])
            if dropped >= slow:
                break
            await asyncio.sleep(0.2)
        checks.append(
            Check(
                "every slow consumer dropped by the server",
                f"{slow} of {slow}",
                f"{dropped} dropped; close codes seen {count['closes']}",
                dropped == slow,
            )
        )
        checks += await gc_pauses(w, gc0, "the churn")
        checks += await viewer_count(w, [b.stream_id], "the churn", t_end)
        checks += await figures(w, bound_rss_mib=400, bound_stall_ms=500)
        checks += await end_streams(w, [b], f"{viewers:,} viewers")
        stall_end = await w.probe_read(reset=True)
        checks.append(
            Check(
                f"worst event-loop stall while the stream ends ({viewers:,} viewers closed)",
                "<= 1000 ms",
                f"{stall_end:.0f} ms",
                stall_end <= 1000,
                figure=True,
            )
        )
        return checks
