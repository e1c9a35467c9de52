"""Lag, drops, timestamp unwrap, quality mapping and the bitrate window."""

from __future__ import annotations

import pytest

from nova_streaming.ingest.frames import (
    BitrateWindow,
    StreamStats,
    TimestampUnwrapper,
    quality_for_height,
    split_rendition,
)


def test_unwrap_extends_across_the_32_bit_wrap() -> None:
    """Timestamps crossing 2**32 keep increasing; a small step back stays a step back."""
    u = TimestampUnwrapper()
    raw = [0xFFFFFF00, 0xFFFFFFF0, 0x00000010, 0x00000100, 0x000000F0]
    assert [u.unwrap(r) for r in raw] == [
        0xFFFFFF00,
        0xFFFFFFF0,
        2**32 + 0x10,
        2**32 + 0x100,
        2**32 + 0xF0,
    ]


def test_lag_is_delay_beyond_best_path() -> None:
    """Lag = (arrival - media time) minus its session minimum, in seconds."""
    s = StreamStats(framerate=25)
    arrivals = [(100.00, 0), (100.05, 40), (100.08, 80), (100.30, 120), (100.16, 160)]
    lags = [s.video(a, ts).lag_seconds for a, ts in arrivals]
    # offsets: 100.0, 100.01, 100.0, 100.18, 99.999... -> the last sets a new minimum.
    assert lags[0] == 0.0
    assert lags[1] == pytest.approx(0.01)
    assert lags[2] == pytest.approx(0.0)
    assert lags[3] == pytest.approx(0.18)
    assert lags[4] == 0.0


def test_lag_across_wrap_has_no_jump() -> None:
    """Steady frames across the 32-bit wrap keep a zero lag."""
    s = StreamStats(framerate=25)
    start = 2**32 - 80
    lags = [s.video(10 + i * 0.04, (start + i * 40) % 2**32).lag_seconds for i in range(6)]
    assert lags == pytest.approx([0.0] * 6, abs=1e-6)


def test_drops_from_declared_framerate() -> None:
    """Gaps over 2.5 intervals count the missing frames; shorter gaps count nothing."""
    s = StreamStats(framerate=30)
    interval = 1000 / 30
    stamps = [0, 33, 67, 133, 267, 300]  # 133-67 = 2 intervals: no drop; 267-133 = 4: 3 drops
    drops = [s.video(0.0, ts).dropped for ts in stamps]
    assert drops == [0, 0, 0, 0, 3, 0]
    assert s.frame_interval_ms() == pytest.approx(interval)


def test_drops_from_estimated_interval_without_metadata() -> None:
    """Without a framerate, the interval is the median of recent deltas."""
    s = StreamStats()
    stamps = [0, 40, 80, 120, 360, 400]  # 120 -> 360 is 6 intervals: 5 missing
    assert [s.video(0.0, ts).dropped for ts in stamps] == [0, 0, 0, 0, 5, 0]
    first = StreamStats()
    assert [first.video(0.0, ts).dropped for ts in (0, 1000)] == [0, 0]  # unknown interval


def test_nonsense_framerate_is_ignored() -> None:
    """Zero, negative, NaN, huge or non-numeric framerates leave the estimate in charge."""
    s = StreamStats()
    for bad in (0, -5, float("nan"), 10_000, "30", True):
        s.set_framerate(bad)
    assert s.framerate is None


@pytest.mark.parametrize(
    ("height", "width", "quality"),
    [
        (240, None, "240p"),
        (360, 640, "360p"),
        (480, None, "480p"),
        (720, 1280, "720p"),
        (1080, 1920, "1080p"),
        (1088, None, "1080p"),
        (1440, None, "1440p"),
        (2160, 3840, "4k"),
        (1280, 720, "720p"),
        (100, None, "unknown"),
        (4320, None, "unknown"),
        (None, None, "unknown"),
        (0, None, "unknown"),
        (float("nan"), None, "unknown"),
        ("720", None, "unknown"),
        (float("inf"), None, "unknown"),
    ],
)
def test_quality_mapping(height: object, width: object, quality: str) -> None:
    """Heights map to the nearest standard quality; portrait uses the shorter side."""
    assert quality_for_height(height, width) == quality


def test_rendition_suffix() -> None:
    """A known _<quality> suffix is split off; other suffixes are part of the name."""
    assert split_rendition("abc_4k") == ("abc", "4k")
    assert split_rendition("abc_1080p") == ("abc", "1080p")
    assert split_rendition("abc_999p") == ("abc_999p", None)
    assert split_rendition("_720p") == ("_720p", None)


def test_bitrate_window_slides_and_reports_once_a_second() -> None:
    """The rate covers the last 5 s and is due at most once per second."""
    w = BitrateWindow()
    for i in range(100):  # 10 s of 12500 bytes per 0.1 s = 1000 kbit/s
        w.add(i * 0.1, 12_500)
    assert w.kbps(9.95) == pytest.approx(1000, rel=0.03)
    due = [t / 10 for t in range(0, 100) if w.due(t / 10) is not None]
    assert due == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert w.kbps(30.0) == 0.0  # window emptied


def test_bitrate_window_validates() -> None:
    """A non-positive window is a ValueError at construction."""
    with pytest.raises(ValueError, match="bitrate window"):
        BitrateWindow(window=0)
