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

__all__ = ["LagWindow", "nearest_rank"]

# A second's frames kept at most: far above any real frame rate (several renditions
# at 60 fps), low enough that a peer flooding frames cannot make a roll expensive.
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

        >>> w = LagWindow()
        >>> for n in range(20):
        ...     w.add(0.01 * n, 100.5)
        >>> w.add(0.0, 101.0)      # a new second: 100 closes, p95 over it
        >>> round(w.value(101.2), 2)
        0.18
    """

    __slots__ = ("closed", "current", "p95", "second")

    def __init__(self) -> None:
        # The open second (clock seconds, truncated) and its lags, in arrival order.
        self.second = -1
        self.current: list[float] = []
        # Closed seconds, oldest first: (second, sorted lags); at most _WINDOW of them.
        self.closed: tuple[tuple[int, list[float]], ...] = ()
        # p95 over the closed seconds of the window as of the open second's start.
        self.p95: float | None = None

    def add(self, seconds: float, now: float) -> None:
        """One frame's lag at clock time ``now`` (the hot path: O(1) but once a second)."""
        second = int(now)
        if second != self.second:
            self._roll(second)
        current = self.current
        if len(current) < MAX_FRAMES_PER_SECOND:
            current.append(seconds)

    def value(self, now: float) -> float | None:
        """The p95 over the last 10 whole seconds at ``now``; None without frames there."""
        second = int(now)
        if second == self.second:
            return self.p95
        # No frame yet in this second: the open second is closed in effect. Read only.
        runs = [lags for sec, lags in self.closed if sec >= second - _WINDOW]
        if self.second >= second - _WINDOW and self.current:
            runs.append(sorted(self.current))
        return _p95_of(runs)

    def _roll(self, second: int) -> None:
        kept = [(sec, lags) for sec, lags in self.closed if sec >= second - _WINDOW]
        if self.current and self.second >= second - _WINDOW:
            kept.append((self.second, sorted(self.current)))
        self.closed = tuple(kept)
        self.current = []
        self.second = second
        self.p95 = _p95_of([lags for _, lags in kept])


def _p95_of(runs: list[list[float]]) -> float | None:
    if not runs:
        return None
    merged = [lag for run in runs for lag in run]
    # Timsort finds the sorted runs: close to linear for ten of them.
    merged.sort()
    return nearest_rank(merged)
