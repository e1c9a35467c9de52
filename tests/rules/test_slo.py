"""The SLO burn-rate rules, proven with promtool on the committed rules file.

The promtool unit tests are built here as data (one case per burn level and scenario)
and run by the real promtool against ``k8s/monitoring/prometheus-rules.yml``. Two
replicas export as design section 3 says: every replica counts its own frames and
errors, with different traffic, so an average of per-replica ratios would give other
answers than the ratio of sums the SLOs are defined by.

Input series are one sample a minute; rules are evaluated every 5 minutes (promtool
evaluates every group at every tick, so a coarse tick keeps the 12-hour scenarios fast).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from nova_monitoring.render import FILES
from nova_monitoring.slo import ERRORS_SLO, LATENCY_SLO, SLO, SLOS, BurnWindow
from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d

LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS.name
ERRORS = d.BROADCAST_ERRORS.name
REPLICAS = (
    {"instance": "10.0.0.1:8081", "pod": "nova-streaming-a", "quality": "1080p"},
    {"instance": "10.0.0.2:8081", "pod": "nova-streaming-b", "quality": "720p"},
)
# Frames per minute on each replica: unequal, so ratio-of-sums and average-of-ratios differ.
FRAMES = (4000, 6000)
WINDOWS = ("1h/5m", "6h/30m", "1d/2h", "3d/6h")
# Written out here rather than derived from nova_monitoring.slo: what the workbook says.
PAIRS = {
    "1h/5m": ("critical", "fast", "14.4", "1h", "5m", "2"),
    "6h/30m": ("critical", "fast", "6", "6h", "30m", "5"),
    "1d/2h": ("warning", "steadily", "3", "1d", "2h", "10"),
    "3d/6h": ("warning", "steadily", "1", "3d", "6h", "10"),
}
# A steady burn fires every pair whose factor it exceeds, and no other.
STEADY_LEVELS: dict[float, tuple[str, ...]] = {
    14.7: WINDOWS,
    14.1: ("6h/30m", "1d/2h", "3d/6h"),
    6.2: ("6h/30m", "1d/2h", "3d/6h"),
    5.8: ("1d/2h", "3d/6h"),
    3.1: ("1d/2h", "3d/6h"),
    2.9: ("3d/6h",),
    1.05: ("3d/6h",),
    0.95: (),
}


def _labels(replica: dict[str, str], **extra: str) -> str:
    labels = {
        "job": "nova-streaming",
        "instance": replica["instance"],
        "pod": replica["pod"],
        "namespace": "default",
        "cluster": "local",
        **extra,
    }
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def _num(value: float) -> str:
    return repr(round(value, 6)).removesuffix(".0")


def _counter(*phases: tuple[int, float]) -> str:
    """promtool values of a counter from 0, rising by ``per_minute`` for ``minutes``."""
    parts = []
    total = 0.0
    for n, (minutes, per_minute) in enumerate(phases):
        if n == 0:
            parts.append(f"0+{_num(per_minute)}x{minutes}")
            total = per_minute * minutes
        else:
            start = total + per_minute
            parts.append(f"{_num(start)}+{_num(per_minute)}x{minutes - 1}")
            total += per_minute * minutes
    return " ".join(parts)


def _series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def _inputs(
    latency: list[tuple[int, float]],
    errors: list[tuple[int, float]],
    *,
    frames: bool = True,
) -> list[dict[str, str]]:
    """Both replicas' frame counts, 0.5 s buckets and errors.

    ``latency`` and ``errors`` are phases of (minutes, burn rate). Slow frames and errors
    are split 60/40 between the replicas whatever their frame counts, so per-replica
    ratios differ from the overall one. ``frames=False``: no frame is ingested at all.
    """
    minutes = sum(m for m, _ in latency)
    assert minutes == sum(m for m, _ in errors)
    total = sum(FRAMES)
    types = ("frame_drop", "timeout")
    out = []
    for n, (replica, per_minute) in enumerate(zip(REPLICAS, FRAMES, strict=True)):
        share = 0.6 if n == 0 else 0.4
        rate = float(per_minute) if frames else 0.0
        good = [
            (m, rate - burn * 0.01 * total * share) if frames else (m, 0.0) for m, burn in latency
        ]
        bad = [(m, burn * 0.001 * total * share) for m, burn in errors]
        quality = _labels(replica, quality=replica["quality"])
        out.append(_series(f"{LATENCY}_count", quality, _counter((minutes, rate))))
        # As prometheus_client writes the bound (test_the_service_writes_le_0_5 below).
        bucket = _labels(replica, quality=replica["quality"], le="0.5")
        out.append(_series(f"{LATENCY}_bucket", bucket, _counter(*good)))
        out.append(_series(ERRORS, _labels(replica, error_type=types[n]), _counter(*bad)))
    return out


def _humanize(value: float) -> str:
    """Prometheus' ``humanize`` for values between 1 and 1000: ``%.4g``."""
    return f"{value:.4g}"


_MEANING = {
    "ingest-latency": ("Ingest latency", "99% of video frames ingested with at most 0.5 s lag"),
    "ingest-errors": ("Ingest errors", "at most 0.1% broadcast errors per ingested video frame"),
}
_ALERT = {
    "ingest-latency": "StreamingLatencyBudgetBurn",
    "ingest-errors": "StreamingErrorBudgetBurn",
}
_RUNBOOK = {
    "ingest-latency": "streaminglatencybudgetburn",
    "ingest-errors": "streamingerrorbudgetburn",
}


def _expected_alert(slo_name: str, window: str, value: float) -> dict[str, Any]:
    title, meaning = _MEANING[slo_name]
    severity, pace, factor, long, short, spent = PAIRS[window]
    return {
        "exp_labels": {
            "severity": severity,
            "slo": slo_name,
            "window": window,
            "namespace": "default",
            "cluster": "local",
        },
        "exp_annotations": {
            "summary": (
                f"{title} SLO: error budget burning {pace}"
                f" (above {factor}x over {long} and {short})"
            ),
            "description": (
                f"{title} SLO ({meaning}, over 30d): the error budget burned {_humanize(value)}x"
                f" as fast as the SLO allows over the last {long}, and more than {factor}x over"
                f" the last {short} too. At {factor}x, {spent}% of the 30d budget is spent in"
                f" {long}."
            ),
            "runbook_url": f"docs/runbook.md#{_RUNBOOK[slo_name]}",
        },
    }


def _alert_check(
    slo_name: str, eval_time: str, windows: tuple[str, ...], value: float
) -> dict[str, Any]:
    expected = [_expected_alert(slo_name, window, value) for window in windows]
    return {"eval_time": eval_time, "alertname": _ALERT[slo_name], "exp_alerts": expected}


def _quiet(slo_name: str, eval_time: str) -> dict[str, Any]:
    return {"eval_time": eval_time, "alertname": _ALERT[slo_name], "exp_alerts": []}


def _bool_check(expr: str, slo_name: str, eval_time: str) -> dict[str, Any]:
    """``expr`` written with ``bool``: it must hold (value 1) for the SLO's series."""
    return {
        "expr": expr,
        "eval_time": eval_time,
        "exp_samples": [{"labels": f'{{slo="{slo_name}"}}', "value": 1}],
    }


def _record_values(
    slo_name: str, per_mille: int, scale: int, eval_time: str
) -> list[dict[str, Any]]:
    """Every window's recorded ratio, compared after scaling and rounding.

    promtool 2.42 compares floats exactly, and sums of rates carry float noise.
    """
    record = slo_name.replace("-", "_")
    return [
        {
            "expr": f"round(nova:slo_{record}:error_ratio:rate{window} * {scale})",
            "eval_time": eval_time,
            "exp_samples": [{"labels": f'{{slo="{slo_name}"}}', "value": per_mille}],
        }
        for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    ]


def steady_cases() -> list[dict[str, Any]]:
    """Each SLO at each burn level from the start (every window sees the same ratio)."""
    cases = []
    for level, windows in STEADY_LEVELS.items():
        for slo_name, other in (
            ("ingest-latency", "ingest-errors"),
            ("ingest-errors", "ingest-latency"),
        ):
            if slo_name == "ingest-latency":
                inputs = _inputs([(40, level)], [(40, 0.0)])
                scale = 10_000
            else:
                inputs = _inputs([(40, 0.0)], [(40, level)])
                scale = 100_000
            case: dict[str, Any] = {
                "name": f"{slo_name} burning {level}x steadily fires {list(windows) or 'nothing'}",
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    _alert_check(slo_name, "35m", windows, level),
                    _quiet(other, "35m"),
                ],
            }
            if level == 14.7:
                # 14.7x: 14.7% of frames slow, or 1.47% errors per frame.
                case["promql_expr_test"] = _record_values(slo_name, 1470, scale, "35m")
            cases.append(case)
    return cases


def scenario_cases() -> list[dict[str, Any]]:
    """A short spike that must not page, a slow burn that must open a ticket, no frames."""
    spike = {
        # 12 h at 0.1x, then 5 minutes of 10% errors (100x): the 5m window alone would
        # page, but over 1h it is 8.4x, over 6h 1.5x with 3d at 0.8x: nothing fires.
        "name": "a 5-minute error spike (100x) pages nobody and opens no ticket",
        "interval": "1m",
        "input_series": _inputs([(744, 0.0)], [(714, 0.1), (5, 100.0), (25, 0.1)]),
        "alert_rule_test": [_quiet("ingest-errors", t) for t in ("715m", "720m", "725m", "740m")],
        "promql_expr_test": [
            _bool_check(f"{ERRORS_SLO.record('5m')} / 0.001 > bool 14.4", "ingest-errors", "720m"),
            _bool_check(f"{ERRORS_SLO.record('1h')} / 0.001 < bool 14.4", "ingest-errors", "720m"),
            _bool_check(f"{ERRORS_SLO.record('30m')} / 0.001 > bool 6", "ingest-errors", "720m"),
            _bool_check(f"{ERRORS_SLO.record('2h')} / 0.001 > bool 3", "ingest-errors", "720m"),
            _bool_check(f"{ERRORS_SLO.record('6h')} / 0.001 > bool 1", "ingest-errors", "720m"),
        ],
    }
    # 2 h at 0.2x, then a slow burn at 2.5x: too slow for any page or for the 1d/2h
    # ticket, but the 3d/6h ticket opens once the burn outweighs the good start
    # (quiet at 2h30m; at 12h the 3d ratio is (2*0.2 + 10*2.5) / 12 = 2.117x).
    slow = {
        "name": "a slow 2.5x latency burn opens a ticket (3d/6h warning) and pages nobody",
        "interval": "1m",
        "input_series": _inputs([(120, 0.2), (600, 2.5)], [(720, 0.0)]),
        "alert_rule_test": [
            _quiet("ingest-latency", "150m"),
            _alert_check("ingest-latency", "720m", ("3d/6h",), (2 * 0.2 + 10 * 2.5) / 12),
            _quiet("ingest-errors", "720m"),
        ],
    }
    no_frames = {
        # 0/0 (no frames, no errors) and errors with no frames (+Inf): the ratios have
        # no series, so no burn alert fires on NaN or +Inf.
        "name": "no frames at all: no ratio series, no burn alert, even with errors",
        "interval": "1m",
        "input_series": [
            *_inputs([(40, 0.0)], [(40, 0.0)], frames=False),
            _series(ERRORS, _labels(REPLICAS[0], error_type="rtmp_connection_failed"), "0+5x40"),
        ],
        "alert_rule_test": [_quiet("ingest-errors", "35m"), _quiet("ingest-latency", "35m")],
        "promql_expr_test": [
            {"expr": slo.record(w), "eval_time": "35m", "exp_samples": []}
            for slo in SLOS
            for w in ("5m", "1h", "3d")
        ],
    }
    return [spike, slow, no_frames]


def _unit_test(cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rule_files": ["prometheus-rules.yml"],
        "evaluation_interval": "5m",
        "tests": cases,
    }


def _run_promtool(
    cases: list[dict[str, Any]], rules_text: str, tmp_path: Path, promtool: str, run: Any
) -> Any:
    (tmp_path / "prometheus-rules.yml").write_text(rules_text, encoding="utf-8")
    path = tmp_path / "slo-test.yml"
    path.write_text(
        yaml.safe_dump(_unit_test(cases), sort_keys=False, width=10_000), encoding="utf-8"
    )
    return run(promtool, "test", "rules", path.name, cwd=tmp_path)


def _rules_text(committed: Path) -> str:
    return (committed / FILES["rules-file"]).read_text(encoding="utf-8")


def test_every_burn_tier_fires_at_its_rate_and_stays_quiet_just_below(
    committed: Path, promtool: str, run: Any, tmp_path: Path
) -> None:
    """At 14.7/6.2/3.1/1.05x a tier fires, at 14.1/5.8/2.9/0.95x it does not, for both SLOs."""
    result = _run_promtool(steady_cases(), _rules_text(committed), tmp_path, promtool, run)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_spike_does_not_page_and_a_slow_burn_opens_a_ticket(
    committed: Path, promtool: str, run: Any, tmp_path: Path
) -> None:
    """12-hour scenarios: a 5-minute 100x spike stays quiet; a 2.5x burn opens a warning."""
    result = _run_promtool(scenario_cases(), _rules_text(committed), tmp_path, promtool, run)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("broken", "replacement", "fails"),
    [
        # A single-window page: the 5-minute spike would page.
        (
            "nova:slo_ingest_errors:error_ratio:rate1h / 0.001 > 14.4 and ",
            "",
            "5-minute error spike",
        ),
        # A bound written otherwise than the service writes it matches no bucket.
        ('le="0.5"', 'le="0.50"', "ingest-latency burning"),
    ],
)
def test_the_slo_tests_catch_a_broken_rule(
    broken: str,
    replacement: str,
    fails: str,
    committed: Path,
    promtool: str,
    run: Any,
    tmp_path: Path,
) -> None:
    """The SLO cases fail on a single-window page and on a bucket bound that matches nothing."""
    text = _rules_text(committed)
    assert broken in text
    cases = [c for c in scenario_cases() + steady_cases() if fails in c["name"]][:3]
    assert cases
    result = _run_promtool(cases, text.replace(broken, replacement), tmp_path, promtool, run)
    assert result.returncode != 0, result.stdout
    assert fails in result.stdout + result.stderr


def test_every_slo_alert_window_and_record_is_covered(committed: Path) -> None:
    """Each SLO alert rule (alertname, window) is shown firing and quiet; each record checked."""
    rules = [r for g in yaml.safe_load(_rules_text(committed))["groups"] for r in g["rules"]]
    slo_alerts = {
        (r["alert"], r["labels"]["window"]) for r in rules if "alert" in r and "slo" in r["labels"]
    }
    assert len(slo_alerts) == 8
    firing: set[tuple[str, str]] = set()
    quiet: set[tuple[str, str]] = set()
    for case in steady_cases() + scenario_cases():
        for check in case.get("alert_rule_test", []):
            shown = {a["exp_labels"]["window"] for a in check["exp_alerts"]}
            for window in WINDOWS:
                (firing if window in shown else quiet).add((check["alertname"], window))
    assert slo_alerts <= firing
    assert slo_alerts <= quiet
    records = {r["record"] for r in rules if "record" in r and r.get("labels", {}).get("slo")}
    checked = {
        name
        for case in steady_cases()
        for t in case.get("promql_expr_test", [])
        if t["exp_samples"]
        for name in re.findall(r"nova:slo_\w+:error_ratio:rate\w+", t["expr"])
    }
    assert len(records) == 14
    assert records == checked


def test_slo_rules_are_ratios_of_sums_with_a_frame_guard(committed: Path) -> None:
    """Every SLO ratio sums rates over replicas before dividing, guarded against 0 frames."""
    rules = [r for g in yaml.safe_load(_rules_text(committed))["groups"] for r in g["rules"]]
    for rule in rules:
        if "record" not in rule or "slo" not in rule.get("labels", {}):
            continue
        window = rule["record"].rsplit("rate", 1)[1]
        assert f"(sum(rate({LATENCY}_count[{window}])) > 0)" in rule["expr"], rule
        assert re.fullmatch(r"(1 - )?sum\(rate\([^)]*\[\w+\]\)\) / \(sum\(.*\) > 0\)", rule["expr"])
    assert LATENCY_SLO.budget == "0.01" and ERRORS_SLO.budget == "0.001"


def test_the_service_writes_le_0_5_as_the_latency_slo_matches_it() -> None:
    """The service's histogram writes the 0.5 s bound as le="0.5" (text and OpenMetrics)."""
    registry = CollectorRegistry()
    StreamingMetrics(registry).record_rtmp_frame_latency("720p", 0.3)
    bucket = re.compile(
        rf'^{LATENCY}_bucket{{(?=[^}}]*quality="720p")(?=[^}}]*le="0\.5")[^}}]*}} 1\.0$', re.M
    )
    for exposition in (generate_latest(registry), generate_openmetrics(registry)):
        text = exposition.decode()
        assert bucket.search(text), text
    assert LATENCY_SLO.good == f'{LATENCY}_bucket{{le="0.5"}}'
    assert math.isclose(float(LATENCY_SLO.budget), 0.01)


# --- the SLO dashboard --------------------------------------------------------------


def _slo_dashboard(committed: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((committed / FILES["slo-dashboard"]).read_text())
    return loaded


def test_slo_dashboard_shows_budget_left_and_burn_rates_per_slo(committed: Path) -> None:
    """Budget remaining (30d, both SLOs) and one burn-rate panel per SLO, alert factors as lines."""
    dash = _slo_dashboard(committed)
    assert (dash["uid"], dash["title"]) == ("nova-streaming-slo", "Nova Streaming SLOs")
    assert [(v["name"], v["type"], v["query"]) for v in dash["templating"]["list"]] == [
        ("datasource", "datasource", "prometheus")
    ]
    assert "id" not in dash
    panels = dash["panels"]
    assert [(p["id"], p["title"], p["type"]) for p in panels] == [
        (1, "Error budget remaining (30 days)", "stat"),
        (2, "Ingest latency SLO: burn rate", "timeseries"),
        (3, "Ingest errors SLO: burn rate", "timeseries"),
    ]
    budget = panels[0]
    assert budget["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert [(t["legendFormat"], t["instant"]) for t in budget["targets"]] == [
        ("Ingest latency", True),
        ("Ingest errors", True),
    ]
    for target in budget["targets"]:
        assert "[30d]" in target["expr"]
    for panel, record in zip(panels[1:], ("ingest_latency", "ingest_errors"), strict=True):
        assert [t["legendFormat"] for t in panel["targets"]] == ["1h", "6h", "1d", "3d"]
        assert [t["expr"].split(" / ")[0] for t in panel["targets"]] == [
            f"nova:slo_{record}:error_ratio:rate{w}" for w in ("1h", "6h", "1d", "3d")
        ]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps] == [None, 1, 3, 6, 14.4]
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_slo_dashboard_configmap_carries_it_and_validates(committed: Path) -> None:
    """Its own ConfigMap, labelled grafana_dashboard=1, holds the exact file; strict-valid."""
    configmap = yaml.safe_load((committed / FILES["slo-dashboard-configmap"]).read_text())
    assert configmap["metadata"]["name"] == "nova-streaming-slo-dashboard"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"] == {
        FILES["slo-dashboard"]: (committed / FILES["slo-dashboard"]).read_text()
    }
    kubernetes_validate.validate(configmap, "1.32", strict=True)


def test_every_slo_panel_query_gives_the_expected_values_in_promtool(
    committed: Path, promtool: str, run: Any, tmp_path: Path
) -> None:
    """Each SLO panel query, on two replicas burning 0.25x (latency) and 0.5x (errors)."""
    # Scaled by 1000 and rounded: promtool 2.42 compares floats exactly.
    expected = {
        # 1 - 0.25 and 1 - 0.5 of the budget left.
        "Error budget remaining (30 days)": [750, 500],
        "Ingest latency SLO: burn rate": [250] * 4,
        "Ingest errors SLO: burn rate": [500] * 4,
    }
    checks = []
    for panel in _slo_dashboard(committed)["panels"]:
        slo = "ingest-errors" if "errors" in panel["title"] else "ingest-latency"
        for target, value in zip(panel["targets"], expected[panel["title"]], strict=True):
            # Burn rates keep the recorded series' slo label; the budget is computed anew.
            labels = f'{{slo="{slo}"}}' if ":error_ratio:" in target["expr"] else "{}"
            checks.append(
                {
                    "expr": f"round(({target['expr']}) * 1000)",
                    "eval_time": "35m",
                    "exp_samples": [{"labels": labels, "value": value}],
                }
            )
    assert len(checks) == 10
    case = {
        "name": "SLO dashboard queries",
        "interval": "1m",
        "input_series": _inputs([(40, 0.25)], [(40, 0.5)]),
        "promql_expr_test": checks,
    }
    result = _run_promtool([case], _rules_text(committed), tmp_path, promtool, run)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BurnWindow("1h", "4m", 14.4, "critical"), "no error ratio is recorded"),
        (lambda: BurnWindow("5m", "1h", 14.4, "critical"), "short window must be shorter"),
        (lambda: BurnWindow("1h", "5m", 0.0, "critical"), "factor must be positive"),
        (lambda: SLO("x", "StreamingX", "X", 0.99, "m", "t"), "exactly one of good and bad"),
        (lambda: SLO("x", "StreamingX", "X", 1.0, "m", "t", bad="b"), r"not in \(0, 1\)"),
        (lambda: SLO("x", "XBurn", "X", 0.99, "m", "t", bad="b"), "must start with 'Streaming'"),
    ],
)
def test_slo_definitions_reject_misuse_at_definition_time(make: Any, message: str) -> None:
    """A window with no recorded ratio, a reversed pair, a bad objective fail when defined."""
    with pytest.raises(ValueError, match=message):
        make()
