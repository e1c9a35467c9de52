"""The committed Grafana dashboard: structure, and every panel query evaluated by promtool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.models import dashboard as sdk_dashboard

from nova_monitoring.dashboard import panel_queries
from nova_monitoring.render import FILES

S1 = "11111111-1111-4111-8111-111111111111"
S2 = "22222222-2222-4222-8222-222222222222"
S3 = "33333333-3333-4333-8333-333333333333"
WORST = "Worst streams now"

# What each panel's query returns at 10m on the two-replica series of
# recording-test.yml (see the comments there), in query order.
PANEL_EXPECTATIONS: list[tuple[str, list[tuple[str, float]]]] = [
    # eu-west: 1 stream on a; us-east: 1 on a + 1 on b.
    ("Active Streaming Sessions", [('{region="eu-west"}', 1), ('{region="us-east"}', 2)]),
    # One slice per stream, its owner's peak (max: a hand-over never doubles it).
    (
        "Peak Viewers Distribution",
        [
            (f'{{stream_id="{S1}"}}', 80),
            (f'{{stream_id="{S2}"}}', 25),
            (f'{{stream_id="{S3}"}}', 3),
        ],
    ),
    # 30 + 20 viewers of 1111, 10 + 5 of 2222, 0 of 3333, over both replicas.
    ("Current Viewer Count", [("{}", 65)]),
    # frame_drop: 1/s on a + 2/s on b; timeout: 0.5/s on b.
    ("Broadcast Error Rate", [('{error_type="frame_drop"}', 3), ('{error_type="timeout"}', 0.5)]),
    # Every frame in the (50 ms, 100 ms] bucket: p95 = 50 + 0.95 * 50 = 97.5 ms.
    ("RTMP Ingestion Latency", [("{}", 97.5)]),
    # Its second query: no frame over 1 s (a matcher missing le="1.0" would read 100%).
    ("RTMP Ingestion Latency", [("{}", 0)]),
]


def _dashboard(committed: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((committed / FILES["dashboard"]).read_text())
    return loaded


def test_dashboard_has_the_five_panels_of_the_design(committed: Path) -> None:
    """Titles, types, ids and the stacked-bars style are the design's five panels, in order,
    then the worst-streams table (design section 10)."""
    panels = _dashboard(committed)["panels"]
    assert [(p["id"], p["title"], p["type"]) for p in panels] == [
        (1, "Active Streaming Sessions", "timeseries"),
        (2, "Peak Viewers Distribution", "piechart"),
        (3, "Current Viewer Count", "stat"),
        (4, "Broadcast Error Rate", "timeseries"),
        (5, "RTMP Ingestion Latency", "timeseries"),
        (6, WORST, "table"),
    ]
    bars = panels[3]["fieldConfig"]["defaults"]["custom"]
    assert bars["drawStyle"] == "bars"
    assert bars["stacking"]["mode"] == "normal"
    assert panels[4]["fieldConfig"]["defaults"]["unit"] == "ms"
    assert "errors/s" in panels[3]["fieldConfig"]["defaults"]["unit"]


def test_dashboard_thresholds_are_the_designs(committed: Path) -> None:
    """Red above 1000 streams; green/yellow/red at 100 and 1000 viewers; a line at 100 ms."""
    panels = {p["title"]: p for p in _dashboard(committed)["panels"]}

    def steps(title: str) -> list[tuple[Any, str]]:
        config = panels[title]["fieldConfig"]["defaults"]["thresholds"]
        assert config["mode"] == "absolute"
        return [(s["value"], s["color"]) for s in config["steps"]]

    assert steps("Active Streaming Sessions") == [(None, "green"), (1000, "red")]
    assert steps("Current Viewer Count") == [(None, "green"), (100, "yellow"), (1000, "red")]
    assert steps("RTMP Ingestion Latency") == [(None, "green"), (100, "red"), (1000, "dark-red")]
    latency_style = panels["RTMP Ingestion Latency"]["fieldConfig"]["defaults"]["custom"]
    assert latency_style["thresholdsStyle"]["mode"] == "line"


def test_dashboard_identity_time_and_datasource_variable(committed: Path) -> None:
    """Stable uid and title, last 1 h, a prometheus `datasource` variable used by every query."""
    dash = _dashboard(committed)
    assert dash["uid"] == "nova-streaming-metrics"
    assert dash["title"] == "Nova Streaming Metrics Dashboard"
    assert dash["time"] == {"from": "now-1h", "to": "now"}
    variables = dash["templating"]["list"]
    assert [(v["name"], v["type"], v["query"]) for v in variables] == [
        ("datasource", "datasource", "prometheus")
    ]
    for panel in dash["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    text = (committed / FILES["dashboard"]).read_text()
    assert "${DS_" not in text and "__inputs" not in text
    assert "id" not in dash, "a fixed dashboard id would clash on import"


def test_dashboard_schema_version_is_the_sdk_builds_current_one(committed: Path) -> None:
    """schemaVersion is the pinned SDK's (Grafana 11.6 models: 41), not an old importer's."""
    assert _dashboard(committed)["schemaVersion"] == sdk_dashboard.Dashboard().schema_version
    assert _dashboard(committed)["schemaVersion"] == 41


def test_rate_queries_use_a_literal_5m_window(committed: Path) -> None:
    """Every rate() in the dashboard has a literal [5m] (no $__rate_interval surprises)."""
    for _title, expr in panel_queries(_dashboard(committed)):
        if "rate(" in expr:
            assert "[5m]" in expr and "$__" not in expr, expr


def test_configmap_carries_the_committed_dashboard(committed: Path) -> None:
    """The sidecar ConfigMap holds the dashboard file's exact text, labelled grafana_dashboard=1."""
    configmap = yaml.safe_load((committed / FILES["dashboard-configmap"]).read_text())
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"] == {FILES["dashboard"]: (committed / FILES["dashboard"]).read_text()}


def test_every_panel_query_gives_the_expected_values_in_promtool(
    committed: Path, rules_tests: Path, promtool: str, run: Any, tmp_path: Path
) -> None:
    """promtool evaluates each committed panel query on two-replica series: known values."""
    queries = [q for q in panel_queries(_dashboard(committed)) if q[0] != WORST]
    assert [title for title, _ in queries] == [title for title, _ in PANEL_EXPECTATIONS]
    fixture = yaml.safe_load((rules_tests / "recording-test.yml").read_text())
    case = fixture["tests"][0]
    unit_test = {
        "rule_files": [],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": case["interval"],
                "input_series": case["input_series"],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": labels, "value": value} for labels, value in expected
                        ],
                    }
                    for (_title, expr), (_same, expected) in zip(
                        queries, PANEL_EXPECTATIONS, strict=True
                    )
                ],
            }
        ],
    }
    path = tmp_path / "dashboard-test.yml"
    path.write_text(yaml.safe_dump(unit_test, sort_keys=False), encoding="utf-8")
    result = run(promtool, "test", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_latency_panel_marks_the_1_s_cap_and_shows_frames_over_it(committed: Path) -> None:
    """p95 at the 1 s cap reads ">= 1 s"; query B is the share of frames over 1 s, in %."""
    latency = next(
        p for p in _dashboard(committed)["panels"] if p["title"] == "RTMP Ingestion Latency"
    )
    defaults = latency["fieldConfig"]["defaults"]
    assert defaults["mappings"] == [
        {
            "type": "range",
            "options": {
                "from": 1000,
                "to": None,
                "result": {"text": ">= 1 s", "color": "dark-red"},
            },
        }
    ]
    targets = {t["refId"]: t for t in latency["targets"]}
    assert targets["A"]["expr"].startswith("histogram_quantile(0.95, sum by (le)")
    assert targets["B"]["legendFormat"] == "frames over 1 s"
    assert 'le=~"1|1\\\\.0"' in targets["B"]["expr"]
    (override,) = latency["fieldConfig"]["overrides"]
    assert override["matcher"] == {"id": "byFrameRefID", "options": "B"}
    properties = {p["id"]: p["value"] for p in override["properties"]}
    assert properties["unit"] == "percent"
    assert properties["custom.axisPlacement"] == "right"
    assert properties["mappings"] == []


def _promtool_eval(
    promtool: str, run: Any, tmp_path: Path, series: list[dict[str, str]], tests: list[Any]
) -> None:
    unit_test = {
        "rule_files": [],
        "evaluation_interval": "15s",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    path = tmp_path / "worst-streams-test.yml"
    path.write_text(yaml.safe_dump(unit_test, sort_keys=False), encoding="utf-8")
    result = run(promtool, "test", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_worst_streams_table_exemplars_and_promtool_values(
    committed: Path, promtool: str, run: Any, tmp_path: Path
) -> None:
    """The table's two queries on two replicas' series: worst lag first with region and
    the highest-bitrate quality (a stream without a bitrate keeps its row), drops over
    5 minutes for the same streams; a hand-over's duplicate series count once. The
    latency panel asks Grafana for exemplars."""
    panels = {p["title"]: p for p in _dashboard(committed)["panels"]}
    assert panels["RTMP Ingestion Latency"]["targets"][0]["exemplar"] is True
    table = panels[WORST]
    targets = table["targets"]
    assert [(t["refId"], t["format"], t["instant"]) for t in targets] == [
        ("A", "table", True),
        ("B", "table", True),
    ]
    assert [t["id"] for t in table["transformations"]] == ["merge", "organize"]
    assert table["fieldConfig"]["defaults"]["unit"] == "s"
    assert "topk(10," in targets[0]["expr"] and "[5m]" in targets[1]["expr"]

    lag, info = "nova_streaming_stream_ingest_lag_seconds", "nova_streaming_stream_info"

    def owner(pod: str) -> str:
        return f'namespace="nova", pod="{pod}"'

    def info_of(sid: str, region: str, pod: str) -> str:
        return f'{info}{{stream_id="{sid}", region="{region}", stream_type="live", {owner(pod)}}}'

    bitrate, drops = (
        "nova_streaming_quality_bitrate_kbps",
        "nova_streaming_stream_frame_drops_total",
    )
    series = [
        # S1 owned by a, handed over to b mid-way: both export it for a while.
        {"series": f'{lag}{{stream_id="{S1}", {owner("a")}}}', "values": "6.5x10"},
        {"series": f'{lag}{{stream_id="{S1}", {owner("b")}}}', "values": "6.5x10"},
        {"series": f'{lag}{{stream_id="{S2}", {owner("b")}}}', "values": "0.2x10"},
        {"series": f'{lag}{{stream_id="{S3}", {owner("a")}}}', "values": "0.05x10"},
        {"series": info_of(S1, "eu-west", "a"), "values": "1x10"},
        {"series": info_of(S1, "eu-west", "b"), "values": "1x10"},
        {"series": info_of(S2, "us-east", "b"), "values": "1x10"},
        {"series": info_of(S3, "eu-west", "a"), "values": "1x10"},
        {
            "series": f'{bitrate}{{stream_id="{S1}", quality="480p", {owner("a")}}}',
            "values": "900x10",
        },
        {
            "series": f'{bitrate}{{stream_id="{S1}", quality="720p", {owner("a")}}}',
            "values": "1500x10",
        },
        {
            "series": f'{bitrate}{{stream_id="{S2}", quality="1080p", {owner("b")}}}',
            "values": "3000x10",
        },
        # 2 drops a minute on S1's owner, none on the others.
        {"series": f'{drops}{{stream_id="{S1}", {owner("a")}}}', "values": "0+2x10"},
        {"series": f'{drops}{{stream_id="{S2}", {owner("b")}}}', "values": "0x10"},
        {"series": f'{drops}{{stream_id="{S3}", {owner("a")}}}', "values": "0x10"},
    ]
    tests = [
        {
            "expr": targets[0]["expr"],
            "eval_time": "10m",
            "exp_samples": [
                {"labels": f'{{stream_id="{S1}", region="eu-west", quality="720p"}}', "value": 6.5},
                {
                    "labels": f'{{stream_id="{S2}", region="us-east", quality="1080p"}}',
                    "value": 0.2,
                },
                {"labels": f'{{stream_id="{S3}", region="eu-west"}}', "value": 0.05},
            ],
        },
        {
            "expr": targets[1]["expr"],
            "eval_time": "10m",
            "exp_samples": [
                {"labels": f'{{stream_id="{S1}"}}', "value": 10},
                {"labels": f'{{stream_id="{S2}"}}', "value": 0},
                {"labels": f'{{stream_id="{S3}"}}', "value": 0},
            ],
        },
    ]
    _promtool_eval(promtool, run, tmp_path, series, tests)
