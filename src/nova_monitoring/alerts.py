"""Alerting rules: the guide's five alerts, corrected, and the monitor-the-monitor set.

Every alert carries ``severity``, static ``namespace`` and ``cluster`` labels (see
:attr:`RenderOptions.rule_labels`), and ``summary``, ``description`` and
``runbook_url`` annotations. Descriptions only template labels the expression keeps:
an aggregated alert has no ``stream_id`` or ``instance`` to show.

Example::

    >>> from nova_monitoring.options import RenderOptions
    >>> alert_rules(RenderOptions())[0]["alert"]
    'StreamingHighErrorRate'
"""

from __future__ import annotations

from dataclasses import dataclass

from nova_monitoring._types import Data
from nova_monitoring.options import (
    RenderOptions,
    format_number,
    format_percent,
    parse_duration,
)
from nova_monitoring.rules import le_matcher, rate_of
from streaming_metrics import definitions as d

__all__ = [
    "ALERTS_GROUP",
    "ALERT_NAME_PREFIX",
    "SEVERITIES",
    "Alert",
    "alert_group",
    "alert_rules",
    "alerts",
    "render_alert",
    "runbook_anchor",
]

ALERTS_GROUP = "nova-streaming-alerts"
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
# Every alert's name starts with it: Alertmanager inhibitions select our alerts by it.
ALERT_NAME_PREFIX = "Streaming"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert before rendering: ``for_`` is nominal (``for_scale`` applies later).

    Example::

        >>> Alert("StreamingX", "up == 0", "5m", "warning", "s", "d").severity
        'warning'
    """

    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.name.startswith(ALERT_NAME_PREFIX):
            raise ValueError(f"alert {self.name}: name must start with {ALERT_NAME_PREFIX!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert {self.name}: severity {self.severity!r} not in {SEVERITIES}")
        parse_duration(self.for_, option=f"alert {self.name} for")


def runbook_anchor(alert_name: str) -> str:
    """The anchor GitHub and most Markdown renderers give the heading ``## <alert_name>``.

    Example::

        >>> runbook_anchor("StreamingHighErrorRate")
        'streaminghigherrorrate'
    """
    return alert_name.lower()


def alerts(options: RenderOptions) -> list[Alert]:
    """Every alert, the guide's five first (design section 4), then the monitor's own.

    The SLO burn-rate alerts live with their recording rules (:mod:`nova_monitoring.slo`).
    """
    window = options.rate_window
    latency = d.RTMP_INGESTION_LATENCY_SECONDS.name
    latency_bound = format_number(options.latency_seconds)
    slow_bucket = f"{latency}_bucket{{{le_matcher(options.latency_seconds)}}}"
    error_pct = format_percent(options.error_rate_ratio)
    job = f'job="{options.job}"'
    timeout_s = format_number(parse_duration(options.scrape_timeout) / 1000)
    return [
        Alert(
            name="StreamingHighErrorRate",
            expr=(
                f"sum({rate_of(d.BROADCAST_ERRORS.name, window)})"
                f" / sum({rate_of(latency + '_count', window)})"
                f" > {format_number(options.error_rate_ratio)}"
            ),
            for_="5m",
            severity="warning",
            summary=f"Broadcast errors exceed {error_pct}% of ingested frames",
            description=(
                "Broadcast errors are {{ $value | humanizePercentage }} of ingested video"
                f" frames over the last {window} (threshold {error_pct}%). +Inf means"
                " errors while no frame at all is being ingested."
            ),
        ),
        Alert(
            name="StreamingPeakViewersHigh",
            expr=(
                f"max by (stream_id) ({d.PEAK_VIEWERS.name})"
                f" > {format_number(options.peak_viewers)}"
            ),
            for_="2m",
            severity="warning",
            summary="A stream has more viewers than planned capacity",
            description=(
                "Stream {{ $labels.stream_id }} peaked at {{ $value }} concurrent viewers"
                f" (threshold {format_number(options.peak_viewers)})."
            ),
        ),
        Alert(
            name="StreamingHighIngestionLatency",
            expr=(
                f"(1 - sum({rate_of(slow_bucket, window)})"
                f" / sum({rate_of(latency + '_count', window)}))"
                f" > {options.slow_frame_fraction}"
            ),
            for_="3m",
            severity="warning",
            summary=(
                f"RTMP ingest p{format_percent(options.latency_quantile)}"
                f" latency is above {latency_bound}s"
            ),
            description=(
                "{{ $value | humanizePercentage }} of ingested video frames arrived more"
                f" than {latency_bound}s late over the last {window}; more than"
                f" {format_percent(float(options.slow_frame_fraction))}% means the"
                f" p{format_percent(options.latency_quantile)} ingest latency is above"
                f" {latency_bound}s."
            ),
        ),
        Alert(
            name="StreamingNoActiveStreams",
            expr=f"sum({d.ACTIVE_STREAMS.name}) == 0",
            for_="10m",
            severity="info",
            summary="No stream is being broadcast",
            description=(
                "No replica reports an active stream. Expected during off-hours;"
                " otherwise check that broadcasters can publish."
            ),
        ),
        Alert(
            name="StreamingWebSocketConnectionDrop",
            expr=(
                f"sum by (stream_id) ({d.WEBSOCKET_CONNECTIONS.name}) == 0"
                f" and on (stream_id) max by (stream_id) ({d.STREAM_INFO.name}) == 1"
            ),
            for_="5m",
            severity="warning",
            summary="An active stream has no connected viewers",
            description=(
                "Stream {{ $labels.stream_id }} is live but no replica holds a WebSocket"
                " viewer connection for it."
            ),
        ),
        Alert(
            name="StreamingMetricsTargetDown",
            expr=f"up{{{job}}} == 0",
            for_="2m",
            severity="critical",
            summary="Prometheus cannot scrape a Nova streaming replica",
            description=(
                "Scrapes of {{ $labels.instance }} (pod {{ $labels.pod }}, job"
                " {{ $labels.job }}) are failing: its metrics, and any alert built on"
                " them, are blind."
            ),
        ),
        Alert(
            name="StreamingMetricsTargetAbsent",
            expr=f"absent(up{{{job}}})",
            for_="5m",
            severity="critical",
            summary="Prometheus has no Nova streaming target at all",
            description=(
                "No target of job {{ $labels.job }} is known to Prometheus: the service is"
                " not deployed, or the ServiceMonitor selects nothing. Every streaming"
                " alert is blind."
            ),
        ),
        Alert(
            name="StreamingMetricsScrapeNearTimeout",
            expr=(
                f"scrape_duration_seconds{{{job}}}"
                f" > {format_number(options.scrape_timeout_fraction)} * {timeout_s}"
            ),
            for_="5m",
            severity="warning",
            summary="Scraping a Nova streaming replica takes close to the scrape timeout",
            description=(
                "Scraping {{ $labels.instance }} took {{ $value | humanizeDuration }},"
                f" more than {format_percent(options.scrape_timeout_fraction)}% of the"
                f" {options.scrape_timeout} scrape timeout; slower scrapes fail and the"
                " target goes down."
            ),
        ),
        Alert(
            name="StreamingMetricsCardinalityNearCap",
            expr=(
                f"{d.TRACKED_STREAMS.name} / {d.MAX_TRACKED_STREAMS.name}"
                f" > {format_number(options.cardinality_fraction)}"
            ),
            for_="5m",
            severity="warning",
            summary="A replica's per-stream series are close to the cardinality cap",
            description=(
                "{{ $labels.instance }} tracks {{ $value | humanizePercentage }} of its"
                " max_tracked_streams; at the cap, new streams get no per-stream series."
            ),
        ),
        Alert(
            name="StreamingMetricsSeriesDropped",
            expr=f"increase({d.DROPPED_SERIES.name}[{window}]) > 0",
            for_="0s",
            severity="warning",
            summary="Streams are getting no per-stream series (cardinality cap reached)",
            description=(
                "{{ $labels.instance }} refused per-stream series to {{ $value | humanize }}"
                f" streams in the last {window}: their viewers, peak and bitrate are not visible."
            ),
        ),
        Alert(
            name="StreamingMetricsInputsRejected",
            expr=f"increase({d.REJECTED_INPUTS.name}[{window}]) > 0",
            for_="0s",
            severity="info",
            summary="The metrics library is rejecting bad inputs",
            description=(
                "{{ $labels.instance }} rejected {{ $value | humanize }} metric updates with reason"
                f" {{{{ $labels.reason }}}} in the last {window}: a caller passes bad values."
            ),
        ),
    ]


def render_alert(alert: Alert, options: RenderOptions) -> Data:
    """One alert as a Prometheus rule object, with ``for_scale`` applied.

    Labels: ``severity``, the alert's own (``labels``), then the static rule labels.
    """
    rule: Data = {"alert": alert.name, "expr": alert.expr}
    scaled = options.scaled_for(alert.for_)
    if scaled != "0s":
        rule["for"] = scaled
    rule["labels"] = {"severity": alert.severity, **dict(alert.labels), **options.rule_labels}
    rule["annotations"] = {
        "summary": alert.summary,
        "description": alert.description,
        "runbook_url": f"{options.runbook_base_url}#{runbook_anchor(alert.name)}",
    }
    return rule


def alert_rules(options: RenderOptions) -> list[Data]:
    """The alerts as Prometheus rule objects, with ``for_scale`` applied."""
    return [render_alert(alert, options) for alert in alerts(options)]


def alert_group(options: RenderOptions) -> Data:
    """The alerts as one Prometheus rule group, evaluated every ``eval_interval``."""
    return {"name": ALERTS_GROUP, "interval": options.eval_interval, "rules": alert_rules(options)}
