"""The dashboard preview, opened in headless Chromium against a real Prometheus."""

from __future__ import annotations

import html
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from nova_streaming.stack.dashboard_panels import (
    DASHBOARD_FILE,
    load_dashboard,
    panels_from_dashboard,
)
from nova_streaming.stack.preview import start_preview
from nova_streaming.stack.receiver import start_receiver

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}",
        *args,
    ]  # fmt: skip
    # start_new_session: a timeout kill takes Chromium's helper processes with it.
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                import os
                import signal

                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _panel_attrs(dom: str) -> list[dict[str, str]]:
    panels = []
    for tag in re.findall(r'<section class="panel[^"]*"[^>]*>', dom):
        panels.append(dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', tag)))
    return panels


# The panels the synthetic exporter feeds (an SLO row added by other work may need
# history this short test does not have: its panels must draw, with or without data).
FED = {
    "Active Streaming Sessions",
    "Peak Viewers Distribution",
    "Current Viewer Count",
    "Broadcast Error Rate",
    "RTMP Ingestion Latency",
    "Worst streams now",
}


def test_preview_draws_every_panel_with_uplot_in_chromium(
    synthetic_exporter: Any, prometheus: Any, tmp_path: Path
) -> None:
    """Every dashboard panel draws from Prometheus (uPlot canvases for the charts, the
    worst-streams table, the latency exemplars naming the slow stream); uPlot comes
    from node_modules through the preview; a screenshot is kept in artifacts/."""
    # The committed dashboard; its latency panel with a ">= 1 s" value mapping at the
    # histogram's cap (1000 ms) if it has none yet, so the page must honour mappings.
    raw = load_dashboard(REPO / DASHBOARD_FILE)
    cap_text = ">= 1 s"
    for panel in raw["panels"]:
        if panel.get("title") == "RTMP Ingestion Latency":
            mappings = panel["fieldConfig"]["defaults"].setdefault("mappings", [])
            if not mappings:
                mappings.append(
                    {
                        "type": "range",
                        "options": {"from": 1000, "to": None, "result": {"text": cap_text}},
                    }
                )
            cap_text = next(
                m["options"]["result"]["text"]
                for m in mappings
                if m.get("type") == "range" and (m["options"].get("result") or {}).get("text")
            )
    dashboard = tmp_path / "dashboard.json"
    dashboard.write_text(json.dumps(raw))
    panels = panels_from_dashboard(load_dashboard(dashboard))
    assert {p.title for p in panels} >= FED
    fed = [p for p in panels if p.title in FED]
    latency = next(p for p in panels if p.title == "RTMP Ingestion Latency")
    stat_panel = next(p for p in panels if p.title == "Current Viewer Count")
    slow = synthetic_exporter.streams[1]
    with (
        start_receiver(0) as receiver,
        start_preview(
            0,
            dashboard_path=dashboard,
            prometheus_url=prometheus.url,
            receiver_url=receiver.url,
            refresh_seconds=2.0,
            rate_interval="30s",
        ) as preview,
    ):
        alert = {
            "receiver": "slack-streaming",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "StreamingHighErrorRate", "severity": "warning"},
                    "annotations": {"summary": "Broadcast errors exceed 10% of frames"},
                }
            ],
        }
        request = urllib.request.Request(
            f"{receiver.webhook_url}/slack-streaming",
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()
        with urllib.request.urlopen(f"{preview.url}vendor/uPlot.iife.min.js", timeout=10) as js:
            assert b"uPlot" in js.read()

        def all_panels_have_data() -> bool:
            for panel in fed:
                data = _get(f"{preview.url}api/panels/{panel.index}?minutes=5")
                if not any(p[1] is not None for s in data["series"] for p in s["points"]):
                    return False
            # The page's range (5 min here): the stat's sparkline needs two points.
            spark = _get(f"{preview.url}api/panels/{stat_panel.index}?minutes=5")["series"]
            if sum(p[1] is not None for s in spark for p in s["points"]) < 2:
                return False
            exemplars = _get(f"{preview.url}api/panels/{latency.index}?minutes=5")["exemplars"]
            return any(e["labels"].get("stream_id") == slow for e in exemplars)

        _wait_until(all_panels_have_data, 60, "Prometheus data and exemplars behind the panels")

        flags = ["--window-size=1400,1900", "--virtual-time-budget=15000"]
        page = f"{preview.url}?minutes=5"
        dom = _chromium(tmp_path, *flags, "--dump-dom", page).stdout
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "preview.png"
        shot.unlink(missing_ok=True)
        _chromium(tmp_path, *flags, f"--screenshot={shot}", page)

    assert 'data-ready="true"' in dom, dom[-2000:]
    attrs = {a["data-panel-title"]: a for a in _panel_attrs(dom)}
    assert list(attrs) == [p.title for p in panels]
    for panel in panels:
        attr = attrs[panel.title]
        assert attr["data-state"] == "ok", attr
        assert attr["data-panel-kind"] == panel.kind
        if panel.kind in ("lines", "bars", "stacked-bars"):
            assert attr["data-uplot"] == "true", attr  # a uPlot chart with its canvas
    for panel in fed:
        attr = attrs[panel.title]
        assert attr["data-has-data"] == "true", attr
        assert int(attr["data-series-count"]) >= 1, attr
    kinds = sorted(attrs[t]["data-panel-kind"] for t in FED)
    assert kinds == ["lines", "lines", "pie", "stacked-bars", "stat", "table"]
    assert dom.count('class="uplot') >= 3 and "<canvas" in dom
    stat = attrs["Current Viewer Count"]
    # 3 + 4 viewers: under 100, so the stat's threshold colour is the base green.
    assert float(stat["data-last-value"]) == 7.0
    assert stat["data-threshold-color"] == "#73bf69"
    assert stat["data-uplot"] == "true"  # its sparkline
    # The latency panel's exemplar points name the slow stream (never the other one).
    lat = attrs["RTMP Ingestion Latency"]
    assert int(lat["data-exemplar-count"]) >= 1, lat
    assert lat["data-exemplar-streams"] == slow, lat
    assert f'data-stream-id="{slow}"' in dom
    # The slow stream's frames put the p95 in +Inf: histogram_quantile reads the 1 s cap,
    # which the mapping shows as ">= 1 s".
    assert html.unescape(lat["data-last-text"]) == cap_text, lat
    # Worst streams now: the slow stream first, both streams listed with region/quality.
    table = attrs["Worst streams now"]
    assert table["data-first-row"] == slow and table["data-row-count"] == "2", table
    assert "<th>p95 lag</th>" in dom and "<th>drops (5m)</th>" in dom
    assert "3.20 s" in dom and "480p" in dom
    assert 'data-alertname="StreamingHighErrorRate"' in dom
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
