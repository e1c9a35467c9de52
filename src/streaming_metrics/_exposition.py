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
  render is exposure. Two remedies: the per-stream families of ``StreamingMetrics``
  (nearly all samples at scale) write their lines straight from their columns
  (``exposition_lines``), about ten times less work than formatting Sample objects,
  with no GC-tracked object per sample; and the render hands the GIL over after each
  millisecond of work (:class:`_Yielding`). Changing the switch interval would do the
  second globally, which is the application's call, not a library's.
"""

from __future__ import annotations

import copy
import gc
import gzip
import hmac
import logging
import re
import threading
import time
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
GZIP_LEVEL = 6
# GIL hand-off during a render (see _Yielding.tick): after about _SLICE_S of work the
# render sleeps _HANDOFF_S, so a waiting event loop runs within about a millisecond
# instead of a switch interval (5 ms by default); the sleeps cost a few percent of a
# render's time. The clock is read every _TICK_EVERY samples (prometheus_client encodes
# a sample in 10-20 us) and after every _LINES_PER_CHUNK lines of a per-stream family
# (about 0.5 ms of work).
_SLICE_S = 0.001
_HANDOFF_S = 0.0001
_TICK_EVERY = 32
_LINES_PER_CHUNK = 500

# Sample-name suffixes a family name can carry, so `name[]=<family>` selects the whole
# family (client_python's own filter matches sample names only).
_FAMILY_SUFFIXES = ("_total", "_created", "_sum", "_count", "_bucket", "_gsum", "_gcount", "_info")
# A bearer token must be sendable verbatim in a header: visible ASCII, no spaces.
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")
_VERSION_RE = re.compile(r"\s*version\s*=\s*(.*)", re.IGNORECASE)
_NUMERIC_VERSION_RE = re.compile(r"\d+(\.\d+)*")

_TEXT = "text/plain; charset=utf-8"


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
    """A complete answer: status, headers and the body a GET would carry."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def content_length(self) -> int:
        """Length of the body a GET carries (also announced for HEAD)."""
        return len(self.body)


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
    _done: bool = field(default=False)

    def run(self) -> Response:
        """Collect the registry and encode it; never raises."""
        try:
            return _render(self.registry, self.accept, self.accept_encoding)
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Give back the render slot without rendering (idempotent)."""
        if not self._done:
            self._done = True
            self._release()


def text_response(status: int, text: str, extra: Iterable[tuple[str, str]] = ()) -> Response:
    """A small plain-text response."""
    return Response(status, (("Content-Type", _TEXT), *extra), text.encode("utf-8"))


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
        if now - self._last >= self._slice_s:
            time.sleep(self._handoff_s)
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


def _encode(encoder: Callable[[Collector], bytes], collector: Collector) -> bytes:
    """``encoder(collector)``, byte for byte, with the loop-friendly render applied.

    prometheus_client's text and OpenMetrics pages are the concatenation of each
    family's block (OpenMetrics then ends with ``# EOF``), so each family is encoded
    alone by ``encoder`` itself, its samples read through :class:`_Yielding`; a
    per-stream family of :class:`~streaming_metrics.StreamingMetrics` gets its header
    from ``encoder`` and its sample lines from its own ``exposition_lines()``. An
    encoder this does not know runs as is.
    """
    func = getattr(encoder, "func", encoder)
    keywords: dict[str, Any] = getattr(encoder, "keywords", {})
    if func is generate_latest:
        trailer = b""
    elif func is generate_openmetrics:
        trailer = b"# EOF\n"
    else:
        return encoder(_Yielding(collector))
    # Underscores and allow-utf-8 leave legacy names as they are, which the lines rely on.
    lines_ok = keywords.get("escaping", UNDERSCORES) in (UNDERSCORES, ALLOWUTF8)
    yielding = _Yielding(collector)
    parts: list[bytes] = []
    for metric in collector.collect():
        # Building a family is the collector's work, outside any chunk: hand off after
        # it, and again after the family is encoded and freed (freeing 10k-sample
        # columns is its own burst), so no two of these bursts run back to back.
        yielding.tick()
        chunks = None
        if lines_ok and isinstance(metric, _StreamFamily):
            chunks = metric.exposition_lines(_LINES_PER_CHUNK)
        if chunks is not None:
            header = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            parts.append(encoder(_One(header)).removesuffix(trailer))
            for chunk in chunks:
                parts.append(chunk.encode("utf-8"))
                yielding.tick()
        else:
            parts.append(encoder(_One(yielding.view(metric))).removesuffix(trailer))
        del metric, chunks
        yielding.tick()
    parts.append(trailer)
    return b"".join(parts)


def _render(registry: Collector, accept: str, accept_encoding: str) -> Response:
    try:
        encoder, content_type = choose_encoder(_safe_accept(accept))
        # The paused collection covers the frees at the end of the encoder too.
        with _GC_PAUSE:
            body = _encode(encoder, registry)
    except Exception:
        logger.exception("metrics: collecting the registry failed")
        return text_response(500, "metrics collection failed\n")
    headers = [("Content-Type", content_type), ("Vary", "Accept, Accept-Encoding")]
    if _gzip_allowed(accept_encoding):
        body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        headers.append(("Content-Encoding", "gzip"))
    return Response(200, tuple(headers), body)
