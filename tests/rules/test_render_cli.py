"""The `nova-monitoring render` command, its options, and the runbook links."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from nova_monitoring.cli import main
from nova_monitoring.options import RenderOptions, RenderOptionsError, format_duration
from nova_monitoring.render import FILES


def test_cli_renders_every_file_like_make_generate(tmp_path: Path, committed: Path) -> None:
    """`nova-monitoring render --output DIR` with no options writes the committed files."""
    assert main(["render", "--output", str(tmp_path)]) == 0
    for name in FILES.values():
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name


def test_cli_only_rules_file_with_compressed_timing(tmp_path: Path) -> None:
    """--only rules-file writes just the plain rules file, with the timing options applied."""
    argv = ["render", "--output", str(tmp_path), "--only", "rules-file"]
    argv += ["--eval-interval", "1s", "--for-scale", "0.05", "--rate-window", "30s"]
    assert main(argv) == 0
    assert [p.name for p in tmp_path.iterdir()] == [FILES["rules-file"]]
    groups = yaml.safe_load((tmp_path / FILES["rules-file"]).read_text())["groups"]
    rules = {r.get("alert"): r for r in groups[1]["rules"]}
    assert groups[0]["interval"] == "1s"
    assert rules["StreamingNoActiveStreams"]["for"] == "30s"
    assert "[30s]" in rules["StreamingHighErrorRate"]["expr"]


def test_cli_options_reach_every_file(tmp_path: Path) -> None:
    """Namespace, release, cluster, selector, job and thresholds land where they belong."""
    argv = ["render", "--output", str(tmp_path), "--namespace", "streaming"]
    argv += ["--release", "kps", "--cluster", "eu-1", "--selector", "app=nova"]
    argv += ["--selector", "tier=edge", "--job", "nova", "--peak-viewers", "500"]
    argv += ["--error-rate-ratio", "0.02", "--latency-seconds", "0.5"]
    argv += ["--cardinality-fraction", "0.9", "--runbook-base-url", "https://x.test/rb.md"]
    assert main(argv) == 0
    monitor, alerts, _ = yaml.safe_load_all((tmp_path / FILES["servicemonitor"]).read_text())
    assert monitor["metadata"] == {
        "name": "nova-streaming-monitor",
        "namespace": "streaming",
        "labels": {
            "app.kubernetes.io/name": "nova-streaming",
            "app.kubernetes.io/component": "monitoring",
            "app.kubernetes.io/part-of": "nova-streaming",
            "release": "kps",
        },
    }
    assert monitor["spec"]["selector"]["matchLabels"] == {"app": "nova", "tier": "edge"}
    rules = {r["alert"]: r for r in alerts["spec"]["groups"][0]["rules"]}
    assert rules["StreamingPeakViewersHigh"]["expr"].endswith("> 500")
    assert rules["StreamingHighErrorRate"]["expr"].endswith("> 0.02")
    assert 'le="0.5"' in rules["StreamingHighIngestionLatency"]["expr"]
    assert rules["StreamingMetricsCardinalityNearCap"]["expr"].endswith("> 0.9")
    assert rules["StreamingMetricsTargetDown"]["expr"] == 'up{job="nova"} == 0'
    assert rules["StreamingHighErrorRate"]["labels"] == {
        "severity": "warning",
        "namespace": "streaming",
        "cluster": "eu-1",
    }
    assert rules["StreamingHighErrorRate"]["annotations"]["runbook_url"] == (
        "https://x.test/rb.md#streaminghigherrorrate"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--latency-seconds", "0.7", "latency_seconds"),
        ("--namespace", "Not_A_Name", "namespace"),
        ("--selector", "novalue", "KEY=VALUE"),
        ("--for-scale", "0", "for_scale"),
        ("--eval-interval", "15", "eval_interval"),
        ("--scrape-timeout", "1m", "scrape_timeout"),
        ("--cardinality-fraction", "1.5", "cardinality_fraction"),
        ("--for-scale", "inf", "for_scale"),
        ("--for-scale", "nan", "for_scale"),
        ("--error-rate-ratio", "inf", "error_rate_ratio"),
        ("--error-rate-ratio", "nan", "error_rate_ratio"),
    ],
)
def test_cli_rejects_bad_options_naming_them(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad option exits 2 with a message naming it, and writes nothing."""
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--output", str(tmp_path / "out"), flag, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_options_validate_in_python_too() -> None:
    """RenderOptions raises RenderOptionsError (a ValueError) naming the option."""
    with pytest.raises(RenderOptionsError, match="release"):
        RenderOptions(release="")
    assert issubclass(RenderOptionsError, ValueError)


@pytest.mark.parametrize(
    ("nominal", "scale", "expected"),
    [("5m", 1.0, "5m"), ("5m", 0.1, "30s"), ("3m", 0.1, "18s"), ("10m", 0.15, "1m30s")],
)
def test_for_scale_formats_prometheus_durations(nominal: str, scale: float, expected: str) -> None:
    """Scaled for: durations are exact Prometheus durations."""
    assert RenderOptions(for_scale=scale).scaled_for(nominal) == expected
    assert format_duration(250) == "250ms"


def test_every_runbook_url_points_at_a_runbook_section(committed: Path, repo: Path) -> None:
    """Each alert's runbook_url anchor is a `## <AlertName>` heading of docs/runbook.md."""
    runbook = (repo / "docs" / "runbook.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^## (.+)$", runbook, flags=re.MULTILINE)
    }
    groups: Any = yaml.safe_load((committed / FILES["rules-file"]).read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/runbook.md#"), url
        assert url.split("#", 1)[1] in anchors, f"{rule['alert']}: no runbook section"
        for key in ("summary", "description"):
            assert rule["annotations"][key], f"{rule['alert']}: empty {key}"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}


@pytest.mark.parametrize(
    "module",
    [
        "__init__",
        "options",
        "promql",
        "rules",
        "alerts",
        "slo",
        "alertmanager",
        "kubernetes",
        "dashboard",
        "slo_dashboard",
        "render",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    """Every docstring example of nova_monitoring runs and prints what it shows."""
    name = "nova_monitoring" if module == "__init__" else f"nova_monitoring.{module}"
    imported = importlib.import_module(name)
    result = doctest.testmod(imported)
    assert result.failed == 0
