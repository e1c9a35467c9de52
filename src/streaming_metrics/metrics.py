"""StreamingMetrics: the Nova metrics contract over one prometheus_client registry.

Design notes (the why; the what is in the class docstring):

* Per-stream series (connections, peak, bitrate, stream_info) and the gauges derived
  from stream state (active_streams, the tracked-streams self-metrics) are produced by
  one custom collector from :class:`~streaming_metrics._stream.StreamRecord` objects.
  Removing a stream is then one dict deletion, the connection hot path is a dict lookup
  plus one list append or pop (no lock: see ``StreamRecord.viewers``), and there are no
  ``Gauge.labels()`` children to leak or to keep in sync with the records. The
  collector and its families live in :mod:`streaming_metrics._collector`.
* The frame-latency histogram is our own (:mod:`streaming_metrics._histogram`): one
  counts list per thread, found by quality with one dict lookup, no lock; it exports
  what a prometheus_client ``Histogram`` would. The other counters and histograms are
  ordinary prometheus_client metrics whose label children are created once and cached
  in dicts, so hot paths never call ``.labels()``.
* Linger needs no thread: deadlines are ``now + linger`` with a monotonic clock, so they
  arrive in order and sit in a deque; every lifecycle call and every scrape pops the
  ones due. The collector expires before it reads, so a scrape never shows a series
  whose linger has run out. prometheus_client collects collectors in registration
  order (``CollectorRegistry.collect`` walks an insertion-ordered dict); the stream
  collector is registered first anyway.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from bisect import bisect_left as _bisect
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from typing import Final
from uuid import UUID

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from streaming_metrics import definitions as d
from streaming_metrics._collector import (
    InfoMemo,
    _bitrates,
    _connections,
    _drops,
    _infos,
    _lags,
    _peaks,
    _StreamCollector,
    stream_ids,
)
from streaming_metrics._histogram import HistogramSeries, Shard, ShardedHistogram
from streaming_metrics._lag import CLOCK_EVERY, LagWindow
from streaming_metrics._stream import StreamRecord
from streaming_metrics._validation import (
    check_label_values,
    clean_amount,
    clean_count,
    clean_stream_id,
    is_label_value,
)
from streaming_metrics.timer import StreamTimer

__all__ = ["StreamingMetrics"]

logger = logging.getLogger("streaming_metrics")

# Exemplar timestamps are wall-clock seconds, as prometheus_client's.
_wall: Final = time.time
# Longest caller value quoted in a rejection log line: enough to recognise it, not
# enough to flood the log or carry a payload.
_LOG_VALUE_CHARS: Final = 80


_TRACKED = attrgetter("tracked")


class StreamingMetrics:
    """The eight metrics of the Nova contract, stream_info and the self-metrics.

    Each instance registers its own collectors in ``registry`` (default: the
    prometheus_client default ``REGISTRY``); two instances cannot share a registry.

    Semantics in short (``docs/library.md`` has the long form):

    * ``record_stream_started`` creates the stream's series at 0; ``record_stream_ended``
      observes the histograms with the region and type given at start, removes
      ``stream_info`` at once and the other per-stream series after
      ``series_linger_seconds``. Ending an unknown or ended stream changes nothing.
    * At most ``max_tracked_streams`` streams hold per-stream series; later streams are
      counted in ``nova_streaming_metrics_dropped_series_total`` but still move
      ``active_streams`` and the histograms.
    * ``error_type`` and ``quality`` values outside the configured sets count as
      ``other``. A call with any bad argument changes nothing but
      ``nova_streaming_metrics_rejected_inputs_total{reason}`` (logged once per reason);
      it never raises.

    Example::

        >>> from prometheus_client import CollectorRegistry
        >>> m = StreamingMetrics(CollectorRegistry(), regions=["eu-west-1"])
        >>> sid = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
        >>> m.record_stream_started(sid, "eu-west-1")
        >>> m.record_websocket_connection(sid)
        >>> m.registry.get_sample_value(
        ...     "nova_streaming_websocket_connections", {"stream_id": sid})
        1.0
        >>> m.record_stream_ended(sid, "eu-west-1", 3600.0, 1)
        >>> m.registry.get_sample_value(
        ...     "nova_streaming_active_streams", {"region": "eu-west-1"})
        0.0
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        max_tracked_streams: int = d.DEFAULT_MAX_TRACKED_STREAMS,
        series_linger_seconds: float = d.DEFAULT_SERIES_LINGER_SECONDS,
        error_types: Iterable[str] = d.DEFAULT_ERROR_TYPES,
        qualities: Iterable[str] = d.DEFAULT_QUALITIES,
        regions: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
        exemplar_threshold_seconds: float = d.DEFAULT_EXEMPLAR_THRESHOLD_SECONDS,
        exemplar_sample_every: int = d.DEFAULT_EXEMPLAR_SAMPLE_EVERY,
    ) -> None:
        if registry is None:
            registry = REGISTRY
        if not isinstance(registry, CollectorRegistry):
            raise ValueError(
                f"StreamingMetrics: registry must be a CollectorRegistry or None, "
                f"got {type(registry).__name__}"
            )
        if (
            isinstance(max_tracked_streams, bool)
            or not isinstance(max_tracked_streams, int)
            or max_tracked_streams < 0
        ):
            raise ValueError(
                "StreamingMetrics: max_tracked_streams must be an int >= 0, "
                f"got {max_tracked_streams!r}"
            )
        linger = clean_amount(series_linger_seconds)
        if isinstance(linger, str):
            raise ValueError(
                "StreamingMetrics: series_linger_seconds must be a finite number >= 0, "
                f"got {series_linger_seconds!r}"
            )
        if not callable(clock):
            raise ValueError(f"StreamingMetrics: clock must be callable, got {clock!r}")
        threshold = exemplar_threshold_seconds
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or math.isnan(threshold)
            or threshold < 0
        ):
            raise ValueError(
                "StreamingMetrics: exemplar_threshold_seconds must be a number >= 0 "
                f"(math.inf: never by lag), got {exemplar_threshold_seconds!r}"
            )
        if (
            isinstance(exemplar_sample_every, bool)
            or not isinstance(exemplar_sample_every, int)
            or exemplar_sample_every < 0
        ):
            raise ValueError(
                "StreamingMetrics: exemplar_sample_every must be an int >= 0 (0: never "
                f"by sampling), got {exemplar_sample_every!r}"
            )
        error_set = check_label_values("error_types", error_types)
        quality_set = check_label_values("qualities", qualities)
        region_set = check_label_values("regions", regions)

        self._registry = registry
        self._max_tracked = max_tracked_streams
        self._linger = linger
        self._clock = clock
        self._error_types = frozenset(error_set)
        self._qualities = frozenset(quality_set)
        self._exemplar_threshold = float(threshold)
        self._exemplar_every = exemplar_sample_every
        # Frames with a stream id left until the next sampled exemplar. Read and written
        # without the lock: a lost update under a race only moves one sample.
        # 0 (never by sampling): a countdown that does not run out.
        self._exemplar_reset = exemplar_sample_every or 2**62
        self._exemplar_countdown = self._exemplar_reset

        # One lock for every state change; prometheus_client's own locks nest inside it
        # and never call back, so there is no lock-order cycle.
        self._lock = threading.Lock()
        # Keyed by the canonical str id; the fast paths look up what the caller passed,
        # and a UUID (or anything else) misses and takes the validating slow path.
        self._streams: dict[str | UUID, StreamRecord] = {}
        # The lag windows of started, tracked streams by id (also rec.lag): the frame
        # path finds a stream's window with one lookup.
        self._windows: dict[str | UUID, LagWindow] = {}  # str keys; lookups as _streams
        self._lingering: deque[tuple[float, str]] = deque()
        self._tracked = 0
        # Bumped (under the lock) whenever the set of tracked records changes: a scrape
        # reuses the last scrape's record list and stream id column while it has not.
        self._roster_changes = 0
        self._roster: tuple[int, list[StreamRecord], list[str]] | None = None
        self._info_memo = InfoMemo()
        self._active_by_region: dict[str, int] = dict.fromkeys(region_set, 0)
        self._logged_reasons: set[str] = set()

        self._errors = _counter(d.BROADCAST_ERRORS)
        self._viewers = _histogram(d.VIEWERS_TOTAL)
        self._duration = _histogram(d.STREAM_DURATION_SECONDS)
        self._latency = ShardedHistogram(d.RTMP_INGESTION_LATENCY_SECONDS)
        self._dropped = _counter(d.DROPPED_SERIES)
        self._rejected = _counter(d.REJECTED_INPUTS)
        self._collectors: tuple[Collector, ...] = (
            _StreamCollector(self._collect),
            self._errors,
            self._viewers,
            self._duration,
            self._latency,
            self._dropped,
            self._rejected,
        )

        # Label children created once: the known values are exported at 0 from the
        # start, and the hot paths find their child with one dict lookup.
        self._error_children = {
            value: self._errors.labels(value) for value in (*error_set, d.OTHER)
        }
        self._latency_children = {
            value: self._latency.series(value) for value in (*quality_set, d.OTHER)
        }
        # The frame hot path: quality -> its series' per-thread counts, and the bounds
        # to bisect (see streaming_metrics._histogram).
        self._latency_shards: dict[str, Shard] = {
            value: series.shard for value, series in self._latency_children.items()
        }
        self._latency_keys = self._latency.keys
        self._latency_top = len(self._latency_keys)
        self._rejected_children = {
            reason: self._rejected.labels(reason) for reason in d.REJECT_REASONS
        }
        # The end-of-stream histograms too: without a 0 series, rate() and the
        # duration:avg rule miss the first end of each stream type and region.
        self._duration_children: dict[str, Histogram] = {
            kind: self._duration.labels(kind) for kind in d.STREAM_TYPES
        }
        self._viewers_children: dict[str, Histogram] = {
            region: self._viewers.labels(region) for region in region_set
        }

        self._register()

    # --- configuration and introspection ------------------------------------------------

    @property
    def registry(self) -> CollectorRegistry:
        """The registry this instance's collectors are registered in."""
        return self._registry

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock (seconds) used for linger and by :meth:`timer`."""
        return self._clock

    @property
    def max_tracked_streams(self) -> int:
        """The cardinality cap."""
        return self._max_tracked

    @property
    def series_linger_seconds(self) -> float:
        """How long an ended or forgotten stream's series stay after it ends."""
        return self._linger

    @property
    def error_types(self) -> frozenset[str]:
        """The configured error types (``other`` is added to them in the exposition)."""
        return self._error_types

    @property
    def qualities(self) -> frozenset[str]:
        """The configured qualities (``other`` is added to them in the exposition)."""
        return self._qualities

    @property
    def exemplar_threshold_seconds(self) -> float:
        """Frames slower than this carry their stream id as an exemplar."""
        return self._exemplar_threshold

    @property
    def exemplar_sample_every(self) -> int:
        """Other frames with a stream id carry one once in this many (0: never)."""
        return self._exemplar_every

    @property
    def tracked_streams(self) -> int:
        """Streams holding per-stream series now (active, lingering, connection-only)."""
        return self._tracked

    def is_tracked(self, stream_id: str | UUID) -> bool:
        """True when ``stream_id`` holds per-stream series in this instance."""
        sid = clean_stream_id(stream_id)
        rec = self._streams.get(sid) if sid is not None else None
        return rec is not None and rec.tracked

    def is_active(self, stream_id: str | UUID) -> bool:
        """True when ``stream_id`` was started here and has not ended (tracked or not)."""
        sid = clean_stream_id(stream_id)
        rec = self._streams.get(sid) if sid is not None else None
        return rec is not None and rec.info is not None

    def stream_signals(self) -> dict[str, tuple[float | None, int, tuple[str, ...]]]:
        """Per stream started here (and tracked): ``(lag p95 over 10 s or None, frame
        drops, qualities with a bitrate)``, what the worst-streams series export."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            records = [rec for rec in self._streams.values() if rec.info is not None]
        signals: dict[str, tuple[float | None, int, tuple[str, ...]]] = {}
        for rec in records:
            window, drops = rec.lag, rec.drops
            if window is not None and drops is not None:
                signals[rec.stream_id] = (window.value(now), drops, tuple(sorted(rec.bitrates)))
        return signals

    def declare_region(self, region: str) -> None:
        """Export ``active_streams{region}`` and ``viewers_total{region}`` at 0.

        A region is configuration, so a bad value raises ``ValueError``.
        """
        if not is_label_value(region):
            raise ValueError(
                f"StreamingMetrics: region {region!r} does not match "
                f"{d.LABEL_VALUE_PATTERN.pattern}"
            )
        with self._lock:
            self._active_by_region.setdefault(region, 0)
            if region not in self._viewers_children:
                self._viewers_children[region] = self._viewers.labels(region)

    def expire_lingering(self) -> int:
        """Remove the series whose linger has run out now; returns the streams removed.

        Lifecycle calls and scrapes already do this; call it to settle state in tests or
        before reading :attr:`tracked_streams`.
        """
        with self._lock:
            return self._expire(self._clock())

    def timer(self, stream_type: str = d.DEFAULT_STREAM_TYPE) -> StreamTimer:
        """A :class:`~streaming_metrics.StreamTimer` recording into this instance."""
        return StreamTimer(stream_type, metrics=self)

    def unregister(self) -> None:
        """Remove this instance's collectors from its registry (idempotent)."""
        for collector in self._collectors:
            with contextlib.suppress(KeyError):
                self._registry.unregister(collector)

    # --- stream lifecycle ----------------------------------------------------------------

    def record_stream_started(
        self, stream_id: str | UUID, region: str, stream_type: str = d.DEFAULT_STREAM_TYPE
    ) -> None:
        """A stream started on this process (it is the owner).

        ``active_streams{region}`` +1, ``stream_info`` = 1, connections and peak at 0.
        Starting a stream that is already active changes nothing; starting a lingering
        one revives it with a fresh peak and no old bitrates (its live connection count
        is kept). ``stream_type`` outside ``definitions.STREAM_TYPES`` counts as ``other``.
        """
        sid = clean_stream_id(stream_id)
        if sid is None:
            self._reject(d.REJECT_INVALID_STREAM_ID, "record_stream_started", stream_id)
            return
        if not is_label_value(region):
            self._reject(d.REJECT_INVALID_LABEL, "record_stream_started", region)
            return
        if not is_label_value(stream_type):
            self._reject(d.REJECT_INVALID_LABEL, "record_stream_started", stream_type)
            return
        kind = stream_type if stream_type in d.STREAM_TYPES else d.OTHER
        with self._lock:
            self._expire(self._clock())
            rec = self._streams.get(sid)
            if rec is None:
                rec = self._new_record(sid)
            elif rec.info is not None:
                return
            elif not rec.tracked and self._tracked < self._max_tracked:
                rec.tracked = True
                self._tracked += 1
                self._roster_changes += 1
            elif not rec.tracked:
                self._dropped.inc()
            rec.info = (region, kind)
            rec.peak = 0.0
            rec.bitrates = {}
            if rec.tracked:
                rec.lag = self._windows[sid] = LagWindow(sid, self._exemplar_threshold)
                if rec.drops is None:
                    rec.drops = 0
            rec.linger_until = None
            rec.owner_until = None
            self._active_by_region[region] = self._active_by_region.get(region, 0) + 1

    def record_stream_ended(
        self,
        stream_id: str | UUID,
        region: str,
        duration_seconds: float,
        final_viewer_count: int,
        stream_type: str | None = None,
    ) -> None:
        """A stream started here ended.

        ``active_streams`` -1 in the region given at start; ``duration_seconds`` goes
        into ``stream_duration_seconds`` and ``final_viewer_count`` into
        ``viewers_total``, labelled with the region and type given at start (the
        ``region`` and ``stream_type`` passed here are only validated). ``stream_info``
        goes at once, the other per-stream series after the linger. An unknown,
        never-started or already-ended stream changes nothing (no observation either).
        """
        sid = clean_stream_id(stream_id)
        if sid is None:
            self._reject(d.REJECT_INVALID_STREAM_ID, "record_stream_ended", stream_id)
            return
        if not is_label_value(region):
            self._reject(d.REJECT_INVALID_LABEL, "record_stream_ended", region)
            return
        if stream_type is not None and not is_label_value(stream_type):
            self._reject(d.REJECT_INVALID_LABEL, "record_stream_ended", stream_type)
            return
        duration = clean_amount(duration_seconds)
        if isinstance(duration, str):
            self._reject(duration, "record_stream_ended", duration_seconds)
            return
        viewers = clean_amount(final_viewer_count)
        if isinstance(viewers, str):
            self._reject(viewers, "record_stream_ended", final_viewer_count)
            return
        with self._lock:
            now = self._clock()
            self._expire(now)
            rec = self._streams.get(sid)
            if rec is None or rec.info is None:
                return
            start_region, kind = rec.info
            self._stop_owning(rec, start_region)
            self._linger_record(rec, now)
            duration_child = self._duration_children.get(kind)
            if duration_child is None:
                duration_child = self._duration_children[kind] = self._duration.labels(kind)
            viewers_child = self._viewers_children.get(start_region)
            if viewers_child is None:
                viewers_child = self._viewers_children[start_region] = self._viewers.labels(
                    start_region
                )
        duration_child.observe(duration)
        viewers_child.observe(viewers)

    def forget_stream(self, stream_id: str | UUID) -> None:
        """This process stops exporting ``stream_id``: its series go after the linger.

        For a replica that exports a stream's connections without owning it, called when
        it learns the stream ended. On a stream started here it is a hand-over:
        ``active_streams`` -1 and ``stream_info`` removed at once, and no histogram is
        observed (the new owner reports the end). Unknown streams: nothing happens.
        """
        sid = clean_stream_id(stream_id)
        if sid is None:
            self._reject(d.REJECT_INVALID_STREAM_ID, "forget_stream", stream_id)
            return
        with self._lock:
            now = self._clock()
            self._expire(now)
            rec = self._streams.get(sid)
            if rec is None:
                return
            if rec.info is not None:
                self._stop_owning(rec, rec.info[0])
            if rec.linger_until is not None:
                return
            if rec.viewers:
                # Viewers are still connected here (a hand-over to another owner, or the
                # hub has not closed them yet): removing their connection series would
                # lose the count they still hold. Owner-only series (peak, bitrates) go
                # after the linger; the connection series lingers once the last viewer
                # leaves (see record_websocket_disconnection).
                if rec.owner_until is None and (
                    rec.peak is not None or rec.bitrates or rec.drops is not None
                ):
                    rec.owner_until = now + self._linger
                    self._lingering.append((rec.owner_until, sid))
            else:
                self._linger_record(rec, now)

    # --- viewers -------------------------------------------------------------------------

    def record_websocket_connection(self, stream_id: str | UUID) -> None:
        """One more local viewer of ``stream_id``.

        On a stream unknown here it creates the stream's connection series (a replica
        that does not own the stream); that counts toward the cardinality cap. On a
        lingering stream it revives the connection series.
        """
        # One dict lookup and one list append, no lock (see StreamRecord.viewers). The
        # check comes after the append: a record that lingers or was removed by then
        # (removal always follows a linger) gets the connection right in
        # _connected_late, so a connection is never lost to a concurrent end or expiry.
        try:
            rec = self._streams[stream_id]
        except (KeyError, TypeError):
            self._connect_slow(stream_id)
            return
        rec.viewers.append(None)
        if rec.linger_until is not None:
            self._connected_late(rec)

    def record_websocket_disconnection(self, stream_id: str | UUID) -> None:
        """One local viewer of ``stream_id`` fewer; the gauge never goes below 0.

        An unknown stream changes nothing. A stream that was never started here and
        reaches 0 connections starts its linger, so a missed :meth:`forget_stream`
        cannot leak its series.
        """
        # One dict lookup and one list pop, no lock; only a stream not started here
        # that reaches 0 takes the lock (to start its linger). The disconnection applies
        # to the record found by the lookup.
        try:
            rec = self._streams[stream_id]
        except (KeyError, TypeError):
            sid = clean_stream_id(stream_id)
            if sid is None:
                self._reject(
                    d.REJECT_INVALID_STREAM_ID, "record_websocket_disconnection", stream_id
                )
                return
            found = self._streams.get(sid)
            if found is None:
                return
            rec = found
        viewers = rec.viewers
        try:
            viewers.pop()
        except IndexError:
            return
        if viewers or rec.info is not None:
            return
        self._disconnected_to_zero(rec)

    def record_viewer_count_change(
        self, stream_id: str | UUID, viewer_count: int, region: str
    ) -> None:
        """The global viewer count of an active stream changed: peak = max(peak, count).

        Only a stream started here (and not ended) has a peak; for any other stream the
        call creates no series.
        """
        sid = clean_stream_id(stream_id)
        if sid is None:
            self._reject(d.REJECT_INVALID_STREAM_ID, "record_viewer_count_change", stream_id)
            return
        count = clean_amount(viewer_count)
        if isinstance(count, str):
            self._reject(count, "record_viewer_count_change", viewer_count)
            return
        if not is_label_value(region):
            self._reject(d.REJECT_INVALID_LABEL, "record_viewer_count_change", region)
            return
        with self._lock:
            rec = self._streams.get(sid)
            if rec is not None and rec.info is not None and rec.peak is not None:
                rec.peak = max(rec.peak, count)

    # --- ingest --------------------------------------------------------------------------

    def record_quality_bitrate(self, stream_id: str | UUID, quality: str, kbps: float) -> None:
        """Current ingest bitrate of an active stream at ``quality``, in kbit/s.

        Only a stream started here (and not ended) gets the series.
        """
        sid = clean_stream_id(stream_id)
        if sid is None:
            self._reject(d.REJECT_INVALID_STREAM_ID, "record_quality_bitrate", stream_id)
            return
        if not is_label_value(quality):
            self._reject(d.REJECT_INVALID_LABEL, "record_quality_bitrate", quality)
            return
        rate = clean_amount(kbps)
        if isinstance(rate, str):
            self._reject(rate, "record_quality_bitrate", kbps)
            return
        bounded = quality if quality in self._qualities else d.OTHER
        with self._lock:
            rec = self._streams.get(sid)
            if rec is not None and rec.info is not None:
                # Copy on write: the scrape iterates bitrates without the lock.
                rec.bitrates = {**rec.bitrates, bounded: rate}

    def record_frame_drops(self, stream_id: str | UUID, count: int = 1) -> None:
        """``count`` (an int >= 1) frames of an active stream were lost in ingest.

        Adds to ``nova_streaming_stream_frame_drops_total{stream_id}``; only a stream
        started here (and not ended) has the series. The error counter is separate:
        record ``frame_drop`` with :meth:`record_broadcast_error` as before.
        """
        sid = clean_stream_id(stream_id)
        if sid is None:
            self._reject(d.REJECT_INVALID_STREAM_ID, "record_frame_drops", stream_id)
            return
        amount = clean_count(count)
        if isinstance(amount, str):
            self._reject(amount, "record_frame_drops", count)
            return
        with self._lock:
            rec = self._streams.get(sid)
            if rec is not None and rec.info is not None and rec.drops is not None:
                rec.drops += int(amount)

    def record_broadcast_error(self, error_type: str, count: int = 1) -> None:
        """``broadcast_errors_total{error_type}`` + ``count`` (unconfigured types count as
        ``other``), in one increment whatever the count: O(1) work per report, so a peer
        that makes an ingest report a million dropped frames costs one call.
        ``count`` must be an int >= 1 (else the call is rejected and counted)."""
        if count.__class__ is int and count == 1:
            amount = 1.0
        else:
            cleaned = clean_count(count)
            if isinstance(cleaned, str):
                self._reject(cleaned, "record_broadcast_error", count)
                return
            amount = cleaned
        try:
            child = self._error_children.get(error_type)
        except TypeError:
            child = None
        if child is not None:
            child.inc(amount)
            return
        if not is_label_value(error_type):
            self._reject(d.REJECT_INVALID_LABEL, "record_broadcast_error", error_type)
            return
        self._error_children[d.OTHER].inc(amount)

    def record_rtmp_connection_failure(self) -> None:
        """``broadcast_errors_total{error_type="rtmp_connection_failed"}`` +1."""
        self.record_broadcast_error("rtmp_connection_failed")

    def record_rtmp_frame_latency(
        self, quality: str, seconds: float, stream_id: str | UUID | None = None
    ) -> None:
        """One frame's ingest lag at ``quality``, in seconds (the per-frame hot path).

        With ``stream_id``, the frame also feeds the stream's
        ``stream_ingest_lag_seconds`` (a stream started here) and, when it is slower
        than ``exemplar_threshold_seconds`` or is the sampled one in
        ``exemplar_sample_every``, it leaves ``{stream_id="..."}`` as the OpenMetrics
        exemplar of the bucket it lands in.
        """
        # One dict lookup (the quality was validated when its series was made), a type
        # check and the bucket search, whose index also says whether the value is finite
        # and >= 0 (NaN included), then two slot updates in this thread's own counts
        # list: no lock, no Python call (see _histogram). Anything unusual takes the slow
        # path. With a stream id, the known stream's lag window
        # is one more dict lookup, one clock read every CLOCK_EVERY frames and one list
        # append (a second's frames are sorted once, at the next second).
        try:
            shard = self._latency_shards[quality]
        except (KeyError, TypeError):
            self._latency_slow(quality, seconds, stream_id)
            return
        if type(seconds) is not float:
            self._latency_slow(quality, seconds, stream_id)
            return
        index = _bisect(self._latency_keys, seconds)
        if not 0 < index < self._latency_top:
            self._latency_slow(quality, seconds, stream_id)
            return
        if stream_id is None:
            counts = shard.counts
            counts[index] += 1
            counts[0] += seconds
            return
        try:
            window = self._windows[stream_id]
        except (KeyError, TypeError):
            self._latency_of_stream(shard.series, seconds, stream_id)
            return
        counts = shard.counts
        counts[index] += 1
        counts[0] += seconds
        # The window's cut is the exemplar threshold, or -1 when its stream's next frame
        # is the sampled one (decided once a second, in _close_second): one compare.
        if seconds > window.cut:
            window.cut = self._exemplar_threshold
            shard.series.exemplars[index] = Exemplar(
                {d.EXEMPLAR_LABEL: window.stream_id}, seconds, _wall()
            )
        # The clock is read every CLOCK_EVERY frames of a stream (a clock read costs
        # as much as the rest of this); the frames between go to the second it read.
        ticks = window.ticks - 1
        if ticks:
            window.ticks = ticks
            window.append(seconds)
        else:
            window.ticks = CLOCK_EVERY
            now = self._clock()
            if now < window.roll_at:
                window.append(seconds)
            else:
                self._close_second(window, seconds, now)

    # --- internals -----------------------------------------------------------------------

    def _observe_in_window(
        self, series: HistogramSeries, seconds: float, window: LagWindow
    ) -> None:
        """What the hot path inlines for a stream with a lag window."""
        if seconds > window.cut:
            window.cut = self._exemplar_threshold
            series.observe(seconds, {d.EXEMPLAR_LABEL: window.stream_id})
        else:
            series.observe(seconds)
        # The clock is read every CLOCK_EVERY frames of a stream (a clock read costs
        # as much as the rest of this); the frames between go to the second it read.
        ticks = window.ticks - 1
        if ticks:
            window.ticks = ticks
            window.append(seconds)
        else:
            window.ticks = CLOCK_EVERY
            now = self._clock()
            if now < window.roll_at:
                window.append(seconds)
            else:
                self._close_second(window, seconds, now)

    def _close_second(self, window: LagWindow, seconds: float, now: float) -> None:
        """A stream's frame seen in a new second: close the last one in its window and
        count its frames toward the one-in-N exemplar sample."""
        frames = window.add(seconds, now)
        if not frames:
            return
        left = self._exemplar_countdown - frames
        if left > 0:
            self._exemplar_countdown = left
        else:
            self._exemplar_countdown = self._exemplar_reset
            window.cut = -1.0

    def _latency_of_stream(
        self, series: HistogramSeries, seconds: float, stream_id: object
    ) -> None:
        """A valid observation naming a stream without a lag window here as given (not
        started here, over the cap, given as a UUID object or in upper case...)."""
        rec = self._streams.get(stream_id) if type(stream_id) is str else None
        if rec is not None:
            sid = rec.stream_id
        else:
            cleaned = clean_stream_id(stream_id)
            if cleaned is None:
                self._reject(d.REJECT_INVALID_STREAM_ID, "record_rtmp_frame_latency", stream_id)
                return
            sid = cleaned
            window = self._windows.get(sid)
            if window is not None:
                # A started stream named another way: the fast path's work.
                self._observe_in_window(series, seconds, window)
                return
        left = self._exemplar_countdown - 1
        if seconds > self._exemplar_threshold or left <= 0:
            self._exemplar_countdown = left if left > 0 else self._exemplar_reset
            series.observe(seconds, {d.EXEMPLAR_LABEL: sid})
        else:
            self._exemplar_countdown = left
            series.observe(seconds)

    def _latency_slow(self, quality: object, seconds: object, stream_id: object = None) -> None:
        if not is_label_value(quality):
            self._reject(d.REJECT_INVALID_LABEL, "record_rtmp_frame_latency", quality)
            return
        amount = clean_amount(seconds)
        if isinstance(amount, str):
            self._reject(amount, "record_rtmp_frame_latency", seconds)
            return
        series = self._latency_children.get(quality)
        if series is None:
            series = self._latency_children[d.OTHER]
        if stream_id is None:
            series.observe(amount)
        else:
            self._latency_of_stream(series, amount, stream_id)

    def _connect_slow(self, stream_id: object) -> None:
        sid = clean_stream_id(stream_id)
        if sid is None:
            self._reject(d.REJECT_INVALID_STREAM_ID, "record_websocket_connection", stream_id)
            return
        with self._lock:
            self._expire(self._clock())
            rec = self._streams.get(sid)
            if rec is None:
                rec = self._new_record(sid)
            # A connection means the service holds the stream for active (it records
            # connections only for active streams), so a lingering stream's connection
            # series stay; owner-only series still leave at owner_until.
            rec.linger_until = None
            rec.viewers.append(None)

    def _connected_late(self, rec: StreamRecord) -> None:
        """A connection's item went to a record that lingers or was removed: revive the
        record (what a connection to a lingering stream does), or, if it is gone, count
        the connection on the stream's current record."""
        with self._lock:
            self._expire(self._clock())
            if rec.alive:
                rec.linger_until = None
                return
        self._connect_slow(rec.stream_id)

    def _disconnected_to_zero(self, rec: StreamRecord) -> None:
        """A stream not started here lost its last local viewer: start its linger, unless
        a connection came back in the meantime or it already lingers."""
        with self._lock:
            if rec.alive and not rec.viewers and rec.info is None and rec.linger_until is None:
                self._linger_record(rec, self._clock())

    def _observe_duration(self, stream_type: object, seconds: float) -> None:
        """For StreamTimer: one observation of stream_duration_seconds{stream_type}."""
        if not is_label_value(stream_type):
            self._reject(d.REJECT_INVALID_LABEL, "StreamTimer", stream_type)
            return
        amount = clean_amount(seconds)
        if isinstance(amount, str):
            self._reject(amount, "StreamTimer", seconds)
            return
        kind = stream_type if stream_type in d.STREAM_TYPES else d.OTHER
        with self._lock:
            child = self._duration_children.get(kind)
            if child is None:
                child = self._duration_children[kind] = self._duration.labels(kind)
        child.observe(amount)

    def _new_record(self, sid: str) -> StreamRecord:
        """Caller holds the lock. Tracks the stream when the cap allows, else counts a drop."""
        tracked = self._tracked < self._max_tracked
        if tracked:
            self._tracked += 1
            self._roster_changes += 1
        else:
            self._dropped.inc()
        rec = StreamRecord(sid, tracked=tracked)
        self._streams[sid] = rec
        return rec

    def _stop_owning(self, rec: StreamRecord, region: str) -> None:
        """Caller holds the lock. active_streams -1 (never below 0), stream_info gone."""
        rec.info = None
        left = self._active_by_region.get(region, 0)
        self._active_by_region[region] = left - 1 if left > 0 else 0

    def _linger_record(self, rec: StreamRecord, now: float) -> None:
        """Caller holds the lock. Schedule removal of the stream's series."""
        deadline = now + self._linger
        rec.linger_until = deadline
        if rec.owner_until is None:
            rec.owner_until = deadline
        if self._linger <= 0.0:
            self._remove(rec)
        else:
            self._lingering.append((deadline, rec.stream_id))

    def _expire(self, now: float) -> int:
        """Caller holds the lock. Pop every due deadline; returns the streams removed.

        Deque entries can be stale (a revived stream); the record's own fields decide.
        """
        removed = 0
        lingering = self._lingering
        while lingering and lingering[0][0] <= now:
            _, sid = lingering.popleft()
            rec = self._streams.get(sid)
            if rec is None:
                continue
            if rec.linger_until is not None and rec.linger_until <= now:
                self._remove(rec)
                removed += 1
            elif rec.owner_until is not None and rec.owner_until <= now and rec.info is None:
                rec.peak = None
                rec.bitrates = {}
                rec.lag = None
                self._windows.pop(rec.stream_id, None)
                rec.drops = None
                rec.owner_until = None
        return removed

    def _remove(self, rec: StreamRecord) -> None:
        """Caller holds the lock."""
        rec.alive = False
        del self._streams[rec.stream_id]
        self._windows.pop(rec.stream_id, None)
        if rec.tracked:
            self._tracked -= 1
            self._roster_changes += 1

    def _reject(self, reason: str, call: str, value: object) -> None:
        self._rejected_children[reason].inc()
        with self._lock:
            if reason in self._logged_reasons:
                return
            self._logged_reasons.add(reason)
        shown = repr(value)
        if len(shown) > _LOG_VALUE_CHARS:
            shown = shown[:_LOG_VALUE_CHARS] + "..."
        logger.warning(
            "streaming_metrics: %s rejected %s (reason %s); further rejections for this "
            "reason are only counted in %s",
            call,
            shown,
            reason,
            d.REJECTED_INPUTS.name,
        )

    def _register(self) -> None:
        done: list[Collector] = []
        try:
            for collector in self._collectors:
                self._registry.register(collector)
                done.append(collector)
        except ValueError as exc:
            for collector in done:
                self._registry.unregister(collector)
            raise ValueError(
                "StreamingMetrics: registry already holds Nova streaming metrics "
                f"(one StreamingMetrics per registry): {exc}"
            ) from None

    def _collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self._clock()
            self._expire(now)
            regions = list(self._active_by_region.items())
            roster = self._roster
            changes = self._roster_changes
            if roster is None or roster[0] != changes:
                # One C-level pass (filter + attrgetter): about half the time of a
                # comprehension, spent holding the lock and the GIL.
                records = list(filter(_TRACKED, self._streams.values()))
                sids = None
            else:
                _, records, sids = roster
            tracked = self._tracked
        # Read outside the lock: each field is replaced whole, never mutated in place.
        active = GaugeMetricFamily(
            d.ACTIVE_STREAMS.name, d.ACTIVE_STREAMS.help, labels=d.ACTIVE_STREAMS.labels
        )
        for region, count in regions:
            active.add_metric((region,), float(count))
        yield active
        # One per-stream family at a time, held by no local name: the caller frees each
        # one once it has encoded it. Freeing a family is one uninterruptible burst of
        # deallocations (its samples); freeing all of them together at the end would
        # hold the GIL several times as long and stall other threads (an event loop).
        if sids is None:
            sids = stream_ids(records)
            # Shared, never changed, by the scrapes that follow until the roster changes.
            self._roster = (changes, records, sids)
        yield _connections(records, sids)
        yield _peaks(records, sids)
        yield _bitrates(records, sids)
        yield _infos(records, sids, self._info_memo)
        yield _lags(records, sids, now)
        yield _drops(records, sids)
        yield GaugeMetricFamily(
            d.TRACKED_STREAMS.name, d.TRACKED_STREAMS.help, value=float(tracked)
        )
        yield GaugeMetricFamily(
            d.MAX_TRACKED_STREAMS.name, d.MAX_TRACKED_STREAMS.help, value=float(self._max_tracked)
        )


def _counter(definition: d.MetricDefinition) -> Counter:
    return Counter(definition.name, definition.help, definition.labels, registry=None)


def _histogram(definition: d.MetricDefinition) -> Histogram:
    return Histogram(
        definition.name,
        definition.help,
        definition.labels,
        buckets=definition.buckets,
        registry=None,
    )
