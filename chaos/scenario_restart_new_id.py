"""A replica SIGKILLed and restarted at once under a new (default) replica id."""

from __future__ import annotations

import time

from chaos._invariants import end_streams, figures, one_owner, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, owner_of, world

ORDER = 11
TITLE = "replica restarted, new id"
FAULT = (
    "3 replicas, one stream and its viewers; the owner is SIGKILLed and its slot restarted "
    "at once on the same ports with no NOVA_REPLICA_ID (the service picks an id per "
    "incarnation); viewers reconnect anywhere, including the new process."
)


async def run(ctx: Context) -> list[Check]:
    viewers = ctx.pick(full=600, short=60)
    async with world(ctx, "restart-new-id", replicas=3) as w:
        (b,) = await live(w, 1, viewers)
        await w.ledger.scrape_all()
        owner = owner_of(w, b.stream_id)
        if owner is None:
            raise RuntimeError("chaos: no replica exports the stream")
        t_fault = time.monotonic()
        await w.kill_replica(w.slots[owner])
        await w.start_replica(w.slots[owner])
        checks = await viewer_count(w, [b.stream_id], "SIGKILL + restart (new id)", t_fault)
        checks += await one_owner(w, [b], "SIGKILL + restart (new id)")
        checks += await end_streams(w, [b], "owner restarted")
        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
