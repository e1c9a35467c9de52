"""The per-stream collector: the state-derived gauge families of one StreamingMetrics.

Per-stream series (connections, peak, bitrate, stream_info, lag, drops) are not
prometheus_client children but columns built at scrape time from the stream records
(``StreamingMetrics._collect``); :class:`_StreamFamily` keeps them as columns so the
exposition can write their lines without one Sample per series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Final

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from streaming_metrics import definitions as d
from streaming_metrics._stream import StreamRecord

# prometheus_client's float formatting (untyped there); both formats use it.
_go_float: Final[Callable[[float], str]] = floatToGoString


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
    (:meth:`exposition_lines`) instead of formatting Sample objects one by one: the
    part of a render that holds the GIL shrinks by an order of magnitude, which is
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

    def exposition_lines(self, rows_per_chunk: int = 1_000) -> Iterator[str] | None:
        """The sample lines in chunks, as text 0.0.4 and OpenMetrics both write them.

        Valid for the escaping schemes that leave legacy names untouched (underscores,
        allow-utf-8): names and label names come from the definitions, so they are
        legacy names, and label values are validated (UUIDs, ``LABEL_VALUE_PATTERN``),
        so they need no escaping; None (use ``samples``) if one somehow would, or if
        someone replaced ``samples``. Labels are in name order, values as
        ``floatToGoString`` writes them. Chunks let the caller pause between them.
        """
        if self._samples is not None:
            return None
        for column in self._columns:
            joined = "".join(column)
            if "\\" in joined or '"' in joined or "\n" in joined:
                return None
        return self._line_chunks(max(1, rows_per_chunk))

    def _line_chunks(self, size: int) -> Iterator[str]:
        order = sorted(range(len(self._labelnames)), key=self._labelnames.__getitem__)
        columns = [self._columns[i] for i in order]
        keys = [self._labelnames[i] for i in order]
        # One str.format per line, driven by map: formatting a line in C instead of
        # building it from Python pieces (a join per row for several labels) is what
        # keeps a chunk well under a millisecond, so the caller's hand-offs between
        # chunks stay about a millisecond apart whatever the number of labels.
        labels = ",".join(f'{_brace_safe(key)}="{{}}"' for key in keys)
        line = _brace_safe(self._sample_name) + "{{" + labels + "}} {}\n"
        fmt, values = _go_float, self._values
        for start in range(0, len(values), size):
            stop = start + size
            yield "".join(
                map(
                    line.format,
                    *[column[start:stop] for column in columns],
                    map(fmt, values[start:stop]),
                )
            )


def _brace_safe(text: str) -> str:
    """``text`` as a literal inside a ``str.format`` template."""
    return text.replace("{", "{{").replace("}", "}}")


def _connections(records: list[StreamRecord]) -> _StreamFamily:
    return _StreamFamily(
        d.WEBSOCKET_CONNECTIONS,
        ([rec.stream_id for rec in records],),
        [float(rec.connections) for rec in records],
    )


def _peaks(records: list[StreamRecord]) -> _StreamFamily:
    sids: list[str] = []
    values: list[float] = []
    for rec in records:
        peak = rec.peak
        if peak is not None:
            sids.append(rec.stream_id)
            values.append(peak)
    return _StreamFamily(d.PEAK_VIEWERS, (sids,), values)


def _bitrates(records: list[StreamRecord]) -> _StreamFamily:
    sids: list[str] = []
    qualities: list[str] = []
    values: list[float] = []
    for rec in records:
        for quality, rate in rec.bitrates.items():
            sids.append(rec.stream_id)
            qualities.append(quality)
            values.append(rate)
    return _StreamFamily(d.QUALITY_BITRATE_KBPS, (sids, qualities), values)


def _infos(records: list[StreamRecord]) -> _StreamFamily:
    sids: list[str] = []
    regions: list[str] = []
    kinds: list[str] = []
    for rec in records:
        started = rec.info
        if started is not None:
            sids.append(rec.stream_id)
            regions.append(started[0])
            kinds.append(started[1])
    return _StreamFamily(d.STREAM_INFO, (sids, regions, kinds), [1.0] * len(sids))


def _lags(records: list[StreamRecord], now: float) -> _StreamFamily:
    sids: list[str] = []
    values: list[float] = []
    for rec in records:
        window = rec.lag
        if window is not None:
            lag = window.value(now)
            if lag is not None:
                sids.append(rec.stream_id)
                values.append(lag)
    return _StreamFamily(d.STREAM_INGEST_LAG_SECONDS, (sids,), values)


def _drops(records: list[StreamRecord]) -> _StreamFamily:
    sids: list[str] = []
    values: list[float] = []
    for rec in records:
        drops = rec.drops
        if drops is not None:
            sids.append(rec.stream_id)
            values.append(float(drops))
    return _StreamFamily(d.STREAM_FRAME_DROPS, (sids,), values)


def _family(definition: d.MetricDefinition) -> Metric:
    if definition.type is d.MetricType.COUNTER:
        return CounterMetricFamily(definition.name, definition.help, labels=definition.labels)
    return GaugeMetricFamily(definition.name, definition.help, labels=definition.labels)
