"""nginx-rtmp crashed and restarted: broadcasters reconnect, streams continue."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from chaos._invariants import end_streams, figures, one_owner, viewer_count
from chaos._report import Check, Context
from chaos._setup import live, world

ORDER = 50
TITLE = "nginx-rtmp restart"
FAULT = (
    "2 replicas, 2 streams with viewers; nginx-rtmp is SIGKILLed (every publisher and "
    "push connection drops, no on_publish_done) and started again on the same port; the "
    "broadcasters reconnect with the same stream ids within the stream grace."
)


async def run(ctx: Context) -> list[Check]:
    viewers = ctx.pick(full=200, short=30)
    async with world(ctx, "nginx-restart", replicas=2) as w:
        broadcasts = await live(w, 2, viewers)
        streams = [b.stream_id for b in broadcasts]
        assert w.nginx is not None
        await w.ledger.scrape_all()
        ends_before = w.ledger.total("nova_streaming_stream_duration_seconds_count")
        t_fault = time.monotonic()
        os.killpg(w.nginx.process.pid, signal.SIGKILL)
        await asyncio.to_thread(w.restart_nginx_same_port)
        for b in broadcasts:
            await w.restart_broadcaster(b)
        checks: list[Check] = []
        # Back means relayed again: every replica says "active", not "interrupted".
        for b in broadcasts:
            t0 = time.monotonic()
            states: set[str] = set()
            while time.monotonic() - t0 < w.timings.stream_grace + 20:
                states = await w.stream_states(b.stream_id)
                if states == {"active"}:
                    break
                await asyncio.sleep(0.1)
            checks.append(
                Check(
                    f"stream {b.stream_id[:8]} relayed again after nginx's restart",
                    "state active on every replica",
                    f"{sorted(states)} {time.monotonic() - t_fault:.1f} s after the crash",
                    states == {"active"},
                )
            )
        checks += await viewer_count(w, streams, "nginx's restart", t_fault)
        checks += await one_owner(w, broadcasts, "nginx's restart")
        await w.ledger.scrape_all()
        ends = w.ledger.total("nova_streaming_stream_duration_seconds_count") - ends_before
        checks.append(
            Check("no stream ended by nginx's restart", "0 ends", f"{ends:g} ends", ends == 0)
        )
        checks += await end_streams(w, broadcasts, "through nginx's restart")
        checks += await figures(w, bound_rss_mib=250, bound_stall_ms=250)
        return checks
