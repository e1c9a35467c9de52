"""amtool on the rendered alertmanager.yml, and the AlertmanagerConfig's equivalence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nova_monitoring.alertmanager import INFO_RECEIVER, SLACK_RECEIVER, receiver_for_severity
from nova_monitoring.render import FILES


def test_amtool_accepts_the_config(committed: Path, amtool: str, run: Any) -> None:
    """amtool check-config passes on the committed alertmanager.yml."""
    result = run(amtool, "check-config", committed / FILES["alertmanager"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "2 receivers" in result.stdout


@pytest.mark.parametrize(
    ("severity", "receiver"),
    [
        ("critical", SLACK_RECEIVER),
        ("warning", SLACK_RECEIVER),
        ("info", INFO_RECEIVER),
        ("unexpected", SLACK_RECEIVER),
    ],
)
def test_amtool_routes_each_severity(
    severity: str, receiver: str, committed: Path, amtool: str, run: Any
) -> None:
    """amtool config routes test sends critical and warning to Slack, info to the sink."""
    result = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={committed / FILES['alertmanager']}",
        f"--verify.receivers={receiver}",
        "alertname=StreamingHighErrorRate",
        f"severity={severity}",
        "namespace=default",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver
    assert receiver_for_severity(severity) == receiver


def test_amtool_route_test_detects_a_wrong_receiver(committed: Path, amtool: str, run: Any) -> None:
    """The route check can fail: info is not delivered to Slack."""
    result = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={committed / FILES['alertmanager']}",
        f"--verify.receivers={SLACK_RECEIVER}",
        "severity=info",
    )
    assert result.returncode != 0


def test_info_receiver_pages_nobody_and_slack_url_is_a_secret(committed: Path) -> None:
    """The info receiver has no integration; no webhook URL is written in either file."""
    plain = yaml.safe_load((committed / FILES["alertmanager"]).read_text())
    receivers = {r["name"]: r for r in plain["receivers"]}
    assert receivers[INFO_RECEIVER] == {"name": INFO_RECEIVER}
    slack = receivers[SLACK_RECEIVER]["slack_configs"][0]
    assert "api_url" not in slack
    assert slack["api_url_file"].startswith("/etc/alertmanager/secrets/")
    resource = yaml.safe_load((committed / FILES["alertmanager-config"]).read_text())
    crd_slack = resource["spec"]["receivers"][0]["slackConfigs"][0]
    assert crd_slack["apiURL"] == {"name": "nova-alertmanager-slack", "key": "webhook-url"}
    for name in (FILES["alertmanager"], FILES["alertmanager-config"]):
        assert "hooks.slack.com" not in (committed / name).read_text()


def test_alertmanagerconfig_routes_like_the_plain_config(committed: Path) -> None:
    """The AlertmanagerConfig has the same receivers, matchers, grouping and inhibitions."""
    plain = yaml.safe_load((committed / FILES["alertmanager"]).read_text())
    spec = yaml.safe_load((committed / FILES["alertmanager-config"]).read_text())["spec"]

    def crd_matchers(matchers: list[dict[str, str]]) -> list[str]:
        return [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in matchers]

    assert spec["route"]["receiver"] == plain["route"]["receiver"]
    assert spec["route"]["groupBy"] == plain["route"]["group_by"]
    assert [(r["receiver"], crd_matchers(r["matchers"])) for r in spec["route"]["routes"]] == [
        (r["receiver"], r["matchers"]) for r in plain["route"]["routes"]
    ]
    assert [
        (crd_matchers(i["sourceMatch"]), crd_matchers(i["targetMatch"]), i["equal"])
        for i in spec["inhibitRules"]
    ] == [(i["source_matchers"], i["target_matchers"], i["equal"]) for i in plain["inhibit_rules"]]
    assert sorted(r["name"] for r in spec["receivers"]) == sorted(
        r["name"] for r in plain["receivers"]
    )
