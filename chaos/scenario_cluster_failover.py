"""A Redis Cluster master killed and failed over to its replica."""

from __future__ import annotations

import asyncio
import time

import redis

from chaos._invariants import end_streams, figures, one_owner, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, world
from nova_testing.redis_cluster import RedisClusterServer

ORDER = 40
TITLE = "Redis Cluster failover"
FAULT = (
    "2 replicas on a Redis Cluster of 3 masters + 3 replicas (NOVA_REDIS_URL "
    "redis+cluster://...), 2 streams with viewers; the master of the global keys is "
    "SIGKILLed and its replica promoted."
)


def failed_over(cluster: RedisClusterServer, within: float) -> bool:
    """Wait until 3 live nodes are masters and every live node says the cluster is ok."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        masters = 0
        for node in cluster.live_nodes():
            client = node.client()
            try:
                masters += client.info("replication").get("role") == "master"
            except redis.RedisError:
                pass
            finally:
                client.close()
        if masters == cluster.masters:
            try:
                cluster.wait_ok(cluster.live_nodes(), within=max(1.0, deadline - time.monotonic()))
            except RuntimeError:
                return False
            return True
        time.sleep(0.1)
    return False


async def run(ctx: Context) -> list[Check]:
    viewers = ctx.pick(full=300, short=40)
    async with world(ctx, "cluster-failover", replicas=2, redis="cluster") as w:
        broadcasts = await live(w, 2, viewers)
        streams = [b.stream_id for b in broadcasts]
        assert w.cluster is not None
        # The master of the global keys ({nova}: heartbeats, the listing) goes down.
        victim = w.cluster.master_of("{nova}")
        t_fault = time.monotonic()
        victim.kill()
        ok = await asyncio.to_thread(failed_over, w.cluster, 30.0)
        failover = time.monotonic() - t_fault
        checks = [
            Check(
                "cluster failed over (a replica promoted)",
                "3 live masters, cluster_state ok on every live node",
                f"{'yes' if ok else 'no'}, after {failover:.1f} s",
                ok,
            )
        ]
        # The count's clock starts when the cluster serves again (the fault is over).
        checks += await viewer_count(w, streams, "the master's failover", t_fault + failover)
        checks += await one_owner(w, broadcasts, "the master's failover")
        checks += await end_streams(w, broadcasts, "through the failover")
        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
