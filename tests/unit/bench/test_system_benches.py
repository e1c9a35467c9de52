"""The service and ingest benches' building blocks work against the real components."""

from __future__ import annotations

import os

from bench import Context
from bench._procs import cpu_seconds, rss_bytes
from bench._rtmp_stream import STREAM_BITS_PER_SECOND, StreamPlan
from bench.bench_ingest import live_level, parser_stream
from bench.bench_service import TARGET_VIEWERS, _shares, measure, measure_together, top_level

from nova_streaming.ingest.session import (
    MediaReceived,
    MetadataReceived,
    PublishRequested,
    RtmpServerSession,
)

QUICK = Context(quick=True)


def test_proc_readers_see_this_process() -> None:
    """RSS and CPU seconds are read from /proc for any pid."""
    assert rss_bytes(os.getpid()) > 1_000_000
    assert cpu_seconds(os.getpid()) > 0


def test_synthetic_stream_has_the_planned_bitrate() -> None:
    """Two seconds of synthetic media carry 2.5 Mbit/s within 2 % (headers included)."""
    media = StreamPlan().media_ticks(seconds=2)
    bits = sum(len(data) for _, data in media) * 8 / 2
    assert abs(bits - STREAM_BITS_PER_SECOND) / STREAM_BITS_PER_SECOND < 0.02


def test_parser_stream_is_a_whole_publish_the_session_accepts() -> None:
    """The pre-built bytes publish, carry metadata and every media frame, no error."""
    data = parser_stream(1)
    session = RtmpServerSession()
    events = []
    for start in range(0, len(data), 65_536):
        events += session.receive(data[start : start + 65_536])
    assert sum(isinstance(e, PublishRequested) for e in events) == 1
    assert sum(isinstance(e, MetadataReceived) for e in events) == 1
    video = [e for e in events if isinstance(e, MediaReceived) and e.video and e.is_frame]
    assert len(video) == 30
    assert video[0].keyframe


def test_service_measure_connects_and_reaches_every_viewer() -> None:
    """Every server holds the asked viewers and every one gets the broadcast."""
    for kind in ("bare", "nova", "nova-asyncio-h11", "bare-uvloop", "picows"):
        result = measure(kind, [20], 1, QUICK, client_capacity=8)  # three clients
        level = result.levels[0]
        assert level.connected == 20
        assert level.received == [20]
        assert level.rss > result.idle_rss
        assert result.loop == ("asyncio" if kind in ("bare", "nova-asyncio-h11") else "uvloop")


def test_servers_side_by_side_broadcast_in_turn() -> None:
    """Two servers held at once: each keeps its own viewers, levels and broadcasts."""
    runs = measure_together(["bare", "nova"], [10, 30], 2, QUICK, client_capacity=16)
    for kind, run_ in runs.items():
        assert [lvl.connected for lvl in run_.levels] == [10, 30], kind
        assert [lvl.received for lvl in run_.levels] == [[10, 10], [30, 30]], kind
        assert run_.levels[1].rss > run_.idle_rss


def test_viewers_are_spread_over_client_processes() -> None:
    """Viewers are shared out over the clients exactly; the top level fits the fd limit."""
    assert _shares(20_000, 3) == [6_667, 6_667, 6_666]
    assert sum(_shares(7, 7)) == 7 and _shares(5, 1) == [5]
    assert 1_000 < top_level() <= TARGET_VIEWERS


def test_ingest_live_level_direct_and_through_nginx() -> None:
    """Publishers reach the receiver directly and via nginx's push; CPU is measured."""
    direct = live_level(2, 0.5, False, QUICK)
    assert direct.streams == 2 and direct.received_bytes > 0 and direct.nginx_cpu is None
    relayed = live_level(2, 0.5, True, QUICK)
    assert relayed.received_bytes > 0 and relayed.nginx_cpu is not None
    assert relayed.errors == 0
