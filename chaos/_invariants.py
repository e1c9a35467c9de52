"""The invariants every scenario measures, each returning :class:`~chaos._report.Check` s.

- viewer count: every live replica's global count of a stream equals the number of
  connections the clients hold open (fleet settled), within the presence TTL of the
  fault (the time is a figure; converging at all is the invariant);
- stream end: a stopped broadcast ends exactly once (the duration histogram's count
  moves by 1 over every incarnation of the run, and stays so past grace and TTL), with
  its real duration (+-1 s, as the harness clocked it) and its final viewers (the
  viewers histogram's sum moves by the clients' count);
- one owner: ``active_streams`` summed over live replicas equals the live broadcasts,
  and each stream has exactly one ``stream_info``;
- RSS and event-loop stall: figures against a bound.
"""

from __future__ import annotations

import asyncio
import time

from chaos._ledger import select
from chaos._report import Check
from chaos._world import ACTIVE, DURATION, FINAL_VIEWERS, INFO, Broadcast, World


def converge_limit(world: World) -> float:
    """How long a count may take before the invariant (not the figure) fails: three
    TTLs and a margin for a loaded machine (a count stuck wrong stays wrong)."""
    return 3 * world.timings.presence_ttl + 10.0


# Time to see a change: the presence sync interval (TTL/4, at most 1 s) plus polling.
COUNT_SLACK = 1.5


async def viewer_count(
    world: World, streams: list[str], after: str, fault_at: float
) -> list[Check]:
    """The global viewer count of ``streams`` equals the clients' ground truth."""
    ok, _, last = await world.converge(streams, within=converge_limit(world))
    seconds = time.monotonic() - fault_at
    count = await world.fleet_cmd({"cmd": "count"})
    # A viewer of a live stream told "not a stream" (44xx) gives up: a lost viewer.
    refused = {c: n for c, n in count["closes"].items() if int(c) >= 4000}
    bound = world.timings.presence_ttl + COUNT_SLACK
    checks = [
        Check(
            f"global viewer count exact after {after}",
            "= clients' open connections on every replica",
            last,
            ok,
        ),
        Check(
            f"no viewer of a live stream turned away (up to {after})",
            "0 closes 4xxx",
            f"{sum(refused.values())} ({refused or 'none'})",
            not refused,
        ),
    ]
    if ok:
        checks.append(
            Check(
                f"count exact within the TTL after {after}",
                f"<= TTL {world.timings.presence_ttl:g} s + {COUNT_SLACK:g} s",
                f"{seconds:.1f} s",
                seconds <= bound,
                figure=True,
            )
        )
    return checks


async def one_owner(world: World, broadcasts: list[Broadcast], after: str) -> list[Check]:
    """Exactly one replica exports each live stream (waits up to grace + TTL for it)."""
    expected = len(broadcasts)
    limit = world.timings.stream_grace + world.timings.presence_ttl + 10
    deadline = time.monotonic() + limit
    while True:
        await world.ledger.scrape_all()
        active = world.ledger.live_sum(ACTIVE)
        infos = {
            b.stream_id: world.ledger.live_sum(INFO, {"stream_id": b.stream_id}) for b in broadcasts
        }
        ok = active == expected and all(v == 1 for v in infos.values())
        if ok or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    measured = f"active_streams {active:g} (want {expected}); stream_info per stream " + (
        ", ".join(f"{v:g}" for v in infos.values()) or "none"
    )
    return [Check(f"one owner per stream after {after}", "sum active = live streams", measured, ok)]


class EndWatch:
    """Totals of the end histograms before a stream is stopped."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.count = world.ledger.total(DURATION + "_count")
        self.seconds = world.ledger.total(DURATION + "_sum")
        self.viewers = world.ledger.total(FINAL_VIEWERS + "_sum")

    @classmethod
    async def take(cls, world: World) -> EndWatch:
        await world.ledger.scrape_all()
        return cls(world)


async def end_streams(world: World, broadcasts: list[Broadcast], label: str) -> list[Check]:
    """Stop each broadcast in turn and check its end: once, real duration, final viewers.

    Streams are stopped one at a time (the histograms do not say which stream an end
    was), each end awaited; then, past grace and TTL, no further end may have appeared.
    """
    checks: list[Check] = []
    first = await EndWatch.take(world)
    t = world.timings
    for b in broadcasts:
        count = await world.fleet_cmd({"cmd": "count"})
        viewers = int(count["open"].get(b.stream_id, 0))
        before = await EndWatch.take(world)
        await world.stop_broadcast(b)
        real = b.stopped_at - b.visible_at
        deadline = time.monotonic() + t.stream_grace + t.ingest_timeout + 15
        while True:
            await world.ledger.scrape_all()
            ended = world.ledger.total(DURATION + "_count") - before.count
            if ended >= 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        after = EndWatch(world)
        duration = after.seconds - before.seconds
        final = after.viewers - before.viewers
        sid = b.stream_id[:8]
        checks.append(
            Check(
                f"stream {sid} ({label}) duration = real",
                "+-1 s",
                f"recorded {duration:.2f} s, real {real:.2f} s",
                ended == 1 and abs(duration - real) <= 1.0,
            )
        )
        checks.append(
            Check(
                f"stream {sid} ({label}) final viewers = clients'",
                "exact",
                f"recorded {final:g}, clients {viewers}",
                ended == 1 and final == viewers,
            )
        )
    # Exactly once: nothing else may end them later (a reaper, a second replica).
    await asyncio.sleep(t.stream_grace + t.presence_ttl + 0.5)
    await world.ledger.scrape_all()
    ends = EndWatch(world).count - first.count
    checks.append(
        Check(
            f"every stream ({label}) ends exactly once",
            f"{len(broadcasts)} ends",
            f"{ends:g} ends",
            ends == len(broadcasts),
        )
    )
    return checks


async def figures(world: World, bound_rss_mib: float, bound_stall_ms: float) -> list[Check]:
    """Worst RSS of any replica process and the worst /healthz answer time (stall)."""
    stall = await world.probe_read(reset=True)
    rss = world.rss_max() / 2**20
    return [
        Check(
            "replica RSS bounded",
            f"<= {bound_rss_mib:g} MiB",
            f"{rss:.0f} MiB (largest replica process)",
            0 < rss <= bound_rss_mib,
            figure=True,
        ),
        Check(
            "worst event-loop stall bounded",
            f"<= {bound_stall_ms:g} ms",
            f"{stall:.0f} ms (worst /healthz answer, probe every 25 ms)",
            stall <= bound_stall_ms,
            figure=True,
        ),
    ]


GC_PAUSE = "nova_streaming_gc_pause_seconds"


def gc_full_passes(world: World) -> dict[str, tuple[float, float, float]]:
    """Per live incarnation: full (generation 2) collections so far, their total time
    (s) and the upper bound of the longest one (s, the histogram's smallest bucket
    holding them all), from the replicas' ``nova_streaming_gc_pause_seconds``."""
    out: dict[str, tuple[float, float, float]] = {}
    for key, inc in world.ledger.incarnations.items():
        if not inc.live:
            continue
        full = {"generation": "2"}
        count = select(inc.samples, f"{GC_PAUSE}_count", full)
        total = select(inc.samples, f"{GC_PAUSE}_sum", full)
        longest = float("inf") if count else 0.0
        for (name, labels), value in inc.samples.items():
            lab = dict(labels)
            if name == f"{GC_PAUSE}_bucket" and lab.get("generation") == "2" and value >= count:
                longest = min(longest, float(lab["le"]))
        out[key] = (count, total, longest)
    return out


async def gc_pauses(
    world: World, before: dict[str, tuple[float, float, float]], during: str
) -> list[Check]:
    """How many full collections the replicas ran since ``before`` and how long they
    took (reported: the stall figure's usual cause under many connections)."""
    await world.ledger.scrape_all()
    after = gc_full_passes(world)
    parts = []
    for key, (count, total, longest) in sorted(after.items()):
        c0, t0, _ = before.get(key, (0.0, 0.0, 0.0))
        n = count - c0
        mean = (total - t0) / n * 1000 if n else 0.0
        parts.append(f"{key}: {n:.0f} passes, mean {mean:.0f} ms, longest <= {longest * 1000:g} ms")
    return [
        Check(
            f"full garbage collections during {during}",
            "reported",
            "; ".join(parts) or "no live replica",
            True,
            figure=True,
        )
    ]
