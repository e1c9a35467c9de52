"""The receiver on the event loop the service runs on (``nova_streaming.runner``: uvloop
when it is installed), driven by a crafted publisher over loopback."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest

from nova_streaming.ingest.receiver import IngestReceiver, StopReason
from nova_streaming.runner import new_event_loop, run
from nova_testing.rtmp_publisher import RtmpPublisher
from nova_testing.waiting import wait_for

STREAM = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"


def test_the_service_loop_is_uvloop_when_installed() -> None:
    """The runner's loop is uvloop's whenever uvloop can be imported."""
    loop = new_event_loop()
    try:
        expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
        assert type(loop).__module__.split(".")[0] == expected
    finally:
        loop.close()


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_publish_frames_and_drops_on_the_service_loop(sink: Any) -> None:
    """Publish, metadata, frames with a gap, a bitrate report (media spans 1.8 s) and
    the stop, on uvloop: as on asyncio's loop. (Before the fix every connection failed
    on uvloop: its transports are not ``asyncio.Transport`` subclasses and the receiver
    asserted they were.)"""

    async def scenario() -> None:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        receiver = IngestReceiver(sink, host="127.0.0.1", port=0)
        await receiver.start()
        pub = await RtmpPublisher.open(receiver.port)
        try:
            await pub.publish(STREAM)
            await wait_for(lambda: len(sink.starts) == 1, what="publish start")
            await pub.metadata({"height": 720.0, "framerate": 25.0})
            pub.video_config(0)
            # 25 fps: frames 10..14 missing are 5 drops.
            stamps = [i * 40 for i in range(45) if not 10 <= i < 15]
            for ts in stamps:
                pub.video(ts, size=4000, keyframe=ts == 0)
                pub.audio(ts)
                await pub.drain()
                await asyncio.sleep(0.04)
            await wait_for(lambda: len(sink.frames) == len(stamps), what="all frames")
            frames = [frame for _, frame in sink.frames]
            assert [f.timestamp_ms for f in frames] == stamps
            assert all(f.quality == "720p" and f.lag_seconds >= 0 for f in frames)
            assert sink.error_count("frame_drop") == 5
            await wait_for(lambda: sink.bitrates, what="a bitrate report")
            await pub.close()
            await wait_for(lambda: len(sink.stops) == 1, what="stop")
            assert sink.stops[0][1] is StopReason.CLOSED
        finally:
            await pub.close()
            await receiver.stop()

    run(scenario())
