"""The common opening of a scenario: broadcasts, viewers spread over every replica."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos._report import Context
from chaos._world import INFO, Broadcast, World


def world(ctx: Context, name: str, **kwargs: Any) -> World:
    """A :class:`World` whose run directory is under the harness's run root."""
    return World(name, run_root=Path(ctx.run_root) if ctx.run_root else None, **kwargs)


async def live(world: World, streams: int, viewers: int) -> list[Broadcast]:
    """Start ``streams`` broadcasts and hold ``viewers`` viewers on each (round robin
    over the replicas); returns once every viewer is open and every replica reports
    the clients' count (so the counts are in Redis before any fault)."""
    broadcasts = [await world.broadcast() for _ in range(streams)]
    for b in broadcasts:
        reply = await world.fleet_cmd({"cmd": "hold", "stream": b.stream_id, "n": viewers})
        if not reply["settled"]:
            raise RuntimeError(f"chaos: viewers of {b.stream_id} did not all connect: {reply}")
    ok, _, last = await world.converge([b.stream_id for b in broadcasts], within=60)
    if not ok:
        raise RuntimeError(f"chaos: counts wrong before any fault: {last}")
    count = await world.fleet_cmd({"cmd": "count"})
    held = sum(int(count["open"].get(b.stream_id, 0)) for b in broadcasts)
    if held != streams * viewers:
        raise RuntimeError(
            f"chaos: {held} of {streams * viewers} viewers held before any fault; "
            f"close codes {count['closes']}"
        )
    # The figures (stall, RSS) are about the fault, not the start-up and the joins.
    await world.probe_read(reset=True)
    world.rss_peak.clear()
    return broadcasts


def owner_of(world: World, stream_id: str) -> int | None:
    """The slot index whose live process exports ``stream_info`` for the stream."""
    for slot in world.live_slots():
        inc = world.ledger.incarnations.get(slot.key)
        if inc is None:
            continue
        for (name, labels), value in inc.samples.items():
            if name == INFO and ("stream_id", stream_id) in labels and value:
                return slot.index
    return None
