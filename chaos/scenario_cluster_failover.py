"""A Redis Cluster master killed and failed over to its replica."""

from __future__ import annotations

import asyncio
import time

from chaos._invariants import end_streams, figures, one_owner, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, world

ORDER = 40
TITLE = "Redis Cluster failover"
FAULT = (
    "2 replicas on a Redis Cluster of 3 masters + 3 replicas (NOVA_REDIS_URL names one "
    "node), 2 streams with viewers; one master is SIGKILLed and its replica promoted."
)


async def run(ctx: Context) -> list[Check]:
    viewers = ctx.pick(full=300, short=40)
    async with world(ctx, "cluster-failover", replicas=2, redis="cluster") as w:
        broadcasts = await live(w, 2, viewers)
        streams = [b.stream_id for b in broadcasts]
        assert w.cluster is not None
        t_fault = time.monotonic()
        await asyncio.to_thread(w.cluster.kill_master)
        failover = time.monotonic() - t_fault
        checks = [
            Check(
                "cluster failed over",
                "3 masters, cluster_state ok",
                f"after {failover:.1f} s",
                True,
            )
        ]
        checks += await viewer_count(w, streams, "the master's failover", t_fault)
        checks += await one_owner(w, broadcasts, "the master's failover")
        checks += await end_streams(w, broadcasts, "through the failover")
        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
