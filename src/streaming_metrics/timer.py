"""StreamTimer: time a stream (or any block) into stream_duration_seconds, exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from streaming_metrics import definitions as d

if TYPE_CHECKING:
    from typing import Self

__all__ = ["StreamTimer"]


class _DurationRecorder(Protocol):
    """What a timer records into: a StreamingMetrics, named by shape so that this module
    stays below metrics.py (whose ``timer()`` builds StreamTimers) in the import graph."""

    @property
    def clock(self) -> Callable[[], float]: ...

    def _observe_duration(self, stream_type: object, seconds: float) -> None: ...


class StreamTimer:
    """Measures elapsed time on the metrics' monotonic clock and records it once.

    Timing starts at construction; entering the ``with`` (or ``async with``) block
    restarts it, so the block is what is timed. The duration goes into
    ``nova_streaming_stream_duration_seconds{stream_type}`` on the first of ``stop()``
    or leaving the block (also when the block raises); later stops return the same
    value and record nothing. ``metrics=None`` records into the helpers' default
    instance. A bad ``stream_type`` is rejected and counted when recording, never
    raised; types outside ``definitions.STREAM_TYPES`` count as ``other``.

    Do not time a stream with both a StreamTimer and ``record_stream_ended``: both
    observe the duration histogram.

    Example::

        >>> from prometheus_client import CollectorRegistry
        >>> from streaming_metrics import StreamingMetrics
        >>> m = StreamingMetrics(CollectorRegistry())
        >>> with StreamTimer("live", metrics=m) as timer:
        ...     pass
        >>> timer.stop() >= 0.0
        True
        >>> m.registry.get_sample_value(
        ...     "nova_streaming_stream_duration_seconds_count", {"stream_type": "live"})
        1.0
    """

    __slots__ = ("_elapsed", "_lock", "_metrics", "_start", "_stream_type")

    def __init__(
        self,
        stream_type: str = d.DEFAULT_STREAM_TYPE,
        *,
        metrics: _DurationRecorder | None = None,
    ) -> None:
        if metrics is None:
            # Imported at call time: the default instance's module sits above
            # metrics.py, which imports this one (for StreamingMetrics.timer).
            from streaming_metrics._default import default_metrics

            metrics = default_metrics()
        self._metrics = metrics
        self._stream_type = stream_type
        self._lock = threading.Lock()
        self._elapsed: float | None = None
        self._start = metrics.clock()

    @property
    def stream_type(self) -> str:
        """The stream_type label the duration is recorded under."""
        return self._stream_type

    @property
    def elapsed(self) -> float | None:
        """The recorded duration, or None while the timer runs."""
        return self._elapsed

    def stop(self) -> float:
        """Stop and record (the first time only); returns the elapsed seconds."""
        with self._lock:
            if self._elapsed is not None:
                return self._elapsed
            elapsed = max(0.0, self._metrics.clock() - self._start)
            self._elapsed = elapsed
        self._metrics._observe_duration(self._stream_type, elapsed)
        return elapsed

    def __enter__(self) -> Self:
        with self._lock:
            if self._elapsed is None:
                self._start = self._metrics.clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
