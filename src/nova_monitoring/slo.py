"""Service level objectives as code: the two ingest SLOs and their burn-rate alerts.

Design section 10: over 30 days, 99% of video frames are ingested with at most 0.5 s of
lag, and broadcast errors stay at or below 0.1% of ingested frames. Each SLO's error
ratio is recorded over the windows of the SRE workbook's multiwindow, multi-burn-rate
alerts (5m, 30m, 1h, 2h, 6h, 1d, 3d), always as a ratio of sums of rates over every
replica, never an average of per-replica ratios. An alert fires when both windows of a
pair burn the error budget faster than the pair's factor:

=========  ======  ======  ==========  =======================================
long       short   factor  severity    budget spent in the long window at that
=========  ======  ======  ==========  =======================================
1h         5m      14.4    critical    2%
6h         30m     6       critical    5%
1d         2h      3       warning     10%
3d         6h      1       warning     10%
=========  ======  ======  ==========  =======================================

No frames at all (0/0, or errors over 0 frames): the ratio's denominator is
``(sum(rate(frames)) > 0)``, so the ratio has no series instead of NaN or +Inf, and no
burn alert fires on it. A total ingest outage is the job of ``StreamingHighErrorRate``
(which does fire on +Inf) and the target alerts, not of a budget computed per frame.

Example::

    >>> [slo.name for slo in SLOS]
    ['ingest-latency', 'ingest-errors']
    >>> LATENCY_SLO.record("5m")
    'nova:slo_ingest_latency:error_ratio:rate5m'
    >>> ERRORS_SLO.budget
    '0.001'
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from nova_monitoring._types import Data
from nova_monitoring.alerts import Alert, render_alert
from nova_monitoring.options import RenderOptions, format_number, format_percent, parse_duration
from nova_monitoring.promql import le_matcher, rate_of
from streaming_metrics import definitions as d

__all__ = [
    "BURN_WINDOWS",
    "ERRORS_SLO",
    "LATENCY_SLO",
    "LATENCY_SLO_SECONDS",
    "RATIO_WINDOWS",
    "SLO",
    "SLOS",
    "SLO_GROUP",
    "SLO_PERIOD",
    "BurnWindow",
    "burn_alerts",
    "slo_group",
    "slo_recording_rules",
]

SLO_GROUP = "nova-streaming-slo"
SLO_PERIOD = "30d"
RATIO_WINDOWS: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
LATENCY_SLO_SECONDS = 0.5

_LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS.name


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """One window pair of the workbook: both must burn faster than ``factor``.

    Example::

        >>> BURN_WINDOWS[0].label, BURN_WINDOWS[0].budget_spent
        ('1h/5m', '2')
    """

    long: str
    short: str
    factor: float
    severity: str

    def __post_init__(self) -> None:
        for window in (self.long, self.short):
            if window not in RATIO_WINDOWS:
                raise ValueError(f"burn window {window!r}: no error ratio is recorded over it")
        if parse_duration(self.short) >= parse_duration(self.long):
            raise ValueError(f"burn window {self.label}: the short window must be shorter")
        if self.factor <= 0:
            raise ValueError(f"burn window {self.label}: factor must be positive")

    @property
    def label(self) -> str:
        """The ``window`` label of the alert: which pair fired (``long/short``)."""
        return f"{self.long}/{self.short}"

    @property
    def budget_spent(self) -> str:
        """Percent of the period's budget spent within ``long`` at exactly ``factor``."""
        share = Decimal(repr(self.factor)) * parse_duration(self.long) / parse_duration(SLO_PERIOD)
        return format_percent(float(share))


BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow("1h", "5m", 14.4, "critical"),
    BurnWindow("6h", "30m", 6.0, "critical"),
    BurnWindow("1d", "2h", 3.0, "warning"),
    BurnWindow("3d", "6h", 1.0, "warning"),
)


@dataclass(frozen=True, slots=True)
class SLO:
    """One objective: the events it counts and what share of them may go wrong.

    Exactly one of ``good`` (selector of good events: the ratio is ``1 - good/total``)
    and ``bad`` (selector of bad events: ``bad/total``) is set; all are counters or
    cumulative buckets, summed over every replica before dividing.

    Example::

        >>> LATENCY_SLO.error_ratio("1h")  # doctest: +ELLIPSIS
        '1 - sum(rate(nova_..._bucket{le="0.5"}[1h])) / (sum(rate(nova_..._count[1h])) > 0)'
    """

    name: str
    alert: str
    title: str
    objective: float
    meaning: str
    total: str
    good: str | None = None
    bad: str | None = None

    def __post_init__(self) -> None:
        if (self.good is None) == (self.bad is None):
            raise ValueError(f"SLO {self.name}: set exactly one of good and bad events")
        if not 0 < self.objective < 1:
            raise ValueError(f"SLO {self.name}: objective {self.objective} not in (0, 1)")
        if not self.alert.startswith("Streaming"):
            raise ValueError(f"SLO {self.name}: alert name must start with 'Streaming'")

    @property
    def budget(self) -> str:
        """The error budget, ``1 - objective``, written exactly (``0.01``, not 0.0100...02)."""
        return format_number(float(1 - Decimal(repr(self.objective))))

    def record(self, window: str) -> str:
        """The recorded error ratio's name over ``window``."""
        return f"nova:slo_{self.name.replace('-', '_')}:error_ratio:rate{window}"

    def error_ratio(self, window: str) -> str:
        """The error ratio over ``window``; no series (not NaN, not +Inf) with no frames."""
        total = f"(sum({rate_of(self.total, window)}) > 0)"
        if self.bad is not None:
            return f"sum({rate_of(self.bad, window)}) / {total}"
        assert self.good is not None
        return f"1 - sum({rate_of(self.good, window)}) / {total}"


if LATENCY_SLO_SECONDS not in d.RTMP_INGESTION_LATENCY_SECONDS.buckets:
    # The SLO counts good frames from this bucket exactly: it must be a bucket bound.
    raise ValueError(f"latency SLO: {LATENCY_SLO_SECONDS} s is not a bucket bound of {_LATENCY}")

LATENCY_SLO = SLO(
    name="ingest-latency",
    alert="StreamingLatencyBudgetBurn",
    title="Ingest latency",
    objective=0.99,
    meaning=f"99% of video frames ingested with at most {format_number(LATENCY_SLO_SECONDS)} s lag",
    total=f"{_LATENCY}_count",
    good=f"{_LATENCY}_bucket{{{le_matcher(LATENCY_SLO_SECONDS)}}}",
)
ERRORS_SLO = SLO(
    name="ingest-errors",
    alert="StreamingErrorBudgetBurn",
    title="Ingest errors",
    objective=0.999,
    meaning="at most 0.1% broadcast errors per ingested video frame",
    total=f"{_LATENCY}_count",
    bad=d.BROADCAST_ERRORS.name,
)
SLOS: tuple[SLO, ...] = (LATENCY_SLO, ERRORS_SLO)


def slo_recording_rules() -> list[Data]:
    """Each SLO's error ratio over every window, labelled with ``slo``.

    Example::

        >>> len(slo_recording_rules())
        14
    """
    return [
        {"record": slo.record(window), "expr": slo.error_ratio(window), "labels": {"slo": slo.name}}
        for slo in SLOS
        for window in RATIO_WINDOWS
    ]


def _burn_alert(slo: SLO, window: BurnWindow) -> Alert:
    factor = format_number(window.factor)
    # The long window's burn rate comes first, so it is the alert's $value.
    expr = (
        f"{slo.record(window.long)} / {slo.budget} > {factor}"
        f" and {slo.record(window.short)} / {slo.budget} > {factor}"
    )
    pace = "fast" if window.severity == "critical" else "steadily"
    return Alert(
        name=slo.alert,
        expr=expr,
        # The short window is the debounce (SRE workbook): no `for:`.
        for_="0s",
        severity=window.severity,
        summary=(
            f"{slo.title} SLO: error budget burning {pace}"
            f" (above {factor}x over {window.long} and {window.short})"
        ),
        description=(
            f"{slo.title} SLO ({slo.meaning}, over {SLO_PERIOD}): the error budget burned"
            " {{ $value | humanize }}x as fast as the SLO allows over the last"
            f" {window.long}, and more than {factor}x over the last {window.short} too."
            f" At {factor}x, {window.budget_spent}% of the {SLO_PERIOD} budget is spent"
            f" in {window.long}."
        ),
        labels=(("slo", slo.name), ("window", window.label)),
    )


def burn_alerts() -> list[Alert]:
    """Every SLO's alerts, one rule per window pair (so ``window`` says which fired).

    Example::

        >>> [(a.severity, dict(a.labels)["window"]) for a in burn_alerts()][:2]
        [('critical', '1h/5m'), ('critical', '6h/30m')]
    """
    return [_burn_alert(slo, window) for slo in SLOS for window in BURN_WINDOWS]


def slo_group(options: RenderOptions) -> Data:
    """The SLO rule group: every error ratio, then the burn alerts that read them.

    One group, so each evaluation computes the ratios before the alerts read them (rule
    groups run independently; alerts in another group would lag one interval). Its
    windows are the SLO's own: the compressed ``rate_window`` of end-to-end runs does
    not apply, ``for_scale`` has nothing to scale.
    """
    return {
        "name": SLO_GROUP,
        "interval": options.eval_interval,
        "rules": slo_recording_rules() + [render_alert(a, options) for a in burn_alerts()],
    }
