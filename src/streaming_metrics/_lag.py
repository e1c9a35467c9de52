"""The per-stream window behind ``nova_streaming_stream_ingest_lag_seconds``.

Why this shape: the gauge is the p95 of a stream's frame lags over the last 10 s, and
it is fed from the per-frame hot path. A frame costs one integer compare and one list
append; once a second (the first frame of a new second) the finished second is sorted
(a few dozen values) and the p95 of the last ten whole seconds is computed from runs
that are already sorted, so the scrape reads one float per stream and a render never
sorts anything for streams that are still sending. Only a stream that stopped sending
(its second is old) has its value recomputed at scrape time, from what is still in
the window.

Every field is replaced whole, never mutated in place (except the open second's
list, which only the frame path appends to), so a scrape on another thread reads it
without a lock.
"""

from __future__ import annotations

import math
from typing import Final

from streaming_metrics import definitions as d

__all__ = ["CLOCK_EVERY", "NO_FRAME_YET", "LagWindow", "nearest_rank"]

CLOCK_EVERY: Final = 8
"""The hot path reads the clock on every 8th frame of a stream (see ``ticks``): a frame
is placed in the second of the last read, at most seven frames late (a quarter of a
second at 30 fps: noise against a 10 s window, and a clock read costs as much as the
rest of the per-stream work)."""

NO_FRAME_YET: Final = -(2**63)
"""The open second of a window that never saw a frame (no clock reads that far back):
once one arrives the open second is a clock second for good, and the open second's
list is never empty again."""

# A second's frames kept at most: far above any real frame rate (several renditions
# at 60 fps), low enough that a peer flooding frames cannot make the window large (the
# open second's list is cut to it when the second closes).
MAX_FRAMES_PER_SECOND: Final = 1_000
_WINDOW: Final = d.LAG_WINDOW_SECONDS


def nearest_rank(values: list[float], quantile: float = d.LAG_QUANTILE) -> float:
    """The nearest-rank ``quantile`` of sorted, non-empty ``values``.

    Example::

        >>> nearest_rank([float(n) for n in range(1, 101)])
        95.0
    """
    return values[max(0, math.ceil(quantile * len(values)) - 1)]


class LagWindow:
    """Recent frame lags of one stream, by whole second of the instance's clock.

    Example::

        >>> w = LagWindow("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b")
        >>> for n in range(20):
        ...     w.add(0.01 * n, 100.5)
        >>> w.add(0.0, 101.0)      # a new second: 100 closes (20 frames), p95 over it
        20
        >>> round(w.value(101.2), 2)
        0.18
    """

    __slots__ = (
        "append",
        "closed",
        "current",
        "cut",
        "p95",
        "roll_at",
        "second",
        "stream_id",
        "ticks",
    )

    def __init__(self, stream_id: str = "", cut: float = math.inf) -> None:
        self.stream_id = stream_id
        # For the owner's exemplar choice: a frame slower than this leaves one (the
        # owner sets it to its threshold, or below 0 to pick the next frame).
        self.cut = cut
        # The open second (clock seconds, truncated) and its lags, in arrival order.
        self.second = NO_FRAME_YET
        self.current: list[float] = []
        # The hot path's view: before ``roll_at`` (the next second) a frame is just
        # ``append(lag)``; from it on, :meth:`add` closes the second first.
        self.append = self.current.append
        self.roll_at = -math.inf
        # Frames left before the owner's hot path reads the clock again (1: the next).
        self.ticks = 1
        # Closed seconds, oldest first: (second, sorted lags); at most _WINDOW of them.
        self.closed: tuple[tuple[int, list[float]], ...] = ()
        # p95 over the closed seconds of the window as of the open second's start.
        self.p95: float | None = None

    def add(self, seconds: float, now: float) -> int:
        """One frame's lag at clock time ``now`` (O(1) but once a second); returns the
        number of frames of the second this closed (0 if none closed).

        Callers on a hot path may instead call ``append(seconds)`` while
        ``now < roll_at``: the same thing without a method call.
        """
        second = int(now)
        closed = 0
        if second != self.second:
            closed = len(self.current)
            self._roll(second)
        self.append(seconds)
        return closed

    def value(self, now: float) -> float | None:
        """The p95 over the last 10 whole seconds at ``now``; None without frames there."""
        second = int(now)
        if second == self.second:
            return self.p95
        # No frame yet in this second: the open second is closed in effect. Read only.
        runs = [lags for sec, lags in self.closed if sec >= second - _WINDOW]
        if self.second >= second - _WINDOW and self.current:
            runs.append(sorted(self.current[:MAX_FRAMES_PER_SECOND]))
        return _p95_of(runs)

    def _roll(self, second: int) -> None:
        kept = [(sec, lags) for sec, lags in self.closed if sec >= second - _WINDOW]
        if self.current and self.second >= second - _WINDOW:
            kept.append((self.second, sorted(self.current[:MAX_FRAMES_PER_SECOND])))
        self.closed = tuple(kept)
        self.current = []
        self.append = self.current.append
        self.second = second
        self.roll_at = float(second + 1)
        self.p95 = _p95_of([lags for _, lags in kept])


def _p95_of(runs: list[list[float]]) -> float | None:
    if not runs:
        return None
    merged = [lag for run in runs for lag in run]
    # Timsort finds the sorted runs: close to linear for ten of them.
    merged.sort()
    return nearest_rank(merged)
