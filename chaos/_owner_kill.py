"""The owner of a stream SIGKILLed, then left dead or restarted: one parametrised run
behind three scenarios (``replica_kill``, ``restart_new_id``, ``restart_same_id``).

Each holds 3 replicas, one stream and its viewers, kills the replica that owns the
stream (no cleanup of any kind) and checks the same invariants: the global count exact
again within the TTL, one owner, the stream ending exactly once with its real duration
and final viewers, RSS and stall bounded.

Example (a whole scenario module)::

    from chaos._owner_kill import Restart, run_owner_kill
    from chaos._report import Check, Context

    TITLE = "replica SIGKILL"
    FAULT = "..."

    async def run(ctx: Context) -> list[Check]:
        return await run_owner_kill(ctx, "replica-kill", Restart.NONE)
"""

from __future__ import annotations

import enum
import time

from chaos._invariants import end_streams, figures, one_owner, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, owner_of, world
from chaos._world import Timings


class Restart(enum.Enum):
    """What happens to the killed owner's slot."""

    NONE = "owner's SIGKILL"
    NEW_ID = "SIGKILL + restart (new id)"
    SAME_ID = "SIGKILL + restart (same id)"


def _replica_id(restart: Restart, index: int) -> str | None:
    # Explicit ids (a StatefulSet's pod names) only where the scenario is about them.
    return f"chaos-replica-{index}" if restart is Restart.SAME_ID else None


async def run_owner_kill(ctx: Context, name: str, restart: Restart) -> list[Check]:
    """Kill the stream's owner, restart its slot as ``restart`` says, measure."""
    viewers = ctx.pick(full=600, short=60)
    # Same id: a TTL longer than a restart takes (about 2 s here), so the new incarnation
    # is up while the old one's heartbeat would still be alive, as with the default 15 s.
    same_id = restart is Restart.SAME_ID
    timings = Timings(presence_ttl=8.0) if same_id else Timings()
    async with world(ctx, name, replicas=3, start=not same_id, timings=timings) as w:
        if same_id:
            for slot in w.slots:
                await w.start_replica(slot, replica_id=_replica_id(restart, slot.index))
            await w.start_rest()
        (b,) = await live(w, 1, viewers)
        await w.ledger.scrape_all()
        owner = owner_of(w, b.stream_id)
        if owner is None:
            raise RuntimeError("chaos: no replica exports the stream")
        slot = w.slots[owner]
        t_fault = time.monotonic()
        await w.kill_replica(slot)
        if restart is not Restart.NONE:
            await w.start_replica(slot, replica_id=_replica_id(restart, slot.index))
        checks = await viewer_count(w, [b.stream_id], restart.value, t_fault)
        checks += await one_owner(w, [b], restart.value)
        ended = {
            Restart.NONE: "owner killed",
            Restart.NEW_ID: "owner restarted",
            Restart.SAME_ID: "owner restarted, same id",
        }[restart]
        checks += await end_streams(w, [b], ended)
        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
