"""Timestamp discontinuities in the frame analysis: a video timestamp that goes
backwards, or forward by more than 10 s of media time, restarts the lag baseline and
counts no drops; gaps up to 10 s count their missing frames; a 32-bit wrap is neither."""

from __future__ import annotations

import pytest

from nova_streaming.ingest.frames import MAX_MEDIA_GAP_MS, StreamStats

FPS = 25
STEP = 40  # ms per frame at 25 fps


def _steady(stats: StreamStats, arrival: float, timestamp: int, frames: int) -> float:
    """Feed ``frames`` on-time frames from (arrival, timestamp); return the next arrival."""
    for i in range(frames):
        stat = stats.video(arrival + i * STEP / 1000, (timestamp + i * STEP) % 2**32)
        assert not stat.discontinuity and stat.dropped == 0
    return arrival + frames * STEP / 1000


def test_forward_jump_over_ten_seconds_is_a_discontinuity() -> None:
    """A jump of 100 000 frame intervals forward: one discontinuity, no drops, lag 0."""
    s = StreamStats(framerate=FPS)
    arrival = _steady(s, 100.0, 0, 5)
    jump = s.video(arrival, 4 * STEP + 100_000 * STEP)
    assert jump.discontinuity and jump.dropped == 0 and jump.lag_seconds == 0.0
    # The baseline restarted at the jump: frames after it arrive on time, lag 0.
    after = s.video(arrival + STEP / 1000, 4 * STEP + 100_001 * STEP)
    assert not after.discontinuity and after.dropped == 0
    assert after.lag_seconds == pytest.approx(0.0, abs=1e-9)


def test_backward_jump_is_a_discontinuity_and_restarts_the_lag_baseline() -> None:
    """An encoder restart (timestamps back to 0 an hour in): a discontinuity, not an hour
    of lag; a later real delay is measured against the new baseline."""
    s = StreamStats(framerate=FPS)
    arrival = _steady(s, 100.0, 3_600_000, 5)
    back = s.video(arrival, 0)
    assert back.discontinuity and back.dropped == 0 and back.lag_seconds == 0.0
    arrival = _steady(s, arrival + STEP / 1000, STEP, 3)
    late = s.video(arrival + 0.3, 4 * STEP)  # 300 ms late
    assert not late.discontinuity
    assert late.lag_seconds == pytest.approx(0.3)


def test_small_step_back_is_a_discontinuity() -> None:
    """Any step back (here one frame) is a discontinuity; a repeated timestamp is not."""
    s = StreamStats(framerate=FPS)
    arrival = _steady(s, 10.0, 1000, 3)
    assert not s.video(arrival, 1000 + 2 * STEP).discontinuity  # same timestamp again
    assert s.video(arrival, 1000 + STEP).discontinuity


def test_gap_up_to_ten_seconds_counts_drops() -> None:
    """A gap of exactly 10 s of media time counts its missing frames; 1 ms more is a
    discontinuity (the 2.5-interval rule below it is unchanged)."""
    assert MAX_MEDIA_GAP_MS == 10_000
    s = StreamStats(framerate=FPS)
    _steady(s, 0.0, 0, 2)
    at_limit = s.video(0.0, STEP + 10_000)
    assert not at_limit.discontinuity
    assert at_limit.dropped == 10_000 // STEP - 1
    beyond = s.video(0.0, STEP + 10_000 + 10_001)
    assert beyond.discontinuity and beyond.dropped == 0
    assert s.video(0.0, STEP + 20_001 + 2 * STEP).dropped == 0  # 2 intervals: no drop
    assert s.video(0.0, STEP + 20_001 + 5 * STEP).dropped == 2  # 3 intervals: 2 missing


def test_wrap_is_not_a_discontinuity() -> None:
    """Crossing 2**32 ms (49.7 days) is a wrap, not a backwards jump: no discontinuity,
    no drops, steady lag; a real gap across the wrap still counts its drops."""
    s = StreamStats(framerate=FPS)
    start = 2**32 - 3 * STEP
    arrival = _steady(s, 50.0, start, 6)  # crosses the wrap
    gap = s.video(arrival + 2 * STEP / 1000, (start + 8 * STEP) % 2**32)
    assert not gap.discontinuity and gap.dropped == 2
    assert gap.lag_seconds == pytest.approx(0.0, abs=1e-9)


def test_extended_timestamps_are_ordinary_time() -> None:
    """Timestamps at and above 0xFFFFFF (sent as extended timestamps) are plain media time."""
    s = StreamStats(framerate=FPS)
    arrival = _steady(s, 1.0, 0xFFFFFF - 2 * STEP, 5)
    stat = s.video(arrival, 0xFFFFFF + 3 * STEP)
    assert not stat.discontinuity and stat.dropped == 0
