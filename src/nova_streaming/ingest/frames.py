"""Per-stream media statistics: timestamp unwrap, lag, frame drops, quality, bitrate.

Pure arithmetic on (arrival time, media timestamp, size) triples; the receiver feeds
it and forwards the results to its sink.

- Lag of a video frame: ``(arrival - media_time) - min over the session of
  (arrival - media_time)``, in seconds: the delay beyond the best path seen, which
  needs no clock sync between broadcaster and ingest. The first frame's lag is 0.
- Media time is the 32-bit RTMP timestamp unwrapped onto a monotonically extended
  timeline (a step of more than 2**31 ms backwards is read as a wrap forwards).
- Drops: a video timestamp gap over 2.5 frame intervals and up to 10 s of media time
  counts ``round(gap / interval) - 1`` missing frames; the interval is
  ``1000 / framerate`` from onMetaData, else the median of the last 16 normal deltas.
- Discontinuities: a video timestamp that goes backwards, or forward by more than
  10 s of media time (:data:`MAX_MEDIA_GAP_MS`), is an encoder restart, a splice or a
  hostile peer, not lag and not dropped frames: the frame is flagged, counts no drops,
  and the lag baseline restarts from it. A 32-bit wrap is neither (see above).
- Bitrate: audio+video payload bytes over a 5 s sliding window, due at most once a
  second.

Example::

    >>> stats = StreamStats(framerate=30.0)
    >>> stats.video(arrival=100.0, timestamp=0).lag_seconds
    0.0
    >>> stats.video(arrival=100.2, timestamp=100).dropped
    2
"""

from __future__ import annotations

import re
from collections import deque
from statistics import median
from typing import NamedTuple

_WRAP = 1 << 32
_new_tuple = tuple.__new__
_HALF = 1 << 31

QUALITY_UNKNOWN = "unknown"
#: Standard line counts and their labels; a height maps to the nearest one.
_QUALITY_LINES: tuple[tuple[int, str], ...] = (
    (240, "240p"),
    (360, "360p"),
    (480, "480p"),
    (720, "720p"),
    (1080, "1080p"),
    (1440, "1440p"),
    (2160, "4k"),
)
# Midpoints between neighbours; below 120 or above 3240 lines is "unknown".
_QUALITY_BOUNDS: tuple[tuple[float, float, str], ...] = tuple(
    (
        (_QUALITY_LINES[i - 1][0] + lines) / 2 if i else lines / 2,
        (lines + _QUALITY_LINES[i + 1][0]) / 2 if i + 1 < len(_QUALITY_LINES) else lines * 1.5,
        label,
    )
    for i, (lines, label) in enumerate(_QUALITY_LINES)
)
RENDITION_QUALITIES: tuple[str, ...] = tuple(label for _, label in _QUALITY_LINES)
_RENDITION = re.compile(r"^(?P<base>.+)_(?P<quality>" + "|".join(RENDITION_QUALITIES) + r")$")

DROP_GAP_FACTOR = 2.5
MAX_MEDIA_GAP_MS = 10_000
"""The longest forward video timestamp step (ms) read as a gap (counting drops);
beyond it, or any step back, is a discontinuity."""
BITRATE_WINDOW_SECONDS = 5.0
BITRATE_MIN_INTERVAL_SECONDS = 1.0
_DELTA_HISTORY = 16
_MAX_FRAMERATE = 240.0


def quality_for_height(height: object, width: object = None) -> str:
    """Map a picture size to a quality label; portrait sizes use the shorter side.

    Heights between two standard line counts go to the nearer one (1088 -> 1080p);
    anything not a positive number, or outside 120..3240 lines, is ``unknown``.

    Example::

        >>> quality_for_height(720.0), quality_for_height(1080, 1920)
        ('720p', '1080p')
        >>> quality_for_height(1280, 720), quality_for_height("tall")
        ('720p', 'unknown')
    """
    lines = _positive(height)
    if lines is None:
        return QUALITY_UNKNOWN
    cols = _positive(width)
    if cols is not None and cols < lines:
        lines = cols
    for low, high, label in _QUALITY_BOUNDS:
        if low <= lines < high:
            return label
    return QUALITY_UNKNOWN


def _positive(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not value > 0 or value == float("inf"):  # rejects NaN too
        return None
    return float(value)


def split_rendition(name: str) -> tuple[str, str | None]:
    """Split an ``_720p``-style rendition suffix off a stream name.

    Example::

        >>> split_rendition("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b_720p")
        ('1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b', '720p')
        >>> split_rendition("plain")
        ('plain', None)
    """
    match = _RENDITION.match(name)
    if match is None:
        return name, None
    return match.group("base"), match.group("quality")


class TimestampUnwrapper:
    """Extends 32-bit RTMP timestamps (ms) onto a 64-bit timeline.

    Example::

        >>> u = TimestampUnwrapper()
        >>> u.unwrap(0xFFFFFFF0), u.unwrap(0x10)
        (4294967280, 4294967312)
    """

    __slots__ = ("_last_raw", "_value")

    def __init__(self) -> None:
        self._last_raw: int | None = None
        self._value = 0

    def unwrap(self, raw: int) -> int:
        """The extended timestamp of ``raw`` (small steps back stay steps back)."""
        raw &= 0xFFFFFFFF
        if self._last_raw is None:
            self._value = raw
        else:
            step = (raw - self._last_raw) & 0xFFFFFFFF
            if step >= _HALF:
                step -= _WRAP
            self._value += step
        self._last_raw = raw
        return self._value


class BitrateWindow:
    """Bytes over a sliding window, reported at most once per ``min_interval``.

    Before a full window has passed, the rate is over the time since the first byte
    (and nothing is due until ``min_interval`` has passed since then).

    Example::

        >>> w = BitrateWindow()
        >>> w.add(0.0, 1000); w.add(0.5, 1000)
        >>> w.due(0.9) is None, w.due(1.0)
        (True, 16.0)
        >>> w.due(1.5) is None
        True
    """

    __slots__ = ("_bytes", "_first", "_last_report", "_samples", "min_interval", "window")

    def __init__(
        self,
        window: float = BITRATE_WINDOW_SECONDS,
        min_interval: float = BITRATE_MIN_INTERVAL_SECONDS,
    ) -> None:
        if window <= 0 or min_interval <= 0:
            raise ValueError("bitrate window: window and min_interval must be positive")
        self.window = window
        self.min_interval = min_interval
        self._samples: deque[tuple[float, int]] = deque()
        self._bytes = 0
        self._first: float | None = None
        self._last_report: float | None = None

    def add(self, now: float, size: int) -> None:
        """Count ``size`` bytes arriving at ``now`` (seconds, monotonic)."""
        if self._first is None:
            self._first = now
        self._samples.append((now, size))
        self._bytes += size

    def kbps(self, now: float) -> float:
        """The current rate in kbit/s (1 kbit = 1000 bit)."""
        horizon = now - self.window
        samples = self._samples
        while samples and samples[0][0] <= horizon:
            self._bytes -= samples.popleft()[1]
        if self._first is None:
            return 0.0
        span = min(self.window, now - self._first)
        if span <= 0:
            return 0.0
        return self._bytes * 8 / 1000 / span

    def due(self, now: float) -> float | None:
        """The rate if a report is due at ``now`` (then the next is a second away)."""
        if self._first is None:
            return None
        since = self._last_report if self._last_report is not None else self._first
        if now - since < self.min_interval:
            return None
        self._last_report = now
        return self.kbps(now)


class FrameStat(NamedTuple):
    """What one video frame yields: its timeline position, lag, preceding drops, and
    whether its timestamp broke the timeline (a discontinuity). A named tuple: one is
    built per video frame, so it must be cheap (a frozen dataclass costs twice that).

    Example::

        >>> FrameStat(timestamp_ms=40, lag_seconds=0.0, dropped=0).dropped
        0
    """

    timestamp_ms: int
    lag_seconds: float
    dropped: int
    discontinuity: bool = False


class StreamStats:
    """Lag, drop and bitrate state of one publishing session.

    Example::

        >>> s = StreamStats()
        >>> [s.video(10.0 + i / 25, i * 40).lag_seconds for i in range(2)]
        [0.0, 0.0]
    """

    __slots__ = ("_deltas", "_last_video", "_min_offset", "_unwrap", "bitrate", "framerate")

    def __init__(self, framerate: float | None = None) -> None:
        self.framerate: float | None = None
        self.set_framerate(framerate)
        self._unwrap = TimestampUnwrapper()
        self._min_offset: float | None = None
        self._last_video: int | None = None
        self._deltas: deque[int] = deque(maxlen=_DELTA_HISTORY)
        self.bitrate = BitrateWindow()

    def set_framerate(self, framerate: object) -> None:
        """Use a declared framerate (onMetaData); nonsense values are ignored."""
        rate = _positive(framerate)
        if rate is not None and rate <= _MAX_FRAMERATE:
            self.framerate = rate

    def frame_interval_ms(self) -> float | None:
        """The expected spacing of video frames, if known."""
        if self.framerate is not None:
            return 1000.0 / self.framerate
        if len(self._deltas) >= 2:
            return float(median(self._deltas))
        return None

    def video(self, arrival: float, timestamp: int) -> FrameStat:
        """Account one video frame (``timestamp``: raw 32-bit RTMP ms)."""
        ts = self._unwrap.unwrap(timestamp)
        dropped = 0
        discontinuity = False
        last = self._last_video
        self._last_video = ts
        if last is not None:
            delta = ts - last
            if delta < 0 or delta > MAX_MEDIA_GAP_MS:
                # Not lag, not drops: measure the delay from this frame on.
                discontinuity = True
                self._min_offset = None
            elif delta > 0:
                framerate = self.framerate  # frame_interval_ms() inlined: per frame
                interval = 1000.0 / framerate if framerate else self.frame_interval_ms()
                if interval is not None and delta > DROP_GAP_FACTOR * interval:
                    dropped = max(int(delta / interval + 0.5) - 1, 0)
                else:
                    self._deltas.append(delta)
        offset = arrival - ts / 1000.0
        best = self._min_offset
        if best is None or offset < best:
            self._min_offset = best = offset
        # tuple.__new__: the named tuple minus its Python-level __new__ (per frame).
        return _new_tuple(FrameStat, (ts, offset - best, dropped, discontinuity))
