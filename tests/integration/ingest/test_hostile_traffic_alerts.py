"""Hostile traffic alone pages nobody: a real service whose trusted peers exclude the
attacker (127.0.0.1) gets forged nginx callbacks, port-scan-like connections to its
ingest port (connect and close, garbage, a full RTMP publish attempt) and bad viewer
connections. Everything is refused and counted only in the service's own metrics; then
every alert of the generated bundle (k8s/monitoring/prometheus-rules.yml) is evaluated
by promtool on the scraped series, as if that traffic went on for 40 minutes."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from nova_streaming.service_metrics import UNTRUSTED_REQUESTS, WEBSOCKET_REJECTED
from nova_streaming.tokens import publish_token
from nova_testing.waiting import wait_for
from streaming_metrics import definitions as d
from streaming_metrics.server import start_metrics_server

pytestmark = pytest.mark.slow

SECRET = "service-test-secret"  # the service fixture's publish secret
RULES = Path(__file__).resolve().parents[3] / "k8s" / "monitoring" / "prometheus-rules.yml"
JOB = "nova-streaming"
ATTACK_MINUTES = 40
EVAL_TIMES = ("15m", f"{ATTACK_MINUTES}m")
# Alerts that fire on a service with no broadcast at all, hostile traffic or not: they
# are expected on the quiet series and on the hostile series alike.
FIRING_WHEN_IDLE = frozenset({"StreamingNoActiveStreams"})
CALLBACKS = 12  # forged calls per callback endpoint
PROBES = 6  # connections per port-scan kind


Series = dict[str, float]


def _scrape(url: str) -> tuple[Series, Series, float]:
    """(cumulative samples, gauge samples, scrape seconds) of one real scrape."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    took = time.monotonic() - started
    cumulative: Series = {}
    gauges: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # creation timestamps: no rule reads them
            labels = {**sample.labels, "job": JOB, "instance": "nova-streaming-0:8081"}
            key = (
                sample.name
                + "{"
                + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
                + "}"
            )
            is_cumulative = family.type in ("counter", "histogram", "summary")
            (cumulative if is_cumulative else gauges)[key] = sample.value
    return cumulative, gauges, took


def _number(value: float) -> str:
    assert math.isfinite(value), value
    return str(int(value)) if value == int(value) else f"{value:.9f}"


def _input_series(
    before: Series, after: Series, gauges: Series, scrape_seconds: float
) -> list[dict[str, str]]:
    """promtool input series: each counter grows every minute by what the burst added
    (the attack repeated every minute), gauges stay at their scraped value."""
    series = []
    for key in sorted(set(before) | set(after)):
        start = before.get(key, 0.0)
        step = after.get(key, start) - start
        values = f"{_number(start)}+{_number(step)}x{ATTACK_MINUTES}"
        series.append({"series": key, "values": values})
    for key, value in sorted(gauges.items()):
        series.append({"series": key, "values": f"{_number(value)}x{ATTACK_MINUTES}"})
    target = f'{{instance="nova-streaming-0:8081",job="{JOB}"}}'
    series.append({"series": "up" + target, "values": f"1x{ATTACK_MINUTES}"})
    series.append(
        {
            "series": "scrape_duration_seconds" + target,
            "values": f"{_number(round(scrape_seconds, 6))}x{ATTACK_MINUTES}",
        }
    )
    return series


def _alert_tests() -> list[dict[str, Any]]:
    """For every alert of the bundle and each evaluation time: nothing, except the
    alerts that fire on an idle service, with their labels and annotations."""
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    alerts = [r for r in rules if "alert" in r]
    assert {r["alert"] for r in alerts} >= FIRING_WHEN_IDLE
    tests = []
    for when in EVAL_TIMES:
        for rule in alerts:
            expected: list[dict[str, Any]] = []
            if rule["alert"] in FIRING_WHEN_IDLE:
                expected = [
                    {
                        "exp_labels": rule.get("labels", {}),
                        "exp_annotations": rule.get("annotations", {}),
                    }
                ]
            tests.append({"eval_time": when, "alertname": rule["alert"], "exp_alerts": expected})
    return tests


async def _promtool(tmp_path: Path, name: str, series: list[dict[str, str]]) -> None:
    spec = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": _alert_tests()}],
    }
    path = tmp_path / f"{name}-test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        "promtool",
        "test",
        "rules",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"{name}: " + out.decode(errors="replace")[-4000:]


async def _forged_callbacks(base: str, attacker: str) -> str:
    """Forged on_publish (valid token, bad token, garbage) and on_publish_done calls;
    returns the stream id they name."""
    sid = str(uuid.uuid4())
    good = f"app=live&call=publish&name={sid}&type=live&token={publish_token(SECRET, sid)}"
    bodies = [good, good.replace("token=", "token=0"), "\x00garbage&&=", ""]
    transport = httpx.AsyncHTTPTransport(local_address=attacker)
    async with httpx.AsyncClient(base_url=base, timeout=10, transport=transport) as client:
        for i in range(CALLBACKS):
            body = bodies[i % len(bodies)]
            headers = {"content-type": "application/x-www-form-urlencoded"}
            published = await client.post("/rtmp/on_publish", content=body, headers=headers)
            done = await client.post("/rtmp/on_publish_done", content=body, headers=headers)
            assert (published.status_code, done.status_code) == (403, 403)
    return sid


async def _port_scan(port: int, attacker: str) -> None:
    """Connect and close; connect, send garbage; a real RTMP handshake and publish."""
    for kind in ("close", "garbage", "rtmp"):
        for _ in range(PROBES):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(attacker, 0)
            )
            with contextlib.suppress(ConnectionError, OSError):
                if kind == "garbage":
                    writer.write(b"\x16\x03\x01" + bytes(range(256)) * 4)
                elif kind == "rtmp":
                    writer.write(b"\x03" + bytes(1536))
                await writer.drain()
                while await asyncio.wait_for(reader.read(65536), 10):
                    pass  # until the service closes it
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _bad_viewers(port: int, attacker: str) -> None:
    """Viewer connections to a non-UUID id and to a stream nobody broadcasts."""
    for target in ("not-a-uuid", str(uuid.uuid4())):
        with contextlib.suppress(Exception):
            url = f"ws://127.0.0.1:{port}/ws/streams/{target}"
            async with connect(url, local_addr=(attacker, 0)) as ws:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.recv(), 10)


@pytest.mark.parametrize(
    ("trusted", "attacker"),
    [("192.0.2.0/24", "127.0.0.1"), ("127.0.0.1/32", "127.0.0.2")],
    ids=["loopback-untrusted", "attacker-beside-trusted-nginx"],
)
async def test_hostile_traffic_fires_no_alert(
    make_service: Any, tmp_path: Path, trusted: str, attacker: str
) -> None:
    """Forged callbacks and port scans from an untrusted address (127.0.0.1 with no
    loopback trusted, or 127.0.0.2 beside a trusted 127.0.0.1 as nginx would be): 403 /
    closed, counted only in untrusted_requests_total{endpoint}, no broadcast error, no
    rejected input; promtool finds the same alerts (none but the idle ones) on the
    scraped series with or without 40 minutes of that traffic."""
    service = await make_service(trusted_peers=(ipaddress.ip_network(trusted),))
    registry = service.metrics.registry
    with start_metrics_server(0, "127.0.0.1", registry) as metrics_server:
        quiet, quiet_gauges, _ = await asyncio.to_thread(_scrape, metrics_server.url)
        forged = await _forged_callbacks(service.http, attacker)
        await _port_scan(service.ingest_port, attacker)
        await _bad_viewers(service.port, attacker)
        await wait_for(
            lambda: service.sample(UNTRUSTED_REQUESTS, endpoint="ingest") == 3 * PROBES,
            what="every ingest connection counted",
        )
        hostile, gauges, took = await asyncio.to_thread(_scrape, metrics_server.url)
    assert service.sample(UNTRUSTED_REQUESTS, endpoint="on_publish") == CALLBACKS
    assert service.sample(UNTRUSTED_REQUESTS, endpoint="on_publish_done") == CALLBACKS
    for error_type in (*d.DEFAULT_ERROR_TYPES, d.OTHER):
        assert service.errors(error_type) == 0, error_type
    for reason in d.REJECT_REASONS:
        assert service.sample(d.REJECTED_INPUTS.name, reason=reason) == 0, reason
    assert await service.service.registry.authorization(forged) is None
    for reason in ("invalid_stream_id", "stream_not_active"):  # the bad viewers
        assert service.sample(WEBSOCKET_REJECTED, reason=reason) == 1, reason
    assert service.component.receiver.sessions == []
    # The same expectations hold on the quiet series and on the attack's.
    await _promtool(tmp_path, "quiet", _input_series(quiet, quiet, quiet_gauges, took))
    await _promtool(tmp_path, "hostile", _input_series(quiet, hostile, gauges, took))
