"""StreamTimer: sync and async use, stop(), and exactly one observation."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streaming_metrics import StreamingMetrics, StreamTimer, helpers
from streaming_metrics import definitions as d

COUNT = d.STREAM_DURATION_SECONDS.name + "_count"
SUM = d.STREAM_DURATION_SECONDS.name + "_sum"


def observed(
    registry: CollectorRegistry, stream_type: str = "live"
) -> tuple[float | None, float | None]:
    labels = {"stream_type": stream_type}
    return registry.get_sample_value(COUNT, labels), registry.get_sample_value(SUM, labels)


def test_with_block_records_its_duration(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """Leaving the with block records the block's duration (entering restarts the clock)."""
    timer = StreamTimer("pre-recorded", metrics=metrics)
    clock.advance(100.0)  # before the block: not timed
    with timer:
        clock.advance(90.0)
    assert observed(registry, "pre-recorded") == (1.0, 90.0)
    assert timer.elapsed == 90.0
    assert timer.stream_type == "pre-recorded"


def test_stop_returns_elapsed_and_records_once(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """stop() records time since construction once; later stops return the same value."""
    timer = metrics.timer()
    clock.advance(42.0)
    assert timer.stop() == 42.0
    clock.advance(10.0)
    assert timer.stop() == 42.0
    assert observed(registry) == (1.0, 42.0)


def test_stop_inside_block_then_exit_records_once(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """stop() inside the block followed by the block's exit is still one observation."""
    with metrics.timer() as timer:
        clock.advance(5.0)
        assert timer.stop() == 5.0
        clock.advance(5.0)
    assert observed(registry) == (1.0, 5.0)


def test_exception_in_block_still_records(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """A block that raises is timed and the exception propagates."""
    with pytest.raises(RuntimeError, match="boom"), metrics.timer():
        clock.advance(7.0)
        raise RuntimeError("boom")
    assert observed(registry) == (1.0, 7.0)


async def test_async_with_records_once(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """async with times the block and records once, even with an explicit stop()."""
    async with metrics.timer() as timer:
        await asyncio.sleep(0)
        clock.advance(3.0)
    assert timer.stop() == 3.0
    assert observed(registry) == (1.0, 3.0)


async def test_sync_with_inside_coroutine(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """A plain with inside a coroutine around an await records the block's duration."""
    with StreamTimer(metrics=metrics):
        await asyncio.sleep(0)
        clock.advance(2.5)
    assert observed(registry) == (1.0, 2.5)


def test_concurrent_stops_record_once(
    metrics: StreamingMetrics, registry: CollectorRegistry, clock: Any
) -> None:
    """Many threads calling stop() at once produce one observation and one elapsed value."""
    timer = metrics.timer()
    clock.advance(11.0)
    barrier = threading.Barrier(8)
    results: list[float] = []

    def stop() -> None:
        barrier.wait()
        results.append(timer.stop())

    threads = [threading.Thread(target=stop) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [11.0] * 8
    assert observed(registry) == (1.0, 11.0)


def test_real_clock_measures_nonnegative_time() -> None:
    """With the default monotonic clock the elapsed time is >= 0 and recorded."""
    registry = CollectorRegistry()
    metrics = StreamingMetrics(registry)
    with metrics.timer() as timer:
        pass
    elapsed = timer.elapsed
    assert elapsed is not None and elapsed >= 0.0
    assert observed(registry)[0] == 1.0


def test_bad_stream_type_counted_not_raised(
    metrics: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """A malformed stream_type is a counted rejection; a well-formed unknown one is other."""
    StreamTimer("Not Valid", metrics=metrics).stop()
    StreamTimer("vod", metrics=metrics).stop()
    assert (
        registry.get_sample_value(d.REJECTED_INPUTS.name, {"reason": d.REJECT_INVALID_LABEL}) == 1.0
    )
    assert observed(registry, d.OTHER)[0] == 1.0


@pytest.mark.usefixtures("clean_default_registry")
def test_timer_without_metrics_uses_default_instance() -> None:
    """StreamTimer() with no metrics records into the helpers' default instance on REGISTRY."""
    from prometheus_client import REGISTRY

    with helpers.StreamTimer("live"):
        pass
    assert REGISTRY.get_sample_value(COUNT, {"stream_type": "live"}) == 1.0
