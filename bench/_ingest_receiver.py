"""The real RTMP ingest receiver in its own process, for the ingest bench.

``python -m bench._ingest_receiver`` runs :class:`~nova_streaming.ingest.IngestReceiver`
on a free loopback port with :class:`MetricsSink`, which does per event what the
service's ingest sink does on its hot path (the frame latency histogram for every video
frame, the per-stream bitrate gauge, counted errors) into a private
``StreamingMetrics``, without the registry's admission steps, on the service's event
loop (or asyncio's, by argument). Prints ``{"port", "pid", "loop"}`` when ready;
``{"cmd": "stats"}`` answers with the sessions publishing and what they received;
``{"cmd": "quit"}`` stops it.

Example::

    .venv/bin/python -m bench._ingest_receiver     # then {"cmd": "stats"}
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping

from bench._procs import commands, emit, raise_nofile
from nova_streaming.ingest.receiver import IngestReceiver, IngestSession, StopReason, VideoFrame
from streaming_metrics import StreamingMetrics

REGION = "bench"


class MetricsSink:
    """An ``IngestSink`` recording what the service's sink records, minus the registry.

    Example::

        sink = MetricsSink(StreamingMetrics(CollectorRegistry(), regions=["bench"]))
    """

    def __init__(self, metrics: StreamingMetrics) -> None:
        self.metrics = metrics
        self.latency = metrics.record_rtmp_frame_latency
        self.errors = 0

    def on_publish_start(self, session: IngestSession) -> bool | None:
        """The stream starts (its per-stream series appear)."""
        self.metrics.record_stream_started(session.stream_id, REGION)
        return None

    def on_metadata(self, session: IngestSession, metadata: Mapping[str, object]) -> None:
        """Nothing: the receiver already took the quality from it."""

    def on_video_frame(self, session: IngestSession, frame: VideoFrame) -> None:
        """Observe the frame's lag (the per-frame hot path)."""
        self.latency(frame.quality, frame.lag_seconds)

    def on_bitrate(self, session: IngestSession, quality: str, kbps: float) -> None:
        """The per-stream bitrate gauge."""
        self.metrics.record_quality_bitrate(session.stream_id, quality, kbps)

    def on_publish_stop(self, session: IngestSession, reason: StopReason) -> None:
        """The stream ends."""
        self.metrics.record_stream_ended(session.stream_id, REGION, 0.0, 0)

    def on_error(
        self, session: IngestSession | None, error_type: str, count: int, detail: str
    ) -> None:
        """Count the error (the bench reports how many)."""
        self.errors += count
        self.metrics.record_broadcast_error(error_type)


async def run() -> None:
    """Serve until ``quit`` or end of input."""
    from prometheus_client import CollectorRegistry

    sink = MetricsSink(StreamingMetrics(CollectorRegistry(), regions=[REGION]))
    receiver = IngestReceiver(sink, host="127.0.0.1", port=0, ingest_timeout=30.0)
    await receiver.start()
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    emit({"port": receiver.port, "pid": os.getpid(), "loop": loop})
    try:
        async for command in commands():
            if command.get("cmd") == "stats":
                sessions = receiver.sessions
                emit(
                    {
                        "sessions": len(sessions),
                        "frames": sum(s.frames for s in sessions),
                        "media_bytes": sum(s.media_bytes for s in sessions),
                        "dropped": sum(s.dropped_frames for s in sessions),
                        "errors": sink.errors,
                        "received": sum(c.received for c in receiver.connections.values()),
                    }
                )
            else:
                emit({"error": f"unknown command {command!r}"})
    finally:
        await receiver.stop()


def main(argv: list[str]) -> int:
    """``python -m bench._ingest_receiver [service|asyncio]``: the event loop the service
    runs on (:func:`nova_streaming.runner.new_event_loop`: uvloop when installed), or
    asyncio's own loop for comparison."""
    from nova_streaming.runner import new_event_loop

    raise_nofile()
    kind = argv[0] if argv else "service"
    factories = {"service": new_event_loop, "asyncio": asyncio.new_event_loop}
    if kind not in factories:
        print(f"usage: python -m bench._ingest_receiver [{'|'.join(factories)}]", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=factories[kind]) as runner:
        runner.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
