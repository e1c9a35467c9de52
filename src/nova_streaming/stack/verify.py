"""``nova-streaming verify``: the guide's Integration Checklist, run against a live system.

Checks, each pass or fail with a reason: every scrape target up (and at least the
expected number of service replicas); every generated rule loaded and healthy; every
recording rule producing series; every panel query of both dashboards (the guide's and
the SLO dashboard) returning data; the alerts the scenario expects firing in Prometheus,
present in Alertmanager and delivered to the receiver; no other warning or critical
alert firing; the scenario's facts (PromQL that must return something); with a slow
broadcaster (degraded), that its stream leads the worst streams now (the dashboard
table's query and, given the service URL, ``GET /api/v1/streams?sort=lag``) and that
Prometheus' exemplar API returns latency exemplars naming it; and, from
``/api/v1/status/tsdb``, no metric with more series than the cardinality cap.

Example::

    >>> report = run_checks(VerifyConfig(prometheus_url="http://127.0.0.1:9090"))  # doctest: +SKIP
    >>> print(format_table(report))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nova_streaming.stack.dashboard_panels import (
    DASHBOARD_FILE,
    load_dashboard,
    panels_from_dashboard,
)
from nova_streaming.stack.prometheus import SERVICE_JOB
from nova_streaming.stack.receiver import firing_alert_names
from nova_streaming.stack.scenario import scenario
from streaming_metrics import definitions as d

SEVERE = ("warning", "critical")


@dataclass(frozen=True)
class Check:
    """One checklist item's outcome."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class VerifyConfig:
    """Where to look and what to expect.

    ``dashboard_path`` None: the committed dashboard if present, else rendered in memory.
    ``series_cap`` None: the sum of the replicas' ``max_tracked_streams`` gauges.
    ``service_url``: a replica's HTTP base URL, to check its worst-streams API too.
    """

    prometheus_url: str
    alertmanager_url: str | None = None
    receiver_url: str | None = None
    scenario: str = "healthy"
    replicas: int = 1
    job: str = SERVICE_JOB
    dashboard_path: Path | None = None
    window_minutes: float = 5.0
    series_cap: int | None = None
    timeout: float = 10.0
    expected_alerts: frozenset[str] | None = field(default=None)
    service_url: str | None = None


class _Api:
    def __init__(self, base: str, timeout: float) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")[:200]
            raise RuntimeError(f"GET {url}: HTTP {exc.code} {body}") from exc
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"GET {url}: {exc}") from exc
        if isinstance(data, dict) and data.get("status") == "error":
            raise RuntimeError(f"GET {url}: {data.get('error')}")
        return data


def _expected_rule_names() -> tuple[list[str], list[str]]:
    """(recording rule names, alert names) of the generated rules."""
    from nova_monitoring.options import RenderOptions
    from nova_monitoring.render import rules_file

    records: list[str] = []
    alerts: list[str] = []
    for group in rules_file(RenderOptions())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                records.append(str(rule["record"]))
            else:
                alerts.append(str(rule["alert"]))
    return records, alerts


def _dashboard(config: VerifyConfig) -> dict[str, Any]:
    path = config.dashboard_path or DASHBOARD_FILE
    if config.dashboard_path is None and not path.exists():
        from nova_monitoring.dashboard import dashboard_json

        loaded: dict[str, Any] = json.loads(dashboard_json())
        return loaded
    return load_dashboard(path)


def _slo_dashboard(config: VerifyConfig) -> dict[str, Any]:
    """The SLO dashboard beside the main one (committed file, else rendered in memory)."""
    from nova_monitoring.kubernetes import SLO_DASHBOARD_FILE

    path = (config.dashboard_path or DASHBOARD_FILE).with_name(SLO_DASHBOARD_FILE)
    if path.exists():
        return load_dashboard(path)
    from nova_monitoring.slo_dashboard import slo_dashboard_json

    loaded: dict[str, Any] = json.loads(slo_dashboard_json())
    return loaded


def _finite_values(result: list[dict[str, Any]]) -> int:
    count = 0
    for series in result:
        samples = series.get("values") or ([series["value"]] if "value" in series else [])
        for _t, raw in samples:
            try:
                if math.isfinite(float(raw)):
                    count += 1
            except (TypeError, ValueError):
                continue
    return count


def run_checks(config: VerifyConfig) -> list[Check]:
    """Run every check once; never raises for an unreachable component (it fails)."""
    prom = _Api(config.prometheus_url, config.timeout)
    checks: list[Check] = []

    def attempt(name: str, fn: Callable[[], tuple[bool, str]]) -> None:
        try:
            ok, detail = fn()
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            ok, detail = False, str(exc)
        checks.append(Check(name, ok, detail))

    # 1. Targets.
    def targets() -> tuple[bool, str]:
        active = prom.get("/api/v1/targets", state="active")["data"]["activeTargets"]
        down = [
            f"{t['labels'].get('job')}/{t['labels'].get('instance')}: {t.get('lastError')}"
            for t in active
            if t.get("health") != "up"
        ]
        service = [t for t in active if t["labels"].get("job") == config.job]
        service_up = [t for t in service if t.get("health") == "up"]
        if down:
            return False, "down: " + "; ".join(down)
        if len(service_up) < config.replicas:
            return False, f"{len(service_up)} {config.job} target(s) up, want {config.replicas}"
        return True, f"{len(active)} targets up ({len(service_up)} {config.job})"

    attempt("targets up", targets)

    # 2. Rules loaded and healthy.
    records, alert_names = _expected_rule_names()
    loaded: dict[str, dict[str, Any]] = {}

    def rules() -> tuple[bool, str]:
        for group in prom.get("/api/v1/rules")["data"]["groups"]:
            for rule in group["rules"]:
                loaded[str(rule["name"])] = rule
        missing = [n for n in records + alert_names if n not in loaded]
        unhealthy = [
            f"{n}: {loaded[n].get('health')} {loaded[n].get('lastError', '')}".strip()
            for n in records + alert_names
            if n in loaded and loaded[n].get("health") != "ok"
        ]
        if missing or unhealthy:
            return False, f"missing {missing}; not ok {unhealthy}"
        return True, f"{len(records)} recording rules, {len(alert_names)} alerts, all ok"

    attempt("rules loaded", rules)

    # 3. Every recording rule has series.
    for record in records:

        def has_series(record: str = record) -> tuple[bool, str]:
            result = prom.get("/api/v1/query", query=record)["data"]["result"]
            n = _finite_values(result)
            return n > 0, f"{len(result)} series" if n else "no series yet"

        attempt(f"recording rule {record} has series", has_series)

    # 4. Every panel query returns data.
    window = config.window_minutes * 60
    dashboards = (_dashboard(config), _slo_dashboard(config))
    for panel in (p for dash in dashboards for p in panels_from_dashboard(dash)):
        for target in panel.targets:

            def panel_data(expr: str = target.expr) -> tuple[bool, str]:
                end = time.time()
                result = prom.get(
                    "/api/v1/query_range",
                    query=expr,
                    start=f"{end - window:.3f}",
                    end=f"{end:.3f}",
                    step="5",
                )["data"]["result"]
                n = _finite_values(result)
                return n > 0, f"{len(result)} series, {n} points" if n else "no data"

            attempt(f"panel '{panel.title}' ({target.ref_id}) returns data", panel_data)

    # 5. Alerts.
    expected = (
        config.expected_alerts
        if config.expected_alerts is not None
        else scenario(config.scenario).expected_alerts
    )
    firing: dict[str, str] = {}

    def prom_alerts() -> tuple[bool, str]:
        for alert in prom.get("/api/v1/alerts")["data"]["alerts"]:
            if alert.get("state") == "firing":
                firing[alert["labels"]["alertname"]] = alert["labels"].get("severity", "")
        missing = sorted(expected - set(firing))
        if missing:
            return False, f"not firing: {', '.join(missing)} (firing: {sorted(firing) or 'none'})"
        return True, f"firing: {', '.join(sorted(firing)) or 'none'}"

    attempt(f"expected alerts firing ({config.scenario})", prom_alerts)

    def no_surprises() -> tuple[bool, str]:
        extra = sorted(n for n, sev in firing.items() if sev in SEVERE and n not in expected)
        return not extra, f"unexpected: {', '.join(extra)}" if extra else "none"

    attempt("no unexpected warning/critical alerts", no_surprises)

    if expected and config.alertmanager_url:
        am = _Api(config.alertmanager_url, config.timeout)

        def in_alertmanager() -> tuple[bool, str]:
            names = {a["labels"].get("alertname") for a in am.get("/api/v2/alerts")}
            missing = sorted(expected - names)
            return not missing, f"missing: {', '.join(missing)}" if missing else "all present"

        attempt("expected alerts reached Alertmanager", in_alertmanager)

    if expected and config.receiver_url:
        receiver = _Api(config.receiver_url, config.timeout)

        def in_receiver() -> tuple[bool, str]:
            notifications = receiver.get("/alerts")
            names = firing_alert_names(notifications)
            missing = sorted(expected - names)
            return (
                not missing,
                f"missing: {', '.join(missing)}"
                if missing
                else f"{len(notifications)} notifications",
            )

        attempt("expected alerts reached the receiver", in_receiver)

    # 6. Scenario facts.
    for fact, expr in scenario(config.scenario).facts:

        def holds(expr: str = expr) -> tuple[bool, str]:
            result = prom.get("/api/v1/query", query=expr)["data"]["result"]
            return bool(result), expr if result else f"no result for {expr}"

        attempt(fact, holds)

    # 7. The slow broadcaster: worst stream now, and named by the latency exemplars.
    slow_quality = scenario(config.scenario).slow_quality
    if slow_quality is not None:
        _slow_stream_checks(config, prom, slow_quality, attempt)

    # 8. Cardinality.
    def cardinality() -> tuple[bool, str]:
        cap = config.series_cap
        if cap is None:
            result = prom.get("/api/v1/query", query=f"sum({d.MAX_TRACKED_STREAMS.name})")
            values = result["data"]["result"]
            cap = int(float(values[0]["value"][1])) if values else d.DEFAULT_MAX_TRACKED_STREAMS
        stats = prom.get("/api/v1/status/tsdb")["data"]["seriesCountByMetricName"]
        if not stats:
            return False, "no series at all"
        worst = max(stats, key=lambda s: int(s["value"]))
        over = [f"{s['name']}={s['value']}" for s in stats if int(s["value"]) > cap]
        if over:
            return False, f"over the cap {cap}: {', '.join(over)}"
        return True, f"largest {worst['name']} = {worst['value']} series (cap {cap})"

    attempt("series per metric under the cardinality cap", cardinality)
    return checks


def _slow_stream_checks(
    config: VerifyConfig,
    prom: _Api,
    quality: str,
    attempt: Callable[[str, Callable[[], tuple[bool, str]]], None],
) -> None:
    """The slow broadcaster's stream (the one publishing ``quality``) leads the worst
    streams and its slow frames' exemplars reached Prometheus' exemplar API."""
    bitrate = d.QUALITY_BITRATE_KBPS.name
    lag = d.STREAM_INGEST_LAG_SECONDS.name

    def slow_stream() -> str:
        result = prom.get(
            "/api/v1/query", query=f'max by (stream_id) ({bitrate}{{quality="{quality}"}})'
        )["data"]["result"]
        ids = sorted({str(r["metric"]["stream_id"]) for r in result})
        if len(ids) != 1:
            raise RuntimeError(f"want one stream publishing {quality}, found {ids or 'none'}")
        return ids[0]

    def worst_first() -> tuple[bool, str]:
        sid = slow_stream()
        result = prom.get("/api/v1/query", query=f"topk(1, max by (stream_id) ({lag}))")
        top = result["data"]["result"]
        if not top:
            return False, f"no {lag} series"
        first, value = str(top[0]["metric"]["stream_id"]), float(top[0]["value"][1])
        return first == sid, f"worst {first} at {value:.2f} s; slow stream {sid}"

    attempt(f"slow stream ({quality}) leads the worst streams", worst_first)

    def exemplar() -> tuple[bool, str]:
        sid = slow_stream()
        end = time.time()
        data = prom.get(
            "/api/v1/query_exemplars",
            query=f"{d.RTMP_INGESTION_LATENCY_SECONDS.name}_bucket",
            start=f"{end - config.window_minutes * 60:.3f}",
            end=f"{end:.3f}",
        )["data"]
        named = [
            float(ex["value"])
            for group in data or []
            for ex in group.get("exemplars") or []
            if ex.get("labels", {}).get("stream_id") == sid
        ]
        if not named:
            return False, f"no latency exemplar names {sid}"
        return True, f"{len(named)} exemplars name {sid} (slowest {max(named):.2f} s)"

    attempt(f"slow stream ({quality}) in the latency exemplars", exemplar)

    if config.service_url:
        service = _Api(config.service_url, config.timeout)

        def api_first() -> tuple[bool, str]:
            sid = slow_stream()
            streams = service.get("/api/v1/streams", sort="lag", limit="1")["streams"]
            if not streams:
                return False, "no stream listed"
            first = streams[0]
            return (
                first["stream_id"] == sid,
                f"first {first['stream_id']} at {first.get('ingest_lag_seconds')} s",
            )

        attempt(f"slow stream ({quality}) first in /api/v1/streams?sort=lag", api_first)


def verify(
    config: VerifyConfig,
    *,
    wait: float = 0.0,
    interval: float = 5.0,
    progress: Callable[[list[Check]], None] | None = None,
) -> list[Check]:
    """Run the checks, retrying every ``interval`` until all pass or ``wait`` seconds pass."""
    deadline = time.monotonic() + wait
    while True:
        checks = run_checks(config)
        if all(c.ok for c in checks) or time.monotonic() + interval > deadline:
            return checks
        if progress is not None:
            progress(checks)
        time.sleep(interval)


def format_table(checks: list[Check], width: int = 100) -> str:
    """A plain-text PASS/FAIL table.

    Example::

        >>> print(format_table([Check("targets up", True, "2 targets up")]))
        PASS  targets up  2 targets up
        1 passed, 0 failed
    """
    name_width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        detail = c.detail if len(c.detail) <= width else c.detail[: width - 3] + "..."
        lines.append(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<{name_width}}  {detail}")
    passed = sum(c.ok for c in checks)
    lines.append(f"{passed} passed, {len(checks) - passed} failed")
    return "\n".join(lines)
