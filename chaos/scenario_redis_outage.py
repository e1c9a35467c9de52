"""Redis stopped (crashed, restarted empty) under live viewers and a broadcast."""

from __future__ import annotations

import asyncio
import time

from chaos._invariants import end_streams, figures, one_owner, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, world

ORDER = 30
TITLE = "Redis outage"
FAULT = (
    "2 replicas on one redis-server, one stream with viewers; Redis is killed for 30 s "
    "(short version: 4 s) while viewers keep joining and leaving, then started again on "
    "the same port, empty (no persistence, like a restarted cache pod)."
)


async def run(ctx: Context) -> list[Check]:
    viewers = ctx.pick(full=300, short=40)
    outage = ctx.pick(full=30.0, short=4.0)
    async with world(ctx, "redis-outage", replicas=2) as w:
        (b,) = await live(w, 1, viewers)
        assert w.redis is not None
        w.redis.stop()
        t_down = time.monotonic()
        # Viewers come and go while Redis is away: the counts must catch up after.
        await w.fleet_cmd({"cmd": "release", "stream": b.stream_id, "n": viewers // 4})
        await w.fleet_cmd({"cmd": "hold", "stream": b.stream_id, "n": viewers // 10})
        await asyncio.sleep(max(0.0, outage - (time.monotonic() - t_down)))
        await asyncio.to_thread(w.redis.start)
        t_back = time.monotonic()
        checks = [
            Check(
                "Redis away for the planned time",
                f"{outage:g} s",
                f"{t_back - t_down:.1f} s",
                t_back - t_down >= outage,
            )
        ]
        checks += await viewer_count(w, [b.stream_id], "Redis back (empty)", t_back)
        checks += await one_owner(w, [b], "Redis back (empty)")
        checks += await end_streams(w, [b], "through the Redis outage")
        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
