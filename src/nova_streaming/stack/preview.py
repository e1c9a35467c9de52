"""Dashboard preview: the Grafana dashboard's panels drawn from their own queries.

Grafana is not packaged here, so the stack serves a small page (default
http://127.0.0.1:3000) that reads the generated dashboard JSON and draws each panel
from the panel's own targets, run against the local Prometheus through this server
(``query_range``; an instant query for instant targets such as a table's; the
exemplar API for targets with exemplars on), with the panel's kind of chart, unit,
thresholds and value mappings; plus the alerts Alertmanager delivered to the local
receiver. Only the dashboard's own queries can be run through it (by panel and target
index), never arbitrary PromQL.

Charts are drawn with uPlot (the library Grafana's time series use), installed by
``scripts/setup`` from the pinned ``package.json`` into ``node_modules`` and served
from there (no CDN: the page works offline): hover values, crosshair, series toggling
(click a legend entry) and exemplar points that name their stream.

Routes: ``/`` (the page), ``/vendor/uPlot.iife.min.js``, ``/vendor/uPlot.min.css``,
``/api/dashboard``, ``/api/panels/<i>?minutes=N``, ``/api/alerts``, ``/healthz``.

Example::

    >>> dash = Path("k8s/monitoring/grafana-streaming-dashboard.json")
    >>> preview = start_preview(0, dashboard_path=dash, prometheus_url="http://127.0.0.1:9090")
    >>> preview.url.startswith("http://127.0.0.1:")
    True
    >>> preview.close()
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from nova_streaming.stack._http import QuietHandler, ServingThread
from nova_streaming.stack._preview_page import PAGE
from nova_streaming.stack.dashboard_panels import Panel, load_dashboard, panels_from_dashboard

UPLOT_ENV = "NOVA_PREVIEW_ASSETS"
"""Environment variable: a directory holding uPlot's dist files, instead of the
repository's ``node_modules/uplot/dist``."""
VENDOR_FILES = {
    "/vendor/uPlot.iife.min.js": ("uPlot.iife.min.js", "application/javascript"),
    "/vendor/uPlot.min.css": ("uPlot.min.css", "text/css"),
}
MAX_EXEMPLARS = 500
DEFAULT_MINUTES = 15
MAX_MINUTES = 24 * 60
# About this many points per series: enough for a chart, cheap for Prometheus.
_POINTS = 180
_LEGEND_RE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class PreviewConfig:
    """Where the preview reads the dashboard, the metrics and the alerts."""

    dashboard_path: Path
    prometheus_url: str
    receiver_url: str | None = None
    refresh_seconds: float = 10.0
    rate_interval: str = "1m"
    timeout: float = 10.0
    assets_dir: Path | None = None


class PreviewError(RuntimeError):
    """A query behind a panel failed; the message says which and why."""


def expand_variables(expr: str, step_seconds: float, rate_interval: str) -> str:
    """Replace the Grafana variables a Prometheus query may hold.

    Example::

        >>> expand_variables("rate(x[$__rate_interval])", 15, "1m")
        'rate(x[1m])'
    """
    interval = f"{max(1, round(step_seconds))}s"
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("${__rate_interval}", rate_interval)
        .replace("$__interval", interval)
        .replace("${__interval}", interval)
    )


def legend_name(legend: str, labels: Mapping[str, str], expr: str) -> str:
    """A series name as Grafana would show it from ``legendFormat``.

    Example::

        >>> legend_name("{{region}}", {"region": "eu"}, "sum(x)")
        'eu'
        >>> legend_name("", {}, "sum(x)")
        'sum(x)'
    """
    if legend and legend != "__auto":
        return _LEGEND_RE.sub(lambda m: labels.get(m.group(1), ""), legend)
    if labels:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return expr


def uplot_dir() -> Path:
    """Where uPlot's dist files are: ``$NOVA_PREVIEW_ASSETS``, else the repository's
    (or the working directory's) ``node_modules/uplot/dist``.

    Example::

        >>> uplot_dir().name
        'dist'
    """
    given = os.environ.get(UPLOT_ENV)
    if given:
        return Path(given)
    for root in (Path(__file__).resolve().parents[3], Path.cwd()):
        candidate = root / "node_modules" / "uplot" / "dist"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[3] / "node_modules" / "uplot" / "dist"


def exemplar_scale(panel: Panel, series_name: str) -> float:
    """Exemplars carry the histogram's unit (seconds); a panel drawing the quantile in
    milliseconds (``* 1000``, unit ``ms``) shows them in milliseconds too.

    Example::

        >>> exemplar_scale(Panel(0, "", "timeseries", "lines", "ms", (), "off", ()),
        ...                "x_seconds_bucket")
        1000.0
    """
    if panel.unit == "ms" and series_name.endswith("_seconds_bucket"):
        return 1000.0
    return 1.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: PreviewConfig) -> None:
        self.config = config
        super().__init__(address, _Handler)

    def panels(self) -> list[Panel]:
        # Read on every request: a regenerated dashboard shows without a restart.
        return panels_from_dashboard(load_dashboard(self.config.dashboard_path))


class _Handler(QuietHandler):
    server: _Server
    log_name = "preview"
    extra_headers = (("Cache-Control", "no-store"),)
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query)
        path = parsed.path
        try:
            if path in ("/", "/index.html"):
                page = PAGE.replace(
                    "__REFRESH_MS__", str(int(self.server.config.refresh_seconds * 1000))
                )
                self.reply(200, page.encode(), "text/html; charset=utf-8")
            elif path == "/healthz":
                self.reply(200, b"ok\n", "text/plain")
            elif path in VENDOR_FILES:
                self._vendor(path)
            elif path == "/api/dashboard":
                self._json(200, self._dashboard())
            elif path.startswith("/api/panels/"):
                index = int(path.rsplit("/", 1)[1])
                minutes = float(query.get("minutes", [str(DEFAULT_MINUTES)])[0])
                if not 0 < minutes <= MAX_MINUTES or not math.isfinite(minutes):
                    raise ValueError(f"minutes must be in (0, {MAX_MINUTES}]")
                self._json(200, self._panel_data(index, minutes))
            elif path == "/api/alerts":
                self._json(200, self._alerts())
            else:
                self.reply(404, b"not found\n", "text/plain")
        except (ValueError, IndexError) as exc:
            self._json(400, {"error": str(exc)})
        except (PreviewError, OSError) as exc:
            self._json(502, {"error": str(exc)})

    def _vendor(self, path: str) -> None:
        name, content_type = VENDOR_FILES[path]
        directory = self.server.config.assets_dir or uplot_dir()
        try:
            body = (directory / name).read_bytes()
        except OSError:
            message = (
                f"{directory / name} missing: run ./scripts/setup (npm ci installs uPlot "
                f"from package-lock.json) or set {UPLOT_ENV}\n"
            )
            self.reply(503, message.encode(), "text/plain; charset=utf-8")
            return
        self.reply(200, body, content_type)

    def _dashboard(self) -> dict[str, Any]:
        raw = load_dashboard(self.server.config.dashboard_path)
        return {
            "title": raw.get("title", ""),
            "uid": raw.get("uid", ""),
            "source": str(self.server.config.dashboard_path),
            "prometheus": self.server.config.prometheus_url,
            "panels": [panel.as_json() for panel in panels_from_dashboard(raw)],
        }

    def _panel_data(self, index: int, minutes: float) -> dict[str, Any]:
        panels = self.server.panels()
        if not 0 <= index < len(panels):
            raise IndexError(f"no panel {index}: the dashboard has {len(panels)}")
        panel = panels[index]
        end = time.time()
        start = end - minutes * 60
        step = max(1.0, round(minutes * 60 / _POINTS))
        config = self.server.config
        series: list[dict[str, Any]] = []
        exemplars: list[dict[str, Any]] = []
        for target in panel.targets:
            expr = expand_variables(target.expr, step, config.rate_interval)
            if target.instant:
                result = query_instant(config.prometheus_url, expr, end, timeout=config.timeout)
            else:
                result = query_range(
                    config.prometheus_url, expr, start, end, step, timeout=config.timeout
                )
            for item in result:
                labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
                values = item.get("values") or ([item["value"]] if "value" in item else [])
                series.append(
                    {
                        "name": legend_name(target.legend, labels, expr),
                        "refId": target.ref_id,
                        "instant": target.instant,
                        "labels": labels,
                        "points": [[float(t), _number(v)] for t, v in values],
                    }
                )
            if target.exemplar:
                exemplars.extend(self._exemplars(panel, expr, start, end))
        exemplars.sort(key=lambda e: e["t"])
        return {
            "panel": panel.as_json(),
            "start": start,
            "end": end,
            "step": step,
            "series": series,
            "exemplars": exemplars[-MAX_EXEMPLARS:],
        }

    def _exemplars(self, panel: Panel, expr: str, start: float, end: float) -> list[Any]:
        config = self.server.config
        found = []
        for group in query_exemplars(
            config.prometheus_url, expr, start, end, timeout=config.timeout
        ):
            series_labels = {str(k): str(v) for k, v in (group.get("seriesLabels") or {}).items()}
            scale = exemplar_scale(panel, series_labels.get("__name__", ""))
            for exemplar in group.get("exemplars") or []:
                value = _number(exemplar.get("value"))
                if value is None:
                    continue
                found.append(
                    {
                        "t": float(exemplar.get("timestamp", 0.0)),
                        "value": value * scale,
                        "labels": {
                            str(k): str(v) for k, v in (exemplar.get("labels") or {}).items()
                        },
                        "series": series_labels,
                    }
                )
        return found

    def _alerts(self) -> dict[str, Any]:
        url = self.server.config.receiver_url
        if not url:
            return {"receiver": None, "alerts": []}
        notifications = _get_json(f"{url.rstrip('/')}/alerts", self.server.config.timeout)
        latest: dict[str, dict[str, Any]] = {}
        for notification in notifications if isinstance(notifications, list) else []:
            for alert in notification.get("alerts") or []:
                labels = alert.get("labels") or {}
                key = json.dumps(labels, sort_keys=True)
                latest[key] = {
                    "alertname": labels.get("alertname", "?"),
                    "severity": labels.get("severity", ""),
                    "status": alert.get("status", "?"),
                    "receiver": notification.get("receiver", ""),
                    "startsAt": alert.get("startsAt", ""),
                    "received_at": notification.get("received_at"),
                    "summary": (alert.get("annotations") or {}).get("summary", ""),
                    "labels": labels,
                }
        alerts = sorted(latest.values(), key=lambda a: (a["status"] != "firing", a["alertname"]))
        return {"receiver": url, "alerts": alerts}

    def _json(self, status: int, data: Any) -> None:
        self.reply(status, json.dumps(data, allow_nan=False).encode(), "application/json")


def _number(value: Any) -> float | None:
    """A Prometheus sample value as a JSON-safe number (NaN and infinities: None)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _get_json(url: str, timeout: float) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise PreviewError(f"{url}: HTTP {exc.code}: {detail}") from exc
    except (OSError, ValueError) as exc:
        raise PreviewError(f"{url}: {exc}") from exc


def query_range(
    prometheus_url: str, expr: str, start: float, end: float, step: float, *, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Run ``expr`` as a range query; the ``result`` list (matrix) of Prometheus' answer.

    Example::

        >>> query_range("http://127.0.0.1:9090", "up", 0, 60, 15)  # doctest: +SKIP
        [{'metric': {...}, 'values': [[0, '1'], ...]}]
    """
    params = urllib.parse.urlencode(
        {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    )
    data = _get_json(f"{prometheus_url.rstrip('/')}/api/v1/query_range?{params}", timeout)
    if not isinstance(data, dict) or data.get("status") != "success":
        raise PreviewError(f"query {expr!r} failed: {data}")
    result = data["data"]["result"]
    return list(result) if isinstance(result, list) else []


def query_instant(
    prometheus_url: str, expr: str, at: float, *, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Run ``expr`` as an instant query at ``at``; the ``result`` list (vector).

    Example::

        >>> query_instant("http://127.0.0.1:9090", "up", 60)  # doctest: +SKIP
        [{'metric': {...}, 'value': [60, '1']}]
    """
    params = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    data = _get_json(f"{prometheus_url.rstrip('/')}/api/v1/query?{params}", timeout)
    if not isinstance(data, dict) or data.get("status") != "success":
        raise PreviewError(f"query {expr!r} failed: {data}")
    result = data["data"]["result"]
    return list(result) if isinstance(result, list) else []


def query_exemplars(
    prometheus_url: str, expr: str, start: float, end: float, *, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The exemplars of ``expr``'s series in ``[start, end]`` (Prometheus' exemplar API:
    empty unless it runs with ``--enable-feature=exemplar-storage``).

    Example::

        >>> query_exemplars("http://127.0.0.1:9090", "x_bucket", 0, 60)  # doctest: +SKIP
        [{'seriesLabels': {...}, 'exemplars': [{'labels': {...}, 'value': '0.4', ...}]}]
    """
    params = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"})
    url = f"{prometheus_url.rstrip('/')}/api/v1/query_exemplars?{params}"
    data = _get_json(url, timeout)
    if not isinstance(data, dict) or data.get("status") != "success":
        raise PreviewError(f"exemplars of {expr!r} failed: {data}")
    result = data.get("data")
    return list(result) if isinstance(result, list) else []


class Preview(ServingThread):
    """A running preview server; see :func:`start_preview`."""

    def __init__(self, server: _Server) -> None:
        super().__init__(server)
        self.url = f"http://127.0.0.1:{self.port}/"


def start_preview(
    port: int,
    *,
    dashboard_path: Path,
    prometheus_url: str,
    receiver_url: str | None = None,
    host: str = "127.0.0.1",
    refresh_seconds: float = 10.0,
    rate_interval: str = "1m",
    assets_dir: Path | None = None,
) -> Preview:
    """Serve the preview on ``host:port`` (0: a free port) from a daemon thread.

    The dashboard JSON is read (and checked) now, so a missing file fails at start.
    ``assets_dir``: uPlot's dist directory (default :func:`uplot_dir`).
    """
    load_dashboard(dashboard_path)
    if refresh_seconds <= 0:
        raise ValueError(f"preview: refresh_seconds must be > 0, got {refresh_seconds}")
    config = PreviewConfig(
        dashboard_path=dashboard_path.resolve(),
        prometheus_url=prometheus_url,
        receiver_url=receiver_url,
        refresh_seconds=refresh_seconds,
        rate_interval=rate_interval,
        assets_dir=assets_dir,
    )
    return Preview(_Server((host, port), config))
