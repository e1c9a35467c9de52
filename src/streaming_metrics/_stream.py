"""The per-stream record a :class:`~streaming_metrics.StreamingMetrics` keeps."""

from __future__ import annotations

from streaming_metrics._lag import LagWindow


class StreamRecord:
    """What one process knows about one stream; its fields back the per-stream series.

    Fields are written under the owning instance's lock. The scrape reads them without
    the lock, so every field is replaced whole (``info`` is one tuple, ``bitrates`` is
    copied on write) and a reader never sees a half-made value.
    """

    __slots__ = (
        "alive",
        "bitrates",
        "drops",
        "info",
        "lag",
        "linger_until",
        "owner_until",
        "peak",
        "stream_id",
        "tracked",
        "viewers",
    )

    def __init__(self, stream_id: str, *, tracked: bool) -> None:
        self.stream_id = stream_id
        # False when refused series by the cardinality cap: counted, never exported.
        self.tracked = tracked
        # False once removed from the instance: a hot path holding it must not write.
        self.alive = True
        # (region, stream_type) while started here and not ended; None otherwise.
        self.info: tuple[str, str] | None = None
        # One item per local viewer: the count is the list's length. append() and
        # pop() are each one atomic operation in CPython, so the connection hot path
        # counts without a lock, and pop() on an empty list fails instead of going
        # below 0.
        self.viewers: list[None] = []
        # None means no peak_viewers series (never started here, or its linger ran out).
        self.peak: float | None = None
        self.bitrates: dict[str, float] = {}
        # Owner-only like peak: the recent-lag window and the frame-drop count of a
        # stream started here and tracked; None means no series.
        self.lag: LagWindow | None = None
        self.drops: int | None = None
        # Whole record (and so every series) leaves at this clock time.
        self.linger_until: float | None = None
        # Owner-only series (peak, bitrates) of an ended stream leave at this time, even
        # when a later connection revived the connection series.
        self.owner_until: float | None = None

    @property
    def connections(self) -> int:
        """Local viewers now (the websocket_connections gauge)."""
        return len(self.viewers)
