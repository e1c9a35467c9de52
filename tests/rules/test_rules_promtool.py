"""promtool on the rendered rules: syntax, unit tests, coverage of every rule."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from nova_monitoring.options import RenderOptions
from nova_monitoring.render import FILES, render_documents, render_rules_file
from nova_monitoring.rules import le_matcher
from nova_monitoring.slo import SLOS

UNIT_TESTS = ("alerts-test.yml", "recording-test.yml")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in _load(path)["groups"] for rule in group["rules"]]


def _is_slo(rule: dict[str, Any]) -> bool:
    """SLO rules (test_slo.py proves them) carry an ``slo`` label."""
    return "slo" in rule.get("labels", {})


def test_committed_files_are_what_the_renderer_writes(committed: Path) -> None:
    """k8s/monitoring holds exactly the default render: no hand edits, no stale files."""
    documents = render_documents(RenderOptions())
    assert sorted(p.name for p in committed.iterdir()) == sorted(documents)
    for name, text in documents.items():
        assert (committed / name).read_text(encoding="utf-8") == text, name


def test_rendering_is_deterministic() -> None:
    """Two renders with the same options are byte-identical (check-generated relies on it)."""
    assert render_documents(RenderOptions()) == render_documents(RenderOptions())


def test_promtool_accepts_the_plain_rules_file(committed: Path, promtool: str, run: Any) -> None:
    """promtool check rules passes on the committed plain rules file (16 + 22 SLO rules)."""
    result = run(promtool, "check", "rules", committed / FILES["rules-file"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 38 rules found" in result.stdout


def test_prometheusrules_hold_the_same_groups_and_pass_promtool(
    committed: Path, promtool: str, run: Any, tmp_path: Path
) -> None:
    """The PrometheusRules carry the plain file's groups unchanged; promtool accepts them."""
    docs = list(yaml.safe_load_all((committed / FILES["servicemonitor"]).read_text()))
    groups = [g for doc in docs if doc["kind"] == "PrometheusRule" for g in doc["spec"]["groups"]]
    plain = _load(committed / FILES["rules-file"])["groups"]
    assert sorted(groups, key=lambda g: g["name"]) == sorted(plain, key=lambda g: g["name"])
    extracted = tmp_path / "from-prometheusrule.yml"
    extracted.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    result = run(promtool, "check", "rules", extracted)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit_test", UNIT_TESTS)
def test_promtool_unit_tests_pass_on_the_committed_rules(
    unit_test: str, committed: Path, rules_tests: Path, promtool: str, run: Any, tmp_path: Path
) -> None:
    """promtool test rules passes: alerts fire and stay quiet, recording rules give the values."""
    shutil.copy(committed / FILES["rules-file"], tmp_path / "prometheus-rules.yml")
    shutil.copy(rules_tests / unit_test, tmp_path / unit_test)
    result = run(promtool, "test", "rules", unit_test, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_catch_a_broken_rule(
    committed: Path, rules_tests: Path, promtool: str, run: Any, tmp_path: Path
) -> None:
    """The alert tests fail on the design's literal le="1", which a Python exporter never writes."""
    text = (committed / FILES["rules-file"]).read_text(encoding="utf-8")
    assert 'le=~"1|1\\\\.0"' in text
    (tmp_path / "prometheus-rules.yml").write_text(
        text.replace('le=~"1|1\\\\.0"', 'le="1"'), encoding="utf-8"
    )
    shutil.copy(rules_tests / "alerts-test.yml", tmp_path / "alerts-test.yml")
    result = run(promtool, "test", "rules", "alerts-test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "every frame slower than 1 s" in result.stdout + result.stderr


def test_every_alert_is_shown_firing_and_quiet(committed: Path, rules_tests: Path) -> None:
    """Each rendered alert has a promtool case where it fires and one where it stays quiet.

    The SLO burn alerts are shown both ways per window pair in test_slo.py.
    """
    rules = _rules(committed / FILES["rules-file"])
    alerts = {r["alert"] for r in rules if "alert" in r and not _is_slo(r)}
    assert {r["alert"] for r in rules if "alert" in r} - alerts == {s.alert for s in SLOS}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _load(rules_tests / "alerts-test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert len(alerts) == 11
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"


def test_every_recording_rule_value_is_checked(committed: Path, rules_tests: Path) -> None:
    """Each recording rule's output is compared with expected samples, with its group-by label.

    The SLO error ratios are checked in test_slo.py.
    """
    records = {
        r["record"]
        for r in _rules(committed / FILES["rules-file"])
        if "record" in r and not _is_slo(r)
    }
    assert len(records) == 5
    checked: dict[str, list[str]] = {}
    for case in _load(rules_tests / "recording-test.yml")["tests"]:
        for check in case.get("promql_expr_test", []):
            checked[check["expr"]] = [s["labels"] for s in check["exp_samples"]]
    assert records == set(checked)
    group_label = {
        "nova:streaming:viewers:avg": "region=",
        "nova:streaming:viewers:max": "region=",
        "nova:streaming:duration:avg": "stream_type=",
        "nova:streaming:error_rate:5m": "error_type=",
        "nova:streaming:active:by_region": "region=",
    }
    for record, labels in checked.items():
        assert labels, f"{record}: no expected samples"
        assert all(group_label[record] in label for label in labels), record


def test_compressed_timing_renders_the_same_rules_faster(
    tmp_path: Path, promtool: str, run: Any
) -> None:
    """render_rules_file with compressed timing scales every for:, interval and rate window only.

    The SLO rules keep their windows (they define the SLO): compressed or not, they are
    rendered the same.
    """
    path = render_rules_file(
        tmp_path / "rules.yml",
        RenderOptions(eval_interval="1s", for_scale=0.1, rate_window="1m"),
    )
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    fast = _load(path)["groups"]
    slow = _load(render_rules_file(tmp_path / "default.yml"))["groups"]
    assert [g["interval"] for g in fast] == ["1s", "1s", "1s"]
    assert [g["interval"] for g in slow] == ["15s", "15s", "15s"]
    fors = {r["alert"]: r.get("for") for g in fast for r in g["rules"] if "alert" in r}
    assert fors["StreamingHighErrorRate"] == "30s"
    assert fors["StreamingNoActiveStreams"] == "1m"
    assert fors["StreamingHighIngestionLatency"] == "18s"
    for fast_rule, slow_rule in zip(
        (r for g in fast for r in g["rules"]), (r for g in slow for r in g["rules"]), strict=True
    ):
        if _is_slo(slow_rule):
            assert fast_rule == slow_rule
            continue
        assert fast_rule["expr"] == slow_rule["expr"].replace("[5m]", "[1m]").replace(
            "last 5m", "last 1m"
        )
        assert fast_rule.get("labels") == slow_rule.get("labels")
        assert "[5m]" not in yaml.safe_dump(fast_rule)


def test_the_guides_rules_are_broken_as_documented(
    rules_tests: Path, promtool: str, run: Any, tmp_path: Path
) -> None:
    """promtool shows the guide's rules lose region, return nothing, and never alert on latency."""
    for name in ("guide-rules.yml", "guide-test.yml"):
        shutil.copy(rules_tests / name, tmp_path / name)
    result = run(promtool, "test", "rules", "guide-test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_latency_bucket_matcher_matches_what_prometheus_client_writes() -> None:
    """The 1 s bucket matcher matches prometheus_client's le="1.0" and the Go client's le="1"."""
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "h", buckets=(0.5, 1.0), registry=registry)
    histogram.observe(0.7)
    exposition = generate_latest(registry).decode()
    assert 'h_seconds_bucket{le="1.0"} 1.0' in exposition
    matcher = le_matcher(1.0)
    pattern = matcher.split('"')[1].replace("\\\\", "\\")
    assert re.fullmatch(pattern, "1.0") and re.fullmatch(pattern, "1")
    assert not re.fullmatch(pattern, "10") and not re.fullmatch(pattern, "1x0")
