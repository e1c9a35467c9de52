"""Cached sample lines of the per-stream families, so a repeated scrape is mostly joins.

The per-stream families of :class:`~streaming_metrics.StreamingMetrics` hold nearly
every sample of a page at scale (four series per stream). Formatting them line by line
is what made a render cost: ``floatToGoString`` per value and a label string per row,
every scrape, although a stream's label values never change and most values do not
change between two scrapes. A :class:`LineCache` (one per served registry, kept by
:class:`~streaming_metrics._exposition.Exposition`) keeps, per family:

* the label prefix of each series (``name{labels} ``), built the first time the series
  is rendered and reused until the series leaves the page;
* the text of each value (``floatToGoString`` plus the newline), keyed by the value's
  64-bit pattern so ``-0.0`` and ``0.0`` (equal as floats) stay apart;
* the encoded bytes of each chunk of rows, with the label values and value bits they
  were made from: a chunk whose rows and values are the same as at the last render is
  reused as is, so an unchanged page costs a comparison per chunk.

Every lookup is done by ``map`` over a dict's ``get`` (C, no Python frame per row); a
row is formatted in Python only on a miss. The result is byte for byte what
prometheus_client's encoders write for the same samples (text 0.0.4 and OpenMetrics
write per-stream lines identically for legacy names); a family whose label values would
need escaping is left to them (``None``).

Thread safety: two renders may use one cache at once. Dict reads and writes are atomic
under the GIL and every entry is derived from its key, so a race only loses a cache
entry; each render replaces a family's chunk list whole.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from typing import Final, Protocol, cast

from prometheus_client.utils import floatToGoString

from streaming_metrics._handoff import pause_point

# prometheus_client's formatter is untyped; its signature, stated once.
_go_float: Final[Callable[[float], str]] = floatToGoString

# A value-text cache beyond this many entries is dropped and rebuilt: values that keep
# changing (lags, bitrates) must not grow it without bound.
_MAX_VALUE_TEXTS = 65_536
# Characters a label value would have to escape; the per-stream families never carry
# them (validated label values), and a family that somehow does is rendered by
# prometheus_client instead.
_NEEDS_ESCAPE = ("\\", '"', "\n")


class ColumnFamily(Protocol):
    """What a per-stream family exposes to be rendered from its columns."""

    @property
    def sample_name(self) -> str:
        """The name written on every sample line."""
        ...

    @property
    def label_names(self) -> tuple[str, ...]:
        """The label names, in the order of :attr:`columns`."""
        ...

    @property
    def columns(self) -> tuple[list[str], ...]:
        """One list of label values per label name, one entry per row."""
        ...

    @property
    def values(self) -> list[float]:
        """One value per row."""
        ...


def _needs_escape(column: tuple[str, ...]) -> bool:
    """Whether a label value of ``column`` has a character the format escapes."""
    joined = "".join(column)
    return any(char in joined for char in _NEEDS_ESCAPE)


# One chunk of a render: its label columns, its values' bits, and its encoded lines
# (None while still to be rendered).
_Chunk = tuple[tuple[tuple[str, ...], ...], bytes, bytes | None]


class _FamilyCache:
    """What one per-stream family's last render left for the next one."""

    __slots__ = ("chunks", "prefixes", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        # Label values (one str, or a tuple for several labels) -> 'name{labels} '.
        self.prefixes: dict[object, str] = {}
        # Per chunk index: (label columns, value bits, encoded lines).
        self.chunks: list[tuple[tuple[tuple[str, ...], ...], bytes, bytes]] = []


class LineCache:
    """Per-family caches of label prefixes, value texts and encoded chunks of lines.

    Example::

        >>> cache = LineCache()
        >>> class Family:
        ...     sample_name = "demo_connections"
        ...     label_names = ("stream_id",)
        ...     columns = (["a", "b"],)
        ...     values = [1.0, 2.5]
        >>> b"".join(cache.chunks(Family(), 1))
        b'demo_connections{stream_id="a"} 1.0\\ndemo_connections{stream_id="b"} 2.5\\n'
    """

    def __init__(self) -> None:
        self._families: dict[tuple[str, tuple[str, ...]], _FamilyCache] = {}
        self._texts: dict[int, str] = {}

    def chunks(self, family: ColumnFamily, rows_per_chunk: int) -> Iterator[bytes] | None:
        """The family's sample lines as UTF-8 chunks of ``rows_per_chunk`` rows.

        None when a label value would need escaping (the caller encodes the family's
        samples instead). Chunks are made lazily, so the caller may pause between them.
        """
        names = family.label_names
        order = sorted(range(len(names)), key=names.__getitem__)
        columns = [family.columns[i] for i in order]
        key = (family.sample_name, tuple(names[i] for i in order))
        cache = self._families.get(key)
        if cache is None:
            # Names and label names come from the definitions: legacy names, no braces
            # and nothing to escape; the braces here are str.format's.
            labels = ",".join(f'{name}="{{}}"' for name in key[1])
            template = family.sample_name + "{{" + labels + "}} "
            cache = self._families.setdefault(key, _FamilyCache(template))
        values = family.values
        size = max(1, rows_per_chunk)
        previous = cache.chunks
        plan: list[_Chunk] = []
        for index, start in enumerate(range(0, len(values), size)):
            if index % 8 == 7:
                # Comparing 50 chunks of 50k rows is a few ms: let a render hand off.
                pause_point()
            stop = start + size
            # Tuples of str: the garbage collector untracks them, so the chunks kept
            # for the next render add nothing to its collections.
            rows = tuple(tuple(column[start:stop]) for column in columns)
            # The exact bits, not float equality: -0.0 must not reuse "0.0".
            bits = array("d", values[start:stop]).tobytes()
            data = None
            if index < len(previous):
                old_rows, old_bits, old_data = previous[index]
                if old_bits == bits and old_rows == rows:
                    # Keep the old tuples: the collector has already examined and
                    # untracked them, while new ones kept for the next render would
                    # each be traversed by the first collection after this one.
                    rows, data = old_rows, old_data
            plan.append((rows, bits, data))
        # Every chunk to render is checked before the first is given out: a family is
        # rendered here entirely or not at all (the caller cannot take back chunks it
        # has written). Reused chunks were checked when they were made.
        for rows, _, data in plan:
            if data is None and any(_needs_escape(column) for column in rows):
                return None
        if len(cache.prefixes) > 2 * len(values) + 1_024:
            # Many series left the page: start the prefixes afresh rather than keep
            # those of streams long gone (rendered chunks need none).
            cache.prefixes = {}
        return self._chunks(cache, cache.prefixes, plan)

    def _chunks(
        self, cache: _FamilyCache, prefixes: dict[object, str], plan: list[_Chunk]
    ) -> Iterator[bytes]:
        made: list[tuple[tuple[tuple[str, ...], ...], bytes, bytes]] = []
        template = cache.template.format
        try:
            for rows, bits, data in plan:
                if data is None:
                    keys = rows[0] if len(rows) == 1 else list(zip(*rows, strict=True))
                    found = list(map(prefixes.get, keys))
                    if None in found:
                        # New series in this chunk: format the chunk's prefixes in one
                        # C-level pass rather than row by row in Python.
                        heads = list(map(template, *rows))
                        prefixes.update(zip(keys, heads, strict=True))
                    else:
                        heads = cast(list[str], found)
                    texts = self._value_texts(bits)
                    data = "".join(map(str.__add__, heads, texts)).encode()
                made.append((rows, bits, data))
                yield data
        finally:
            # What was rendered this time is what the next render compares with; a
            # render cut short keeps only what it got to (the rest renders anew).
            cache.chunks = made

    def _value_texts(self, bits: bytes) -> list[str]:
        """``floatToGoString(value) + "\\n"`` for each 8-byte value in ``bits``."""
        texts = self._texts
        patterns = memoryview(bits).cast("Q")
        found = list(map(texts.get, patterns))
        if None in found:
            if len(texts) > _MAX_VALUE_TEXTS:
                texts = self._texts = {}
            floats = memoryview(bits).cast("d")
            for index, text in enumerate(found):
                if text is None:
                    pattern = patterns[index]
                    made = texts.get(pattern)
                    if made is None:
                        made = texts[pattern] = _go_float(floats[index]) + "\n"
                    found[index] = made
        return cast(list[str], found)
