"""The preview reads the committed dashboard JSON: the panels of the designed kinds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nova_streaming.stack.dashboard_panels import load_dashboard, panels_from_dashboard
from nova_streaming.stack.preview import expand_variables, legend_name

REPO = Path(__file__).resolve().parents[3]


def test_committed_dashboard_gives_five_panels_of_the_designed_kinds() -> None:
    """Titles, chart kinds, units and thresholds come straight from the dashboard JSON."""
    panels = panels_from_dashboard(
        load_dashboard(REPO / "k8s/monitoring/grafana-streaming-dashboard.json")
    )
    kinds = {p.title: p.kind for p in panels}
    assert kinds == {
        "Active Streaming Sessions": "lines",
        "Peak Viewers Distribution": "pie",
        "Current Viewer Count": "stat",
        "Broadcast Error Rate": "stacked-bars",
        "RTMP Ingestion Latency": "lines",
        "Worst streams now": "table",
    } | {p.title: p.kind for p in panels if p.row}  # rows other work adds (the SLO row)
    stat = next(p for p in panels if p.kind == "stat")
    assert [(t.value, t.color) for t in stat.thresholds] == [
        (None, "green"),
        (100.0, "yellow"),
        (1000.0, "red"),
    ]
    latency = next(p for p in panels if p.title == "RTMP Ingestion Latency")
    assert latency.targets[0].exemplar and not latency.targets[0].instant
    table = next(p for p in panels if p.kind == "table")
    assert [(t.ref_id, t.instant) for t in table.targets] == [("A", True), ("B", True)]
    assert table.rename == {"Value #A": "p95 lag", "Value #B": "drops (5m)"}
    assert latency.unit == "ms"
    errors = next(p for p in panels if p.kind == "stacked-bars")
    assert (errors.unit, errors.axis_label) == ("suffix: errors/s", "errors/s")
    assert latency.targets[0].expr.startswith("histogram_quantile(0.95,")


def test_rows_are_flattened_and_targets_without_expr_skipped() -> None:
    """Panels nested in a row count as panels; a target with no expr is not a query."""
    dash = {
        "panels": [
            {"type": "row", "panels": [{"title": "a", "type": "barchart", "targets": []}]},
            {"title": "b", "type": "gauge", "targets": [{"refId": "A"}, {"expr": "up"}]},
        ]
    }
    panels = panels_from_dashboard(dash)
    assert [(p.title, p.kind) for p in panels] == [("a", "stacked-bars"), ("b", "stat")]
    assert [t.expr for t in panels[1].targets] == ["up"]


def test_open_rows_mappings_tables_and_query_options() -> None:
    """Panels after an open row belong to it; value mappings, a table's renames and its
    instant targets, and a target's exemplar flag reach the preview."""
    mapping = {"type": "range", "options": {"from": 1000, "to": None, "result": {"text": ">= 1 s"}}}
    dash = {
        "panels": [
            {"title": "top", "type": "timeseries", "targets": [{"expr": "x", "exemplar": True}]},
            {"type": "row", "title": "SLOs", "collapsed": False, "panels": []},
            {
                "title": "budget",
                "type": "stat",
                "fieldConfig": {"defaults": {"mappings": [mapping], "decimals": 2, "max": 1}},
                "targets": [{"expr": "y", "instant": True, "range": False}],
            },
            {
                "title": "worst",
                "type": "table",
                "targets": [{"expr": "z", "refId": "A", "instant": True}],
                "transformations": [
                    {"id": "merge", "options": {}},
                    {"id": "organize", "options": {"renameByName": {"Value #A": "lag"}}},
                ],
            },
        ]
    }
    top, budget, worst = panels_from_dashboard(dash)
    assert (top.row, budget.row, worst.row) == ("", "SLOs", "SLOs")
    assert top.targets[0].exemplar and not top.targets[0].instant
    assert budget.mappings == (mapping,) and budget.decimals == 2 and budget.max == 1.0
    assert budget.targets[0].instant
    assert worst.kind == "table" and worst.rename == {"Value #A": "lag"}
    assert worst.as_json()["rename"] == {"Value #A": "lag"}


def test_missing_or_malformed_dashboard_fails_clearly(tmp_path: Path) -> None:
    """A missing file says how to generate it; a file without panels says so."""
    with pytest.raises(FileNotFoundError, match="make generate"):
        load_dashboard(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"title": "x"}))
    with pytest.raises(ValueError, match="no panels"):
        load_dashboard(bad)


def test_grafana_variables_and_legends_are_expanded() -> None:
    """$__rate_interval / $__interval and {{label}} legends render as Grafana would."""
    assert expand_variables("rate(x[$__rate_interval]) + y[$__interval]", 15, "1m") == (
        "rate(x[1m]) + y[15s]"
    )
    assert legend_name("{{error_type}}/{{missing}}", {"error_type": "timeout"}, "e") == "timeout/"
    assert legend_name("__auto", {"b": "2", "a": "1"}, "e") == '{a="1", b="2"}'
