"""Render options: everything a deployment may change, validated up front.

The defaults render exactly the files committed under ``k8s/monitoring/``. The timing
options (``eval_interval``, ``for_scale``, ``rate_window``) exist so end-to-end tests can
run the *same* rules with compressed time instead of a hand-edited copy.

Example::

    >>> from nova_monitoring.options import RenderOptions
    >>> opts = RenderOptions(namespace="streaming", for_scale=0.1, eval_interval="1s")
    >>> opts.scaled_for("5m")
    '30s'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from streaming_metrics import definitions as d

__all__ = [
    "DEFAULT_SELECTOR",
    "RenderOptions",
    "RenderOptionsError",
    "format_duration",
    "format_number",
    "format_percent",
    "parse_duration",
]

DEFAULT_SELECTOR: tuple[tuple[str, str], ...] = (("app", "nova-streaming"),)


class RenderOptionsError(ValueError):
    """A render option is invalid; the message names the option."""


_DURATION_UNITS_MS: dict[str, int] = {
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
    "ms": 1,
}
_DURATION_RE = re.compile(r"(?:(\d+)(ms|d|h|m|s))")
_K8S_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_K8S_LABEL_KEY_RE = re.compile(
    r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_K8S_LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def parse_duration(text: str, *, option: str = "duration") -> int:
    """Parse a Prometheus duration (``1h30m``, ``15s``, ``250ms``) into milliseconds.

    Example::

        >>> parse_duration("1m30s")
        90000
    """
    if not text or _DURATION_RE.sub("", text) != "":
        raise RenderOptionsError(f"{option}: {text!r} is not a Prometheus duration like 5m or 15s")
    total = 0
    for amount, unit in _DURATION_RE.findall(text):
        total += int(amount) * _DURATION_UNITS_MS[unit]
    return total


def format_duration(milliseconds: int) -> str:
    """Format milliseconds as the shortest Prometheus duration (``0s`` for zero).

    Example::

        >>> format_duration(90000)
        '1m30s'
    """
    if milliseconds < 0:
        raise RenderOptionsError(f"duration: {milliseconds} ms is negative")
    if milliseconds == 0:
        return "0s"
    parts = []
    rest = milliseconds
    for unit, size in _DURATION_UNITS_MS.items():
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def format_number(value: float) -> str:
    """Format a threshold for PromQL: no float noise, no needless ``.0``.

    Example::

        >>> format_number(0.1), format_number(10000.0), format_number(1e-05)
        ('0.1', '10000', '0.00001')
    """
    return format(Decimal(repr(value)).normalize(), "f")


def format_percent(ratio: float) -> str:
    """Format a ratio as a percentage number, exactly (no ``10.000000000000002``).

    Example::

        >>> format_percent(0.1), format_percent(0.95)
        ('10', '95')
    """
    return format((Decimal(repr(ratio)) * 100).normalize(), "f")


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """What a deployment may change in the generated files.

    ``selector`` is the ServiceMonitor's ``matchLabels`` as (key, value) pairs.
    ``latency_seconds`` must be a bucket bound of the latency histogram, because the
    latency alert counts frames above it exactly from that bucket.
    ``for_scale`` multiplies every alert's ``for:``; with ``eval_interval`` and
    ``rate_window`` it compresses time for end-to-end runs.

    Example::

        >>> RenderOptions(release="kps", selector=(("app", "nova"),)).release
        'kps'
    """

    namespace: str = "default"
    release: str = "prometheus"
    cluster: str = "local"
    selector: tuple[tuple[str, str], ...] = DEFAULT_SELECTOR
    job: str = "nova-streaming"
    scrape_interval: str = "30s"
    scrape_timeout: str = "10s"
    metrics_token_secret: str | None = None
    metrics_token_key: str = "token"
    error_rate_ratio: float = 0.10
    peak_viewers: int = 10_000
    latency_seconds: float = 1.0
    latency_quantile: float = 0.95
    cardinality_fraction: float = 0.8
    scrape_timeout_fraction: float = 0.8
    eval_interval: str = "15s"
    for_scale: float = 1.0
    rate_window: str = "5m"
    runbook_base_url: str = "docs/runbook.md"
    slack_secret: str = "nova-alertmanager-slack"
    slack_secret_key: str = "webhook-url"
    slack_channel: str = "#streaming-alerts"

    def __post_init__(self) -> None:
        for name in ("namespace", "job"):
            value = getattr(self, name)
            if not _K8S_NAME_RE.fullmatch(value) or len(value) > 63:
                raise RenderOptionsError(f"{name}: {value!r} is not a Kubernetes name")
        for name in ("release", "cluster"):
            value = getattr(self, name)
            if not value or not _K8S_LABEL_VALUE_RE.fullmatch(value) or len(value) > 63:
                raise RenderOptionsError(f"{name}: {value!r} is not a Kubernetes label value")
        if not self.selector:
            raise RenderOptionsError("selector: at least one KEY=VALUE label is required")
        for key, value in self.selector:
            if not _K8S_LABEL_KEY_RE.fullmatch(key):
                raise RenderOptionsError(f"selector: {key!r} is not a Kubernetes label key")
            if not _K8S_LABEL_VALUE_RE.fullmatch(value) or len(value) > 63:
                raise RenderOptionsError(f"selector: {value!r} is not a Kubernetes label value")
        if self.metrics_token_secret is not None and not _K8S_NAME_RE.fullmatch(
            self.metrics_token_secret
        ):
            raise RenderOptionsError(
                f"metrics_token_secret: {self.metrics_token_secret!r} is not a Secret name"
            )
        if not _K8S_NAME_RE.fullmatch(self.slack_secret):
            raise RenderOptionsError(f"slack_secret: {self.slack_secret!r} is not a Secret name")
        for name in ("scrape_interval", "scrape_timeout", "eval_interval", "rate_window"):
            if parse_duration(getattr(self, name), option=name) <= 0:
                raise RenderOptionsError(f"{name}: must be longer than 0s")
        if parse_duration(self.scrape_timeout) > parse_duration(self.scrape_interval):
            raise RenderOptionsError("scrape_timeout: must not exceed scrape_interval")
        if not 0 < self.error_rate_ratio < math.inf:
            # An infinite threshold renders as `> Infinity`, which PromQL reads as a
            # metric name: an alert that silently never fires.
            raise RenderOptionsError("error_rate_ratio: must be a finite number greater than 0")
        if self.peak_viewers < 0:
            raise RenderOptionsError("peak_viewers: must not be negative")
        if self.latency_seconds not in d.RTMP_INGESTION_LATENCY_SECONDS.buckets:
            raise RenderOptionsError(
                f"latency_seconds: {self.latency_seconds} is not a bucket bound of "
                f"{d.RTMP_INGESTION_LATENCY_SECONDS.name} "
                f"{d.RTMP_INGESTION_LATENCY_SECONDS.buckets}"
            )
        for name in ("latency_quantile", "cardinality_fraction", "scrape_timeout_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise RenderOptionsError(f"{name}: {value} must be between 0 and 1 (exclusive)")
        if not 0 < self.for_scale < math.inf:
            raise RenderOptionsError(
                f"for_scale: {self.for_scale} must be a finite number greater than 0"
            )

    def scaled_for(self, duration: str) -> str:
        """Return ``duration`` (an alert's nominal ``for:``) multiplied by ``for_scale``."""
        millis = parse_duration(duration, option="for")
        return format_duration(round(millis * self.for_scale))

    @property
    def slow_frame_fraction(self) -> str:
        """The share of frames allowed above ``latency_seconds``: 1 - quantile, exactly."""
        return format_number(float(1 - Decimal(repr(self.latency_quantile))))

    @property
    def rule_labels(self) -> dict[str, str]:
        """Static labels every alert carries, so routing works after aggregation.

        Aggregated alerts (``sum(...)``) lose the target's labels; an
        ``AlertmanagerConfig`` only receives alerts whose ``namespace`` label is its own
        namespace, and the route groups by ``cluster``.
        """
        return {"namespace": self.namespace, "cluster": self.cluster}
