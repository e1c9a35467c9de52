"""A replica SIGKILLed: its viewers reconnect elsewhere, its stream is taken over."""

from __future__ import annotations

import time

from chaos._invariants import end_streams, figures, one_owner, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, owner_of, world

ORDER = 10
TITLE = "replica SIGKILL"
FAULT = (
    "3 replicas, one stream and its viewers; the replica owning the stream is SIGKILLed "
    "(no cleanup of any kind): its viewers reconnect to the others, nginx re-pushes the "
    "stream to another replica (take-over), then the broadcaster stops."
)


async def run(ctx: Context) -> list[Check]:
    viewers = ctx.pick(full=600, short=60)
    async with world(ctx, "replica-kill", replicas=3) as w:
        (b,) = await live(w, 1, viewers)
        await w.ledger.scrape_all()
        owner = owner_of(w, b.stream_id)
        if owner is None:
            raise RuntimeError("chaos: no replica exports the stream")
        t_fault = time.monotonic()
        await w.kill_replica(w.slots[owner])
        checks = await viewer_count(w, [b.stream_id], "the owner's SIGKILL", t_fault)
        checks += await one_owner(w, [b], "the owner's SIGKILL")
        checks += await end_streams(w, [b], "owner killed")
        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
