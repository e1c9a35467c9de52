"""Timestamp jumps from a crafted RTMP publisher through the whole service: backwards and
far-forward jumps are discontinuities (counted in the service's own metric, no drops, the
lag baseline restarts), gaps up to 10 s count their missing frames in one counter
increment, a 32-bit wrap carried in extended timestamps is neither."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from nova_streaming.service_metrics import INGEST_DISCONTINUITIES
from nova_streaming.tokens import publish_token
from nova_testing.waiting import wait_for
from streaming_metrics import definitions as d

pytestmark = pytest.mark.slow

SECRET = "service-test-secret"  # the service fixture's publish secret
LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS.name
STEP = 40  # ms per frame at 25 fps


def publish_form(stream_id: str) -> str:
    token = publish_token(SECRET, stream_id)
    return f"app=live&addr=127.0.0.1&call=publish&name={stream_id}&type=live&token={token}"


def _timeline() -> tuple[list[int], int, int]:
    """Raw 32-bit video timestamps sent, the drops and the discontinuities they hold."""
    stamps = [i * STEP for i in range(10)]  # 0..360, steady
    far = stamps[-1] + 100_000 * STEP  # 100 000 intervals forward (66 min): discontinuity
    stamps += [far + i * STEP for i in range(4)]
    stamps += [far + i * STEP for i in range(8, 10)]  # frames 4..7 missing: 4 drops
    stamps += [i * STEP for i in range(5)]  # back to 0 (encoder restart): discontinuity
    stamps += [4 * STEP + 9_960]  # a 9.96 s gap (under 10 s): 248 drops
    near_wrap = 2**32 - 3 * STEP  # a step back (in 32-bit arithmetic): discontinuity
    # Across the wrap, in extended timestamps: 5 steady frames, then frames 7 and 8
    # missing (2 drops).
    stamps += [(near_wrap + i * STEP) % 2**32 for i in (*range(7), 9, 10)]
    return stamps, 4 + 248 + 2, 3


async def test_timestamp_jumps_through_the_service(make_service: Any, publishers: Any) -> None:
    """Exact frame_drop and discontinuity counts; each gap's drops in one increment; no
    frame carries the jumps as lag."""
    service = await make_service()
    reports: list[tuple[str, int]] = []
    record = service.metrics.record_broadcast_error

    def counting(error_type: str, count: int = 1) -> None:
        reports.append((error_type, count))
        record(error_type, count)

    service.metrics.record_broadcast_error = counting  # observe the calls, still count
    assert service.sample(INGEST_DISCONTINUITIES) == 0  # exported at 0
    sid = str(uuid.uuid4())
    assert await service.post("/rtmp/on_publish", publish_form(sid)) == 200
    pub = await publishers(service.ingest_port)
    await pub.publish(f"{sid}_720p")
    await wait_for(lambda: service.service.registry.is_active(sid), what="active")
    await pub.metadata({"width": 1280.0, "height": 720.0, "framerate": 25.0})
    stamps, drops, discontinuities = _timeline()
    for ts in stamps:
        pub.video(ts, keyframe=ts == 0)
        await pub.drain()
    await wait_for(
        lambda: service.sample(f"{LATENCY}_count", quality="720p") == len(stamps),
        what="every frame",
    )
    assert service.sample(INGEST_DISCONTINUITIES) == discontinuities
    assert service.errors("frame_drop") == drops
    assert [r for r in reports if r[0] == "frame_drop"] == [
        ("frame_drop", 4),
        ("frame_drop", 248),
        ("frame_drop", 2),
    ]
    for error_type in ("protocol_error", "rtmp_connection_failed", "timeout", "auth_rejected"):
        assert service.errors(error_type) == 0, error_type
    # Frames arrive in one burst, faster than media time: lag is about 0 throughout.
    # Had the backwards jump not restarted the baseline, each frame after it would
    # carry about 4000 s of lag.
    assert service.sample(f"{LATENCY}_sum", quality="720p") < 100
    [session] = service.component.receiver.sessions
    assert session.discontinuities == discontinuities
    assert session.dropped_frames == drops
