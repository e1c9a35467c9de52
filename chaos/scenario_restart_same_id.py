"""A replica SIGKILLed and restarted at once under the SAME explicit replica id."""

from __future__ import annotations

import time

from chaos._invariants import end_streams, figures, one_owner, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, owner_of, world
from chaos._world import Timings

ORDER = 12
TITLE = "replica restarted, same id"
FAULT = (
    "3 replicas with explicit NOVA_REPLICA_ID (a StatefulSet's pod names), one stream and "
    "its viewers; the owner is SIGKILLed and restarted at once under the same id (what "
    "Kubernetes does to a crashed container): the new incarnation must clear what the old "
    "one left (its presence counts, its streams), not inherit it."
)


async def run(ctx: Context) -> list[Check]:
    viewers = ctx.pick(full=600, short=60)
    # A TTL longer than a restart takes (about 2 s here): the new incarnation is up
    # while the old one's heartbeat would still be alive, as with the default 15 s.
    timings = Timings(presence_ttl=8.0)
    async with world(ctx, "restart-same-id", replicas=3, start=False, timings=timings) as w:
        for slot in w.slots:
            await w.start_replica(slot, replica_id=f"chaos-replica-{slot.index}")
        await w.start_rest()
        (b,) = await live(w, 1, viewers)
        await w.ledger.scrape_all()
        owner = owner_of(w, b.stream_id)
        if owner is None:
            raise RuntimeError("chaos: no replica exports the stream")
        slot = w.slots[owner]
        t_fault = time.monotonic()
        await w.kill_replica(slot)
        await w.start_replica(slot, replica_id=f"chaos-replica-{slot.index}")
        checks = await viewer_count(w, [b.stream_id], "SIGKILL + restart (same id)", t_fault)
        checks += await one_owner(w, [b], "SIGKILL + restart (same id)")
        checks += await end_streams(w, [b], "owner restarted, same id")
        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
