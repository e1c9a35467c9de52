"""The preview server's own routes: uPlot served from node_modules, the page uses it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from nova_streaming.stack._preview_page import PAGE
from nova_streaming.stack.preview import start_preview, uplot_dir

DASHBOARD = {"title": "t", "uid": "u", "panels": [{"title": "a", "type": "timeseries"}]}


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_uplot_is_served_from_node_modules(tmp_path: Path) -> None:
    """/vendor/ serves the pinned uPlot that scripts/setup installed (npm ci)."""
    installed = json.loads((uplot_dir().parent / "package.json").read_text())
    pinned = json.loads((Path(__file__).resolve().parents[3] / "package.json").read_text())
    assert installed["version"] == pinned["dependencies"]["uplot"]
    dashboard = tmp_path / "dash.json"
    dashboard.write_text(json.dumps(DASHBOARD))
    with start_preview(0, dashboard_path=dashboard, prometheus_url="http://127.0.0.1:9") as p:
        status, body = _fetch(f"{p.url}vendor/uPlot.iife.min.js")
        assert status == 200 and body == (uplot_dir() / "uPlot.iife.min.js").read_bytes()
        status, body = _fetch(f"{p.url}vendor/uPlot.min.css")
        assert status == 200 and b".uplot" in body
        status, _ = _fetch(f"{p.url}vendor/../package.json")
        assert status == 404
        status, page = _fetch(p.url)
        assert status == 200 and b'<script src="/vendor/uPlot.iife.min.js">' in page


def test_missing_uplot_says_how_to_install_it(tmp_path: Path) -> None:
    """Without node_modules the vendor route answers 503 naming scripts/setup."""
    dashboard = tmp_path / "dash.json"
    dashboard.write_text(json.dumps(DASHBOARD))
    with start_preview(
        0, dashboard_path=dashboard, prometheus_url="http://127.0.0.1:9", assets_dir=tmp_path
    ) as p:
        status, body = _fetch(f"{p.url}vendor/uPlot.iife.min.js")
    assert status == 503 and b"scripts/setup" in body


@pytest.mark.parametrize("gone", ["createElementNS", "svg:path", "niceScale"])
def test_hand_written_svg_charts_are_gone(gone: str) -> None:
    """The page draws with uPlot; the old SVG chart code is not there any more."""
    assert gone not in PAGE
    assert "new uPlot(" in PAGE
