"""ShardedHistogram: the frame-latency histogram, one list of counts per thread.

prometheus_client's ``Histogram.observe`` walks the bounds in Python and takes a lock
per value it changes (the sum, then the bucket): about 1 µs a frame. Here an
observation is two list-slot updates in a list only the calling thread writes, found
with ``bisect`` on a tuple of bounds:

* Validation in the search. The tuple searched has a sentinel at each end: the
  largest negative float and the largest finite one. ``bisect_left`` then gives 0 for
  a negative value or NaN and ``len(keys)`` for +inf, so ``0 < index < len(keys)``
  checks the value's range, and slot 0 of a counts list is free to hold the sum (a
  constant index: CPython's fast path for ``list[int]`` does not take ``-1``).
* Thread safety without a lock. ``counts[i] += 1`` on a shared list is a read, an add
  and a write, so two threads can lose an update; a list written by one thread only
  cannot. Each series keeps one counts list per thread (a ``threading.local``), each
  registered under the series' lock when its thread first observes; a scrape adds them
  up. A scrape copies each list with one slice (atomic under the GIL), so one thread's
  buckets, count and sum are always read from the same moment.
* The export is prometheus_client's, sample for sample: the same family, the same
  children in creation order, cumulative buckets, ``_count``, ``_sum``, ``_created``
  (unless prometheus_client's created series are disabled) and the latest exemplar of
  each bucket; floats are formatted by the encoders as usual. With one observing
  thread the sum is accumulated in the same order as prometheus_client's, so the page
  is byte-identical; with several, each thread's sum is exact and they are added in
  shard order (prometheus_client's own order then depends on the interleaving).
* Lists of threads that have ended are folded into the series' retired counts at the
  next scrape, so short-lived threads do not accumulate.

Callers validate label values and amounts before they observe: the hot path finds a
series by a dict lookup on already-validated values (see ``StreamingMetrics``).
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterable
from typing import Final

from prometheus_client import metrics as _client_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

from streaming_metrics import definitions as d

__all__ = ["HistogramSeries", "Shard", "ShardedHistogram", "search_keys_of"]

_BELOW_ZERO: Final = -5e-324
_MAX_FINITE: Final = sys.float_info.max


class Shard(threading.local):
    """One thread's counts of one series: ``counts[0]`` is the sum and ``counts[i]``
    the observations with ``bisect_left(keys, value) == i`` (bucket ``i - 1``; the
    last is +Inf).

    ``threading.local`` runs ``__init__`` again, with the same series, the first time
    each thread reads an attribute, so a thread's first observation registers its list.
    """

    counts: list[float]
    series: HistogramSeries

    def __init__(self, series: HistogramSeries) -> None:
        self.series = series
        self.counts = series._new_counts()


class HistogramSeries:
    """One label value's histogram: observe from any thread, read with :meth:`snapshot`.

    Hot paths may inline :meth:`observe`: ``index = bisect_left(series.keys, v)``; if
    ``0 < index < len(keys)`` and ``v`` is a float, ``counts = series.shard.counts``,
    ``counts[index] += 1`` and ``counts[0] += v``.
    """

    __slots__ = ("_lock", "_retired", "_shards", "created", "exemplars", "keys", "shard")

    def __init__(self, keys: tuple[float, ...]) -> None:
        # The finite upper bounds between the two sentinels (see search_keys_of).
        self.keys = keys
        self.created = time.time()
        # The latest exemplar per bucket (+Inf included): a slot is replaced whole, so a
        # reader sees the old exemplar or the new one; the last writer wins, as in
        # prometheus_client.
        # Indexed like the counts: slot 0 unused.
        self.exemplars: list[Exemplar | None] = [None] * len(keys)
        self._lock = threading.Lock()
        self._shards: list[tuple[weakref.ref[threading.Thread], list[float]]] = []
        self._retired = self._zeros()
        self.shard = Shard(self)

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """One observation of ``amount`` (a finite float >= 0, not checked here), with
        the labels of an exemplar for its bucket when given."""
        counts = self.shard.counts
        index = bisect_left(self.keys, amount)
        counts[index] += 1
        counts[0] += amount
        if exemplar is not None:
            self.exemplars[index] = Exemplar(exemplar, amount, time.time())

    def snapshot(self) -> tuple[list[float], float]:
        """(observations per bucket, +Inf last; sum) over every thread, as of now."""
        with self._lock:
            live: list[tuple[weakref.ref[threading.Thread], list[float]]] = []
            for ref, counts in self._shards:
                thread = ref()
                if thread is None or not thread.is_alive():
                    # Its thread has ended, so nothing writes this list any more.
                    self._retired = [a + b for a, b in zip(self._retired, counts, strict=True)]
                else:
                    live.append((ref, counts))
            self._shards = live
            total = self._retired[:]
            copies = [counts[:] for _, counts in live]
        for copy in copies:
            total = [a + b for a, b in zip(total, copy, strict=True)]
        return total[1:], total[0]

    def _zeros(self) -> list[float]:
        # The sum, then one count per bucket (+Inf included).
        return [0.0] + [0] * (len(self.keys) - 1)

    def _new_counts(self) -> list[float]:
        counts = self._zeros()
        with self._lock:
            self._shards.append((weakref.ref(threading.current_thread()), counts))
        return counts


def search_keys_of(definition: d.MetricDefinition) -> tuple[float, ...]:
    """The tuple a :class:`ShardedHistogram` of ``definition`` bisects: its finite
    bucket bounds as floats between the two sentinels. Hot paths that inline an
    observation search the same."""
    return (_BELOW_ZERO, *(float(bound) for bound in definition.buckets), _MAX_FINITE)


class ShardedHistogram(Collector):
    """A one-label histogram exported exactly as a prometheus_client ``Histogram``.

    Example::

        >>> from streaming_metrics import definitions as d
        >>> hist = ShardedHistogram(d.RTMP_INGESTION_LATENCY_SECONDS)
        >>> hist.series("720p").observe(0.045)
        >>> hist.series("720p").snapshot()[1]
        0.045
    """

    def __init__(self, definition: d.MetricDefinition) -> None:
        if len(definition.labels) != 1 or not definition.buckets:
            raise ValueError(
                f"ShardedHistogram: {definition.name} needs one label and buckets, "
                f"got labels {definition.labels!r} and buckets {definition.buckets!r}"
            )
        bounds = tuple(float(bound) for bound in definition.buckets)
        if list(bounds) != sorted(set(bounds)) or bounds[0] < 0.0 or bounds[-1] >= _MAX_FINITE:
            raise ValueError(
                f"ShardedHistogram: {definition.name} buckets must be finite, >= 0 and "
                f"increasing, got {definition.buckets!r}"
            )
        self._name = definition.name
        self._help = definition.help
        self._label = definition.labels[0]
        self.keys = search_keys_of(definition)
        self._les = (*map(floatToGoString, bounds), "+Inf")
        self._lock = threading.Lock()
        # Insertion order is creation order: the order prometheus_client exports children.
        self._series: dict[str, HistogramSeries] = {}

    def series(self, value: str) -> HistogramSeries:
        """The series of label ``value`` (already validated by the caller), created at
        0 on first use."""
        found = self._series.get(value)
        if found is None:
            with self._lock:
                found = self._series.get(value)
                if found is None:
                    found = self._series[value] = HistogramSeries(self.keys)
        return found

    def describe(self) -> Iterable[Metric]:
        return [Metric(self._name, self._help, "histogram")]

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self._name, self._help, "histogram")
        name, label, les = self._name, self._label, self._les
        bucket, count, total, created = (
            name + "_bucket",
            name + "_count",
            name + "_sum",
            name + "_created",
        )
        # Read at every scrape: prometheus_client's disable_created_metrics() flips it.
        use_created: bool = _client_metrics._use_created
        with self._lock:
            series = list(self._series.items())
        samples = metric.samples
        for value, one in series:
            counts, observed = one.snapshot()
            exemplars = one.exemplars[1:]
            acc = 0.0
            for le, n, exemplar in zip(les, counts, exemplars, strict=True):
                acc += n
                samples.append(Sample(bucket, {label: value, "le": le}, acc, None, exemplar))
            samples.append(Sample(count, {label: value}, acc, None, None))
            samples.append(Sample(total, {label: value}, observed, None, None))
            if use_created:
                samples.append(Sample(created, {label: value}, one.created, None, None))
        return [metric]
