"""Config rendering of the local stack, checked by the real promtool and amtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from nova_streaming.stack.alertmanager import (
    RouteTiming,
    load_alertmanager_yaml,
    local_alertmanager_config,
    render_alertmanager_config,
)
from nova_streaming.stack.prometheus import PrometheusConfig, render_prometheus_config

REPO = Path(__file__).resolve().parents[3]
GENERATED_AM = REPO / "k8s" / "monitoring" / "alertmanager.yml"


def _generated_alertmanager() -> dict[str, object]:
    if GENERATED_AM.exists():
        return load_alertmanager_yaml(GENERATED_AM)
    from nova_monitoring.alertmanager import alertmanager_config
    from nova_monitoring.options import RenderOptions

    return dict(alertmanager_config(RenderOptions()))


def _rules(tmp_path: Path) -> Path:
    from nova_monitoring.options import RenderOptions
    from nova_monitoring.render import render_rules_file

    return render_rules_file(
        tmp_path / "rules.yml", RenderOptions(eval_interval="2s", for_scale=0.05)
    )


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """The rendered prometheus.yml (two replicas, rules, Alertmanager) passes promtool."""
    config = PrometheusConfig(
        metrics_targets=["127.0.0.1:8081", "127.0.0.1:8181"],
        rule_files=[_rules(tmp_path)],
        alertmanager="127.0.0.1:9093",
        self_target="127.0.0.1:9090",
        alertmanager_target="127.0.0.1:9093",
        scrape_interval=2,
        scrape_timeout=2,
        evaluation_interval=2,
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(render_prometheus_config(config))
    result = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = yaml.safe_load(path.read_text())
    service = data["scrape_configs"][0]
    assert service["job_name"] == "nova-streaming"
    assert [c["targets"] for c in service["static_configs"]] == [
        ["127.0.0.1:8081"],
        ["127.0.0.1:8181"],
    ]
    assert [c["labels"]["pod"] for c in service["static_configs"]] == [
        "nova-streaming-0",
        "nova-streaming-1",
    ]
    assert data["global"]["scrape_interval"] == "2s"
    assert data["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"
    ]
    assert data["rule_files"] == [str((tmp_path / "rules.yml").resolve())]


def test_prometheus_config_rejects_timeout_above_interval() -> None:
    """A scrape timeout longer than the interval is refused before Prometheus sees it."""
    with pytest.raises(ValueError, match="scrape_timeout"):
        PrometheusConfig(
            metrics_targets=["127.0.0.1:8081"], rule_files=[], scrape_interval=5, scrape_timeout=10
        )


def test_alertmanager_config_passes_amtool_and_targets_the_receiver(tmp_path: Path) -> None:
    """The local config keeps the generated routing and sends every receiver to the webhook."""
    generated = _generated_alertmanager()
    text = render_alertmanager_config(generated, "http://127.0.0.1:9095/webhook")
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    result = subprocess.run(
        ["amtool", "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    local = yaml.safe_load(text)
    assert local["route"] == generated["route"]
    assert local.get("inhibit_rules") == generated.get("inhibit_rules")
    names = [r["name"] for r in generated["receivers"]]  # type: ignore[index]
    assert [r["name"] for r in local["receivers"]] == names
    for receiver in local["receivers"]:
        assert set(receiver) == {"name", "webhook_configs"}
        assert receiver["webhook_configs"] == [
            {"url": f"http://127.0.0.1:9095/webhook/{receiver['name']}", "send_resolved": True}
        ]
    assert "slack" not in text.lower().replace("slack-streaming", "")


def test_alertmanager_timing_compression_reaches_every_route() -> None:
    """Compressed timing replaces group_wait/interval/repeat wherever the routing sets them."""
    generated = {
        "route": {
            "receiver": "a",
            "group_wait": "30s",
            "repeat_interval": "12h",
            "routes": [{"receiver": "a", "repeat_interval": "1h"}, {"receiver": "a"}],
        },
        "receivers": [{"name": "a", "slack_configs": [{"channel": "#x"}]}],
    }
    local = local_alertmanager_config(
        generated, "http://127.0.0.1:1/webhook", RouteTiming(1, 2, 60)
    )
    route = local["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s",
        "2s",
        "1m",
    )
    assert route["routes"][0] == {"receiver": "a", "repeat_interval": "1m"}
    assert route["routes"][1] == {"receiver": "a"}
    # The input is not modified.
    assert generated["route"]["group_wait"] == "30s"


def test_alertmanager_config_without_route_is_refused() -> None:
    """A file that is not an Alertmanager config fails with a message saying so."""
    with pytest.raises(ValueError, match="no route"):
        local_alertmanager_config({"receivers": []}, "http://127.0.0.1:1/webhook")
