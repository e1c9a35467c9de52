"""Request handling shared by the threaded metrics server and the ASGI app.

Both front ends turn a request into a :class:`Request`, ask :meth:`Exposition.plan`
for the answer, and, when the answer is a :class:`Render`, run it: the threaded server
inline, the ASGI app on a worker thread so the event loop never collects a registry.
Planning is cheap (routing, authentication); only :meth:`Render.run` touches the
registry.

A render on a worker thread still competes with the event loop for the GIL, so
:func:`_render` also keeps it from stalling the loop (design section 2; measured in
``bench/bench_exposition.py``). Two things stalled the loop, and each has its remedy:

* Full garbage collections. A render allocates GC-tracked objects per sample (Sample
  namedtuples, Metric objects) that live until the page is encoded, so they survive
  young collections and trigger full ones (tens of ms at 10k streams, up to ~100 ms)
  on the render thread while it holds the GIL. Automatic collection is paused for the
  render (:class:`_GcPause`): refcounting still frees everything the render made, so
  the allocation count falls back once it returns and no collection is owed. Only
  the automatic trigger is paused, only while a render runs, and never turned on if
  the application had turned it off: no process setting is left changed. Allocating
  fewer objects (below) shrinks the problem, but only for our own families; the pause
  covers whatever else the registry holds.
* Time spent holding the GIL. Pure-Python encoding hands the GIL to a waiting thread
  only every ``sys.getswitchinterval()`` (5 ms by default), and on a busy machine the
  render thread can be descheduled while it holds the GIL, so every millisecond of
  render is exposure. Three remedies: the per-stream families of ``StreamingMetrics``
  (nearly all samples at scale) write their lines from cached label prefixes and
  reuse the chunks that did not change since the last scrape (a :class:`LineCache`
  per Exposition, see :mod:`streaming_metrics._line_cache`), with no GC-tracked
  object per sample; the render hands the GIL over after each millisecond of work
  (:class:`_Yielding`, also reached from inside the collector through
  :mod:`streaming_metrics._handoff`); and gzip runs part by part in zlib, which
  releases the GIL. Changing the switch interval would do the second globally, which
  is the application's call, not a library's. A stretch of more than 4 ms without a
  hand-off is logged (debug) with the phase it ended in.

The page is returned as pieces of 64-128 KiB (:attr:`Response.pieces`): the ASGI app
sends them one by one, so neither the render thread (a join) nor the event loop (one
multi-MB send) handles the whole page in one go.
"""

from __future__ import annotations

import copy
import gc
import hmac
import logging
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from streaming_metrics._collector import _StreamFamily
from streaming_metrics._handoff import pausing
from streaming_metrics._line_cache import LineCache

logger = logging.getLogger("streaming_metrics.server")

METRICS_PATH = "/metrics"
HEALTHZ_PATH = "/healthz"
ALLOWED_METHODS = "GET, HEAD"

# Bounds on what one client can make a render do; the query string is the only input
# that reaches the registry.
MAX_NAME_FILTERS = 256
MAX_QUERY_FIELDS = 512
# Concurrent renders across all front ends of one Exposition; beyond it a scrape gets
# 503 at once instead of queueing work (or threads) without bound.
MAX_CONCURRENT_RENDERS = 8
# zlib level 1: about half the CPU of level 6 for a page about 7% larger (per-stream
# lines compress about 4:1 either way); the scrape's cost is what the platform pays for.
GZIP_LEVEL = 1
# Body pieces (see Response): big enough that writing one is not overhead, small enough
# that a server copies or frames one in well under a millisecond.
PIECE_BYTES = 65_536
# A stretch of render work this long without a GIL hand-off is logged (debug), with the
# phase it was in: an event loop waiting for the GIL was late by about as much.
_SLOW_STRETCH_S = 0.004
# GIL hand-off during a render (see _Yielding.tick): after about _SLICE_S of work the
# render sleeps _HANDOFF_S, so a waiting event loop runs within about a millisecond
# instead of a switch interval (5 ms by default); the sleeps cost a few percent of a
# render's time. The clock is read every _TICK_EVERY samples (prometheus_client encodes
# a sample in 10-20 us) and after every chunk of _LINES_PER_CHUNK lines of a per-stream
# family (well under 0.5 ms of work, cached or not).
_SLICE_S = 0.001
_HANDOFF_S = 0.0001
_TICK_EVERY = 32
_LINES_PER_CHUNK = 1_000

# Sample-name suffixes a family name can carry, so `name[]=<family>` selects the whole
# family (client_python's own filter matches sample names only).
_FAMILY_SUFFIXES = ("_total", "_created", "_sum", "_count", "_bucket", "_gsum", "_gcount", "_info")
# A bearer token must be sendable verbatim in a header: visible ASCII, no spaces.
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")
_VERSION_RE = re.compile(r"\s*version\s*=\s*(.*)", re.IGNORECASE)
_NUMERIC_VERSION_RE = re.compile(r"\d+(\.\d+)*")

_TEXT = "text/plain; charset=utf-8"


class GzipSegments:
    """The compressed forms of the large parts of the last gzip render, for the next.

    A part the line cache reused (the same ``bytes`` object as last time: its lines did
    not change) is compressed again to the same bytes, so the last render's output for
    it is kept and reused: at 50k streams compression was most of a gzip scrape. Each
    large part is compressed on its own, from a reset compressor and up to a full flush
    (a byte-aligned point after which nothing refers back), so its compressed bytes
    are valid anywhere in the stream; the parts' CRC and length are computed afresh.
    Keyed by identity (no hashing of MBs while holding the GIL), holding the part so
    the identity stays valid; replaced whole by each render.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: dict[int, tuple[bytes, bytes]] = {}


@dataclass(frozen=True, slots=True)
class Request:
    """What the handler needs of one HTTP request, front-end independent.

    Header values are ``str`` decoded as latin-1 (what both http.server and a
    byte-for-byte ASGI decode give), ``None`` when absent.
    """

    method: str
    path: str
    query: str = ""
    accept: str | None = None
    accept_encoding: str | None = None
    authorization: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer: status, headers and the body a GET would carry.

    The body is kept as ``pieces`` of at most about :data:`PIECE_BYTES` each, written
    one after the other: a multi-MB page is never joined into one buffer (a copy that
    holds the GIL) nor handed to a server in one send.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    pieces: tuple[bytes, ...]

    @property
    def body(self) -> bytes:
        """The whole body in one buffer (a copy; servers write :attr:`pieces`)."""
        return b"".join(self.pieces)

    @property
    def content_length(self) -> int:
        """Length of the body a GET carries (also announced for HEAD)."""
        return sum(map(len, self.pieces))


@dataclass(slots=True)
class Render:
    """A planned /metrics render; :meth:`run` does the registry work.

    Holds one slot of the exposition's render limit from creation until :meth:`run`
    (or :meth:`cancel`) returns it.
    """

    registry: Collector
    accept: str
    accept_encoding: str
    _release: Callable[[], None]
    lines: LineCache = field(default_factory=LineCache)
    segments: GzipSegments = field(default_factory=GzipSegments)
    _done: bool = field(default=False)

    def run(self) -> Response:
        """Collect the registry and encode it; never raises."""
        try:
            return _render(
                self.registry, self.accept, self.accept_encoding, self.lines, self.segments
            )
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Give back the render slot without rendering (idempotent)."""
        if not self._done:
            self._done = True
            self._release()


def text_response(status: int, text: str, extra: Iterable[tuple[str, str]] = ()) -> Response:
    """A small plain-text response."""
    return Response(status, (("Content-Type", _TEXT), *extra), (text.encode("utf-8"),))


def validate_token(token: str | None) -> bytes | None:
    """Check a configured bearer token; return it as bytes for constant-time compares."""
    if token is None:
        return None
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise ValueError(
            "metrics server: token must be a non-empty string of visible ASCII characters "
            "without spaces (it is sent as 'Authorization: Bearer <token>')"
        )
    return token.encode("ascii")


def resolve_registry(registry: CollectorRegistry | None) -> CollectorRegistry:
    """The registry to serve: the given one or prometheus_client's default."""
    if registry is None:
        from prometheus_client import REGISTRY

        return REGISTRY
    if not isinstance(registry, CollectorRegistry):
        raise TypeError(
            f"metrics server: registry must be a prometheus_client CollectorRegistry, "
            f"not {type(registry).__name__}"
        )
    return registry


class Exposition:
    """Routing, authentication and rendering of /metrics and /healthz for one registry."""

    def __init__(self, registry: CollectorRegistry | None, token: str | None) -> None:
        self._registry = resolve_registry(registry)
        self._token = validate_token(token)
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_RENDERS)
        # Shared by every render of this registry: what one scrape rendered, the next
        # reuses where nothing changed.
        self._lines = LineCache()
        self._segments = GzipSegments()

    def plan(self, request: Request) -> Response | Render:
        """Answer a request, or return the render it needs. Cheap; never raises."""
        path = request.path
        if path not in (METRICS_PATH, HEALTHZ_PATH):
            return text_response(404, "not found\n")
        if request.method not in ("GET", "HEAD"):
            return text_response(405, "method not allowed\n", (("Allow", ALLOWED_METHODS),))
        if path == HEALTHZ_PATH:
            return text_response(200, "ok")
        denied = self._check_auth(request.authorization)
        if denied is not None:
            return denied
        try:
            registry = self._select(request.query)
        except ValueError as exc:
            return text_response(400, f"bad request: {exc}\n")
        if not self._slots.acquire(blocking=False):
            logger.warning(
                "metrics: scrape refused, %d renders already running", MAX_CONCURRENT_RENDERS
            )
            return text_response(503, "too many concurrent scrapes\n", (("Retry-After", "1"),))
        return Render(
            registry,
            request.accept or "",
            request.accept_encoding or "",
            self._slots.release,
            self._lines,
            self._segments,
        )

    def _check_auth(self, authorization: str | None) -> Response | None:
        if self._token is None:
            return None
        challenge = 'Bearer realm="metrics"'
        if authorization is None:
            return text_response(401, "unauthorized\n", (("WWW-Authenticate", challenge),))
        scheme, _, credentials = authorization.strip().partition(" ")
        given = credentials.strip().encode("latin-1", errors="replace")
        # compare_digest on bytes: no early exit on the first differing byte.
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, self._token):
            return text_response(
                401,
                "unauthorized\n",
                (("WWW-Authenticate", challenge + ', error="invalid_token"'),),
            )
        return None

    def _select(self, query: str) -> Collector:
        params = parse_qs(query, max_num_fields=MAX_QUERY_FIELDS)
        names = params.get("name[]")
        if not names:
            return self._registry
        if len(names) > MAX_NAME_FILTERS:
            raise ValueError(f"at most {MAX_NAME_FILTERS} name[] filters")
        return _FamilyFilter(self._registry, frozenset(names))


class _FamilyFilter:
    """A collector exposing only the asked families (or, client_python style, samples).

    ``name[]=<family>`` keeps the whole family (all buckets of a histogram);
    ``name[]=<sample name>`` keeps only those samples.
    """

    def __init__(self, registry: CollectorRegistry, names: frozenset[str]) -> None:
        self._names = names
        expanded = set(names)
        for name in names:
            expanded.update(name + suffix for suffix in _FAMILY_SUFFIXES)
        self._restricted = registry.restricted_registry(expanded)

    def collect(self) -> Iterable[Metric]:
        for metric in self._restricted.collect():
            if metric.name in self._names:
                yield metric
                continue
            samples = [s for s in metric.samples if s.name in self._names]
            if samples:
                kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                kept.samples = samples
                yield kept


def _safe_accept(accept: str) -> str:
    """Drop Accept entries whose version choose_encoder cannot compare (it raises)."""
    kept = []
    for entry in accept.split(","):
        ok = True
        for param in entry.split(";")[1:]:
            match = _VERSION_RE.fullmatch(param)
            if match and match.group(1) and not _NUMERIC_VERSION_RE.fullmatch(match.group(1)):
                ok = False
        if ok:
            kept.append(entry)
    return ",".join(kept)


def _gzip_allowed(accept_encoding: str) -> bool:
    """gzip is acceptable: listed as gzip (or else as *) and not refused with q=0."""
    weights: dict[str, float] = {}
    for entry in accept_encoding.split(","):
        coding, *params = (part.strip().lower() for part in entry.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights.setdefault(coding, weight)
    weight = weights.get("gzip", weights.get("*", 0.0))
    return weight > 0


class _GcPause:
    """Pause automatic garbage collection while at least one render runs.

    Nest-safe across threads: the first render in turns collection off (if it was on)
    and the last one out turns it back on, so two overlapping renders never leave it
    off, and an application that disabled collection keeps it disabled. An explicit
    ``gc.collect()`` still works meanwhile. If the application itself switches
    collection off while a render runs, the render still turns it back on when it
    ends: the one case this cannot tell apart.

    Example::

        >>> import gc
        >>> with _GC_PAUSE:
        ...     gc.isenabled()
        False
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._resume:
                self._resume = False
                gc.enable()


_GC_PAUSE = _GcPause()


class _Yielding:
    """A collector that hands the GIL to waiting threads during a long render.

    It yields shallow copies of the wrapped collector's metrics whose ``samples`` are
    read through a generator that calls :meth:`tick` every ``every`` samples, counted
    across families. prometheus_client's encoders (text and OpenMetrics) only iterate
    ``metric.samples`` once, so the page is byte for byte what they make from the
    wrapped collector; the copies leave collectors that reuse their Metric objects
    untouched. ``slice_s`` and ``handoff_s``: see :meth:`tick`.
    """

    def __init__(
        self,
        collector: Collector,
        every: int = _TICK_EVERY,
        *,
        slice_s: float = _SLICE_S,
        handoff_s: float = _HANDOFF_S,
    ) -> None:
        self._collector = collector
        self._every = every
        self._slice_s = slice_s
        self._handoff_s = handoff_s
        self._count = 0
        self._last = time.perf_counter()
        # What the render is doing now, named in the slow-stretch debug log.
        self.phase = "starting"

    def collect(self) -> Iterator[Metric]:
        for metric in self._collector.collect():
            yield self.view(metric)

    def view(self, metric: Metric) -> Metric:
        """A shallow copy of ``metric`` whose samples are read with GIL hand-offs."""
        view = copy.copy(metric)
        # A generator, not a list: mypy sees Metric.samples as list[Sample].
        view.samples = self._samples(metric.samples)  # type: ignore[assignment]
        return view

    def tick(self) -> None:
        """Sleep ``handoff_s`` if ``slice_s`` of work went by since the last sleep.

        A sleep releases the GIL, and it must last long enough for a thread waiting
        on the GIL to wake up and take it: a zero sleep returns before the waiter is
        scheduled and the render takes the GIL straight back (measured: loop stalls
        stayed at the switch interval). So: a short real sleep, once per slice.
        """
        now = time.perf_counter()
        held = now - self._last
        if held >= self._slice_s:
            if held > _SLOW_STRETCH_S:
                logger.debug(
                    "metrics render: %.1f ms without a GIL hand-off, until the end of: %s",
                    held * 1000,
                    self.phase,
                )
            time.sleep(self._handoff_s)
            self._last = time.perf_counter()

    def released(self) -> None:
        """The GIL was just free for a while (zlib compressing): a new slice starts."""
        self._last = time.perf_counter()

    def _samples(self, samples: Iterable[Any]) -> Iterator[Any]:
        every = self._every
        count = self._count
        try:
            for sample in samples:
                count += 1
                if count >= every:
                    count = 0
                    self.tick()
                yield sample
        finally:
            self._count = count


class _One:
    """A collector of one metric, to have prometheus_client encode it alone."""

    __slots__ = ("_metric",)

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> list[Metric]:
        return [self._metric]


def _encode(
    encoder: Callable[[Collector], bytes],
    collector: Collector,
    lines: LineCache,
    yielding: _Yielding,
) -> list[bytes]:
    """``encoder(collector)``, byte for byte, as a list of parts, rendered loop-friendly.

    prometheus_client's text and OpenMetrics pages are the concatenation of each
    family's block (OpenMetrics then ends with ``# EOF``), so each family is encoded
    alone by ``encoder`` itself, its samples read through ``yielding``; a per-stream
    family of :class:`~streaming_metrics.StreamingMetrics` gets its header from
    ``encoder`` and its sample lines from ``lines`` (cached prefixes and chunks, see
    :mod:`streaming_metrics._line_cache`). An encoder this does not know runs as is.
    """
    func = getattr(encoder, "func", encoder)
    keywords: dict[str, Any] = getattr(encoder, "keywords", {})
    if func is generate_latest:
        trailer = b""
    elif func is generate_openmetrics:
        trailer = b"# EOF\n"
    else:
        yielding.phase = "encoding with an unknown encoder"
        return [encoder(yielding)]
    # Underscores and allow-utf-8 leave legacy names as they are, which the lines rely on.
    lines_ok = keywords.get("escaping", UNDERSCORES) in (UNDERSCORES, ALLOWUTF8)
    parts: list[bytes] = []
    yielding.phase = "collecting the first family"
    for metric in collector.collect():
        # Building a family is the collector's work, outside any chunk: hand off after
        # it, and again after the family is encoded and freed (freeing 10k-sample
        # columns is its own burst), so no two of these bursts run back to back.
        yielding.tick()
        yielding.phase = f"encoding {metric.name}"
        chunks = None
        if lines_ok and isinstance(metric, _StreamFamily):
            chunks = metric.line_chunks(lines, _LINES_PER_CHUNK)
        if chunks is not None:
            header = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            parts.append(encoder(_One(header)).removesuffix(trailer))
            for chunk in chunks:
                parts.append(chunk)
                yielding.tick()
        else:
            parts.append(encoder(_One(yielding.view(metric))).removesuffix(trailer))
        yielding.phase = f"freeing {metric.name}"
        del metric, chunks
        yielding.tick()
        yielding.phase = "collecting the family after the last one encoded"
    parts.append(trailer)
    return parts


# A part this large is compressed on its own and its compressed form kept (a chunk of
# 1,000 per-stream lines is about 90 KiB); smaller ones (family headers, small
# families) share the compressor with their neighbours, as one stream.
_SEGMENT_BYTES = 16_384
# gzip member header (RFC 1952): deflate, no flags, no mtime, fastest (level 1), Unix.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\x03"


def _compress(parts: list[bytes], yielding: _Yielding, segments: GzipSegments) -> list[bytes]:
    """``parts`` as one gzip member, with hand-offs between parts.

    zlib releases the GIL while it compresses (and while it computes a CRC of more
    than a few KiB), so this phase barely competes with an event loop; compressing part
    by part keeps each call short and lets the render hand off between them like
    everywhere else. Large parts reuse their compressed form from ``segments``.
    """
    yielding.phase = "compressing"
    previous = segments.last
    kept: dict[int, tuple[bytes, bytes]] = {}
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [_GZIP_HEADER]
    crc = 0
    size = 0
    # The compressor holds input not yet flushed: a segment may not start before a
    # full flush, which ends that input at a byte boundary and forgets its history.
    pending = False
    for part in parts:
        crc = zlib.crc32(part, crc)
        size += len(part)
        if len(part) < _SEGMENT_BYTES:
            out.append(compressor.compress(part))
            pending = True
        else:
            if pending:
                out.append(compressor.flush(zlib.Z_FULL_FLUSH))
                pending = False
            hit = previous.get(id(part))
            if hit is not None and hit[0] is part:
                segment = hit[1]
            else:
                segment = compressor.compress(part) + compressor.flush(zlib.Z_FULL_FLUSH)
            kept[id(part)] = (part, segment)
            out.append(segment)
        # zlib held no GIL while it worked (a waiting loop ran): count the slice
        # from here, so the slow-stretch log names only time the GIL was held.
        yielding.released()
    out.append(compressor.flush())
    out.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
    segments.last = kept
    return out


def _render(
    registry: Collector,
    accept: str,
    accept_encoding: str,
    lines: LineCache,
    segments: GzipSegments,
) -> Response:
    yielding = _Yielding(registry)
    try:
        encoder, content_type = choose_encoder(_safe_accept(accept))
        # The paused collection covers the frees at the end of the encoder too.
        # pausing: long work inside a collector (streaming_metrics._collector) hands the
        # GIL over through this render's tick as well.
        with _GC_PAUSE, pausing(yielding.tick):
            parts = _encode(encoder, registry, lines, yielding)
            headers = [("Content-Type", content_type), ("Vary", "Accept, Accept-Encoding")]
            if _gzip_allowed(accept_encoding):
                parts = _compress(parts, yielding, segments)
                headers.append(("Content-Encoding", "gzip"))
            yielding.phase = "joining parts into pieces"
            pieces = _pieces(parts)
            del parts
            yielding.tick()
    except Exception:
        logger.exception("metrics: collecting the registry failed")
        return text_response(500, "metrics collection failed\n")
    return Response(200, tuple(headers), pieces)


def _pieces(parts: list[bytes]) -> tuple[bytes, ...]:
    """``parts`` regrouped into pieces of at most twice PIECE_BYTES: small parts
    joined until a piece reaches PIECE_BYTES, big ones cut."""
    pieces: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for whole in parts:
        cut = [whole]
        if len(whole) > 2 * PIECE_BYTES:
            cut = [whole[i : i + PIECE_BYTES] for i in range(0, len(whole), PIECE_BYTES)]
        for part in cut:
            if group and size + len(part) > 2 * PIECE_BYTES:
                pieces.append(b"".join(group))
                group, size = [], 0
            if part:
                group.append(part)
                size += len(part)
            if size >= PIECE_BYTES:
                pieces.append(b"".join(group) if len(group) > 1 else group[0])
                group, size = [], 0
    if group or not pieces:
        pieces.append(b"".join(group))
    return tuple(pieces)
