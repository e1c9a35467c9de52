"""The dashboard preview, opened in headless Chromium against a real Prometheus."""

from __future__ import annotations

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
    for tag in re.findall(r'<section class="panel"[^>]*>', dom):
        panels.append(dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', tag)))
    return panels


def test_preview_draws_every_panel_with_data_in_chromium(prometheus: Any, tmp_path: Path) -> None:
    """All five dashboard panels render with data from Prometheus; a screenshot is kept."""
    dashboard = REPO / DASHBOARD_FILE
    panels = panels_from_dashboard(load_dashboard(dashboard))
    assert len(panels) == 5
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

        def all_panels_have_data() -> bool:
            for panel in panels:
                data = _get(f"{preview.url}api/panels/{panel.index}?minutes=5")
                if not any(p[1] is not None for s in data["series"] for p in s["points"]):
                    return False
            return True

        _wait_until(all_panels_have_data, 60, "Prometheus data behind every panel")

        flags = ["--window-size=1400,1000", "--virtual-time-budget=15000"]
        dom = _chromium(tmp_path, *flags, "--dump-dom", preview.url).stdout
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "preview.png"
        shot.unlink(missing_ok=True)
        _chromium(tmp_path, *flags, f"--screenshot={shot}", preview.url)

    assert 'data-ready="true"' in dom, dom[-2000:]
    attrs = _panel_attrs(dom)
    assert [a["data-panel-title"] for a in attrs] == [p.title for p in panels]
    for panel, attr in zip(panels, attrs, strict=True):
        assert attr["data-state"] == "ok", attr
        assert attr["data-has-data"] == "true", attr
        assert int(attr["data-series-count"]) >= 1, attr
        assert attr["data-panel-kind"] == panel.kind
    kinds = {a["data-panel-title"]: a["data-panel-kind"] for a in attrs}
    assert sorted(kinds.values()) == ["lines", "lines", "pie", "stacked-bars", "stat"]
    stat = next(a for a in attrs if a["data-panel-kind"] == "stat")
    # 3 + 4 viewers: under 100, so the stat's threshold colour is the base green.
    assert float(stat["data-last-value"]) == 7.0
    assert stat["data-threshold-color"] == "#73bf69"
    assert 'data-alertname="StreamingHighErrorRate"' in dom
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
