"""amtool on the rendered alertmanager.yml, and the AlertmanagerConfig's equivalence."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
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


ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
_LISTENING = re.compile(r'msg="Listening on" address=(127\.0\.0\.1:\d+)')


@pytest.fixture
def alertmanager(committed: Path, tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on a free loopback port running the committed config."""
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={committed / FILES['alertmanager']}",
                f"--storage.path={tmp_path / 'data'}",
                "--web.listen-address=127.0.0.1:0",
                "--cluster.listen-address=",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        address = None
        while address is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            found = _LISTENING.search(log.read_text())
            address = found.group(1) if found else None
            if address is None:
                time.sleep(0.05)
        yield f"http://{address}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _post_alerts(base: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(
        f"{base}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def _states(base: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=10) as reply:
        listed = json.load(reply)
    return {a["labels"]["alertname"]: a["status"]["state"] for a in listed}


def test_target_absent_mutes_only_streaming_alerts(alertmanager: str) -> None:
    """With no streaming target, streaming warnings are inhibited, but another team's
    (or the cluster's own) warning in the same namespace still notifies: a pod crash
    loop is the likely reason the target is absent."""
    where = {"namespace": "default", "cluster": "local"}
    _post_alerts(
        alertmanager,
        [
            {"alertname": "StreamingMetricsTargetAbsent", "severity": "critical", **where},
            {"alertname": "StreamingWebSocketConnectionDrop", "severity": "warning", **where},
            {"alertname": "StreamingNoActiveStreams", "severity": "info", **where},
            {"alertname": "KubePodCrashLooping", "severity": "warning", **where},
        ],
    )
    deadline = time.monotonic() + 30
    while True:
        states = _states(alertmanager)
        if states.get("StreamingWebSocketConnectionDrop") == "suppressed":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.1)
    assert states == {
        "StreamingMetricsTargetAbsent": "active",
        "StreamingWebSocketConnectionDrop": "suppressed",
        "StreamingNoActiveStreams": "suppressed",
        "KubePodCrashLooping": "active",
    }


@pytest.mark.parametrize(
    ("alertname", "severity", "window"),
    [
        ("StreamingLatencyBudgetBurn", "critical", "1h/5m"),
        ("StreamingErrorBudgetBurn", "critical", "6h/30m"),
        ("StreamingLatencyBudgetBurn", "warning", "1d/2h"),
        ("StreamingErrorBudgetBurn", "warning", "3d/6h"),
    ],
)
def test_amtool_routes_the_slo_burn_alerts_to_slack(
    alertname: str, severity: str, window: str, committed: Path, amtool: str, run: Any
) -> None:
    """SLO pages (critical) and tickets (warning) both reach Slack, never the info sink."""
    result = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={committed / FILES['alertmanager']}",
        f"--verify.receivers={SLACK_RECEIVER}",
        f"alertname={alertname}",
        f"severity={severity}",
        "slo=ingest-latency",
        f"window={window}",
        "namespace=default",
        "cluster=local",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == SLACK_RECEIVER


def test_an_slo_page_mutes_the_same_slos_tickets_only(alertmanager: str) -> None:
    """A critical burn of one SLO inhibits that SLO's warning burns, not another SLO's."""
    where = {"namespace": "default", "cluster": "local"}
    latency = {"alertname": "StreamingLatencyBudgetBurn", "slo": "ingest-latency", **where}
    errors = {"alertname": "StreamingErrorBudgetBurn", "slo": "ingest-errors", **where}
    _post_alerts(
        alertmanager,
        [
            {**latency, "severity": "critical", "window": "1h/5m"},
            {**latency, "severity": "warning", "window": "1d/2h"},
            {**errors, "severity": "warning", "window": "3d/6h"},
        ],
    )
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=10) as reply:
            listed = json.load(reply)
        states = {
            (a["labels"]["alertname"], a["labels"]["window"]): a["status"]["state"] for a in listed
        }
        if states.get(("StreamingLatencyBudgetBurn", "1d/2h")) == "suppressed":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.1)
    assert states == {
        ("StreamingLatencyBudgetBurn", "1h/5m"): "active",
        ("StreamingLatencyBudgetBurn", "1d/2h"): "suppressed",
        ("StreamingErrorBudgetBurn", "3d/6h"): "active",
    }
