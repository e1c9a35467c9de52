"""Request handling shared by the threaded metrics server and the ASGI app.

Both front ends turn a request into a :class:`Request`, ask :meth:`Exposition.plan`
for the answer, and, when the answer is a :class:`Render`, run it: the threaded server
inline, the ASGI app on a worker thread so the event loop never collects a registry.
Planning is cheap (routing, authentication); only :meth:`Render.run` touches the
registry.
"""

from __future__ import annotations

import gzip
import hmac
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

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


def _render(registry: Collector, accept: str, accept_encoding: str) -> Response:
    try:
        encoder, content_type = choose_encoder(_safe_accept(accept))
        body = encoder(registry)
    except Exception:
        logger.exception("metrics: collecting the registry failed")
        return text_response(500, "metrics collection failed\n")
    headers = [("Content-Type", content_type), ("Vary", "Accept, Accept-Encoding")]
    if _gzip_allowed(accept_encoding):
        body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        headers.append(("Content-Encoding", "gzip"))
    return Response(200, tuple(headers), body)
