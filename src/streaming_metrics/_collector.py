"""The per-stream collector: the state-derived gauge families of one StreamingMetrics.

Per-stream series (connections, peak, bitrate, stream_info, lag, drops) are not
prometheus_client children but columns built at scrape time from the stream records
(``StreamingMetrics._collect``); :class:`_StreamFamily` keeps them as columns so the
exposition can write their lines without one Sample per series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import attrgetter, contains, eq, getitem, is_not, itemgetter, methodcaller, not_
from typing import Any, TypeVar, cast

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from streaming_metrics import definitions as d
from streaming_metrics._handoff import pause_point
from streaming_metrics._lag import NO_FRAME_YET, LagWindow
from streaming_metrics._line_cache import LineCache
from streaming_metrics._stream import StreamRecord

_T = TypeVar("_T")


class _StreamCollector(Collector):
    """Produces the state-derived gauges of one StreamingMetrics at scrape time."""

    _DEFINITIONS = (
        d.ACTIVE_STREAMS,
        d.WEBSOCKET_CONNECTIONS,
        d.PEAK_VIEWERS,
        d.QUALITY_BITRATE_KBPS,
        d.STREAM_INFO,
        d.STREAM_INGEST_LAG_SECONDS,
        d.STREAM_FRAME_DROPS,
        d.TRACKED_STREAMS,
        d.MAX_TRACKED_STREAMS,
    )

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        # The owner's bound method, not the owner: this module stays below metrics.py.
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()

    def describe(self) -> Iterable[Metric]:
        # Lets the registry know the names without collecting: duplicate detection and
        # name[] filtering (restricted_registry) both rely on it.
        return [_family(definition) for definition in self._DEFINITIONS]


class _StreamFamily(Metric):
    """A per-stream gauge family kept as columns: label values and sample values.

    Strings and floats are not tracked by the garbage collector, so a scrape of 10k
    streams allocates a handful of lists instead of one Sample (and labels dict) per
    series, and the exposition can write the lines straight from the columns
    (:meth:`line_chunks`, from cached label prefixes) instead of formatting Sample
    objects one by one: the part of a render that holds the GIL shrinks by an order
    of magnitude, which is
    what keeps a render thread from stalling an event loop (see
    ``streaming_metrics._exposition``). ``samples`` still gives ordinary Sample
    objects, built on first use, for everything else that reads the family
    (``get_sample_value``, ``name[]`` filtering, prometheus_client's encoders).
    """

    def __init__(
        self,
        definition: d.MetricDefinition,
        columns: tuple[list[str], ...],
        values: list[float],
    ) -> None:
        # A counter's family name drops `_total`; its samples keep it (as
        # CounterMetricFamily does), so both encoders write what prometheus_client would.
        counter = definition.type is d.MetricType.COUNTER
        family = definition.name.removesuffix("_total") if counter else definition.name
        super().__init__(family, definition.help, "counter" if counter else "gauge")
        self._sample_name = definition.name
        self._labelnames = definition.labels
        self._columns = columns
        self._values = values
        self._samples: list[Sample] | None = None

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            name, labelnames = self._sample_name, self._labelnames
            self._samples = [
                Sample(name, dict(zip(labelnames, labels, strict=True)), value)
                for labels, value in zip(
                    zip(*self._columns, strict=True), self._values, strict=True
                )
            ]
        return self._samples

    @samples.setter
    def samples(self, samples: list[Sample]) -> None:
        # Metric.__init__ assigns an empty list: that means "not built yet" here.
        self._samples = samples or None

    @property
    def sample_name(self) -> str:
        """The name on every sample line (a counter's keeps its ``_total``)."""
        return self._sample_name

    @property
    def label_names(self) -> tuple[str, ...]:
        """The label names, in the order of :attr:`columns`."""
        return self._labelnames

    @property
    def columns(self) -> tuple[list[str], ...]:
        """One list of label values per label name, one entry per series."""
        return self._columns

    @property
    def values(self) -> list[float]:
        """One value per series."""
        return self._values

    def line_chunks(self, cache: LineCache, rows_per_chunk: int) -> Iterator[bytes] | None:
        """The sample lines as UTF-8 chunks, as text 0.0.4 and OpenMetrics write them.

        Valid for the escaping schemes that leave legacy names untouched (underscores,
        allow-utf-8): names and label names come from the definitions, so they are
        legacy names, and label values are validated (UUIDs, ``LABEL_VALUE_PATTERN``),
        so they need no escaping; None (use ``samples``) if one somehow would, or if
        someone replaced ``samples``. ``cache`` keeps what the last render made (see
        :mod:`streaming_metrics._line_cache`); chunks let the caller pause between them.
        """
        if self._samples is not None:
            return None
        return cache.chunks(self, rows_per_chunk)

    def exposition_lines(self, rows_per_chunk: int = 1_000) -> Iterator[str] | None:
        """:meth:`line_chunks` as text, with a cache of its own (nothing reused)."""
        chunks = self.line_chunks(LineCache(), rows_per_chunk)
        return None if chunks is None else (chunk.decode() for chunk in chunks)


# Column reads over all records run in C (``map`` over an ``attrgetter``), several times
# faster than a Python loop, in slices of _SLICE records with a pause_point() between
# (streaming_metrics._handoff), so a render can hand the GIL over: a whole column of 50k
# records is 1.5-4 ms of uninterrupted work here (allocation and cache misses grow
# faster than the count), longer than the 5 ms worst event-loop tick allows once a
# switch interval is added. Each value is read whole (fields are replaced, never
# mutated in place), so every sample is a value its series had during the scrape; a
# family is not one instant across slices, as prometheus_client's own collectors are
# not (each child is read on its own while writers run).
_SID = attrgetter("stream_id")
# Not the `connections` property: a property runs Python code per record (slower, and
# the GIL may change hands mid-column); the length of each record's viewer list is
# the same number read in C.
_VIEWERS = attrgetter("viewers")

_PEAK = attrgetter("peak")
_BITRATES = attrgetter("bitrates")
_INFO = attrgetter("info")
_LAG = attrgetter("lag")
_DROPS = attrgetter("drops")
_SECOND = attrgetter("second")
_P95 = attrgetter("p95")
_REGION = itemgetter(0)
_KIND = itemgetter(1)
# Lag values are computed in Python, window by window; between slices of this many
# windows the render may hand the GIL over (streaming_metrics._handoff).
_LAG_SLICE = 1_000
# Columns are read in slices of this many records (about a quarter of a millisecond).
_SLICE = 5_000


def _column(rows: Sequence[Any], *gets: Callable[[Any], Any]) -> list[Any]:
    """``gets`` applied in turn to every row (``_column(rows, f, g)`` holds ``g(f(row))``:
    one pass, each value taken right after the one before it), read in C slice by
    slice with pauses between."""
    column: list[Any] = []
    for start in range(0, len(rows), _SLICE):
        pause_point()
        values: Iterable[Any] = rows[start : start + _SLICE]
        for get in gets:
            values = map(get, values)
        column.extend(values)
    pause_point()
    return column


def stream_ids(records: list[StreamRecord]) -> list[str]:
    """The stream id column, read once per scrape and shared by every per-stream family
    (a stream's id never changes; each family filters it by its own value column)."""
    return _column(records, _SID)


def _present(sids: list[str], values: list[_T | None]) -> tuple[list[str], list[_T]]:
    """The rows whose value is not None, with their stream ids (C-level filtering)."""
    if None not in values:
        return sids, cast(list[_T], values)
    keep = list(map(is_not, values, repeat(None)))
    pause_point()
    kept_sids = list(compress(sids, keep))
    pause_point()
    return kept_sids, cast(list[_T], list(compress(values, keep)))


def _connections(records: list[StreamRecord], sids: list[str]) -> _StreamFamily:
    # The length of each viewer list, taken as soon as the list is read: a list changes
    # in place, so each count is the one it had at that moment.
    values: list[float] = _column(records, _VIEWERS, len, float)
    return _StreamFamily(d.WEBSOCKET_CONNECTIONS, (sids,), values)


def _peaks(records: list[StreamRecord], all_sids: list[str]) -> _StreamFamily:
    peaks = _column(records, _PEAK)
    sids, values = _present(all_sids, peaks)
    return _StreamFamily(d.PEAK_VIEWERS, (sids,), values)


def _bitrates(records: list[StreamRecord], all_sids: list[str]) -> _StreamFamily:
    rates = _column(records, _BITRATES)
    sids: list[str] = []
    qualities: list[str] = []
    values: list[float] = []
    # Only streams with a bitrate (a non-empty dict, replaced whole on write) cost a
    # Python step.
    for start in range(0, len(rates), _SLICE):
        part = rates[start : start + _SLICE]
        rows = zip(all_sids[start : start + _SLICE], part, strict=True)
        for sid, by_quality in compress(rows, part):
            for quality, rate in by_quality.items():
                sids.append(sid)
                qualities.append(quality)
                values.append(rate)
        pause_point()
    return _StreamFamily(d.QUALITY_BITRATE_KBPS, (sids, qualities), values)


class InfoMemo:
    """The stream_info columns of the last scrape, reused while nothing they come from
    changed (stream starts and ends are rare; the columns cost three passes over every
    record). Replaced whole, so concurrent renders read a consistent one. Columns, not
    the family: a family whose ``samples`` someone read holds Sample objects."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[list[str], list[tuple[str, str] | None], tuple[list[str], ...]] | None
        self.last = None


def _infos(records: list[StreamRecord], all_sids: list[str], memo: InfoMemo) -> _StreamFamily:
    infos = _column(records, _INFO)
    last = memo.last
    # Same stream id column (the same list object: the roster did not change) and equal
    # info tuples (compared by identity first, in C): the same rows as last time.
    if last is not None and last[0] is all_sids and last[1] == infos:
        columns = last[2]
    else:
        sids, started = _present(all_sids, infos)
        # _column pauses before and after each slice: no pause_point() of its own needed.
        columns = (sids, _column(started, _REGION), _column(started, _KIND))
        memo.last = (all_sids, infos, columns)
    return _StreamFamily(d.STREAM_INFO, columns, [1.0] * len(columns[0]))


def _lags(records: list[StreamRecord], all_sids: list[str], now: float) -> _StreamFamily:
    sids, windows = _present(all_sids, _column(records, _LAG))
    second = int(now)
    # LagWindow.value answers from its fields alone in the two common cases: a window
    # whose open second is now's gives its p95 (every stream sending: the usual case),
    # one that never saw a frame (its second still NO_FRAME_YET) gives None. When all
    # windows are in one of them the family is one column read (or nothing); a mix is
    # read slice by slice in C, and only the rest (streams that stopped sending) run
    # value(): Python work, a microsecond or more each, in slices that end with a
    # chance to hand the GIL over.
    # test_collector_lags checks this against value() for every kind of window.
    seconds: list[int] = _column(windows, _SECOND)
    if seconds.count(second) == len(windows):
        lags: list[float | None] = _column(windows, _P95)
    elif seconds.count(NO_FRAME_YET) == len(windows):
        return _StreamFamily(d.STREAM_INGEST_LAG_SECONDS, ([],), [])
    else:
        lags = _window_values(windows, seconds, second, now)
    sids, values = _present(sids, lags)
    pause_point()
    return _StreamFamily(d.STREAM_INGEST_LAG_SECONDS, (sids,), values)


def _window_values(
    windows: list[LagWindow], seconds: list[int], second: int, now: float
) -> list[float | None]:
    """Each window's value at ``now`` (their open ``seconds`` read already): current and
    never-framed ones read in C, the rest (streams that stopped sending) by ``value``,
    slice by slice."""
    value = methodcaller("value", now)
    lags: list[float | None] = []
    for start in range(0, len(windows), _LAG_SLICE):
        part = windows[start : start + _LAG_SLICE]
        opened = seconds[start : start + _LAG_SLICE]
        stale = list(map(not_, map(contains, repeat((second, NO_FRAME_YET)), opened)))
        is_fresh = list(map(eq, opened, repeat(second)))
        got: list[float | None] = list(
            map(getitem, zip(map(_P95, part), repeat(None)), map(not_, is_fresh))
        )
        for index in compress(range(len(part)), stale):
            got[index] = value(part[index])
        lags.extend(got)
        pause_point()
    return lags


def _drops(records: list[StreamRecord], all_sids: list[str]) -> _StreamFamily:
    drops = _column(records, _DROPS)
    sids, counts = _present(all_sids, drops)
    return _StreamFamily(d.STREAM_FRAME_DROPS, (sids,), _column(counts, float))


def _family(definition: d.MetricDefinition) -> Metric:
    if definition.type is d.MetricType.COUNTER:
        return CounterMetricFamily(definition.name, definition.help, labels=definition.labels)
    return GaugeMetricFamily(definition.name, definition.help, labels=definition.labels)
