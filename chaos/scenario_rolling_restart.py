"""A rolling restart of every replica under live viewers and broadcasters (SIGTERM)."""

from __future__ import annotations

import time

from chaos._invariants import end_streams, figures, one_owner, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, world

ORDER = 20
TITLE = "rolling restart"
FAULT = (
    "3 replicas, 2 streams with viewers on every replica; each replica in turn leaves the "
    "balancers (readiness off), gets SIGTERM (drain: viewers closed 1001, owned streams "
    "handed over through nginx's re-push), exits, and is started again under a new id "
    "before the next one stops."
)
# Close codes a draining replica must not produce: 1012 (uvicorn's "service restart"
# without the drain), 1006 (the connection cut without a close frame), 1011.
ABRUPT = ("1006", "1011", "1012")


async def run(ctx: Context) -> list[Check]:
    viewers = ctx.pick(full=300, short=30)
    async with world(ctx, "rolling-restart", replicas=3) as w:
        broadcasts = await live(w, 2, viewers)
        streams = [b.stream_id for b in broadcasts]
        checks: list[Check] = []
        exits = []
        ends_before = w.ledger.total("nova_streaming_stream_duration_seconds_count")
        for slot in w.slots:
            t_fault = time.monotonic()
            exits.append(await w.terminate_replica(slot))
            await w.start_replica(slot)
            checks += await viewer_count(w, streams, f"replica {slot.index}'s restart", t_fault)
            checks += await one_owner(w, broadcasts, f"replica {slot.index}'s restart")
        await w.ledger.scrape_all()
        ends_during = w.ledger.total("nova_streaming_stream_duration_seconds_count") - ends_before
        count = await w.fleet_cmd({"cmd": "count"})
        closes = {code: int(n) for code, n in count["closes"].items()}
        abrupt = sum(closes.get(code, 0) for code in ABRUPT)
        checks.append(
            Check(
                "viewers of a stopping replica closed with 1001 (going away)",
                "0 closed 1006/1011/1012; > 0 closed 1001",
                f"close codes seen {closes or 'none'}",
                abrupt == 0 and closes.get("1001", 0) > 0,
            )
        )
        checks.append(
            Check(
                "no stream ended by the roll (handed over)",
                "0 ends",
                f"{ends_during:g} ends",
                ends_during == 0,
            )
        )
        grace = w.timings.shutdown_grace
        checks.append(
            Check(
                "each replica exits within its shutdown grace",
                f"<= NOVA_SHUTDOWN_GRACE {grace:g} s + 2 s",
                f"worst {max(exits):.1f} s",
                max(exits) <= grace + 2,
                figure=True,
            )
        )
        checks += await end_streams(w, broadcasts, "after the roll")
        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
