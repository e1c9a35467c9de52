"""The local webhook receiver records what Alertmanager sends, and nothing else."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from nova_streaming.stack.receiver import firing_alert_names, start_receiver


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _payload(name: str, status: str = "firing") -> bytes:
    return json.dumps(
        {
            "receiver": "slack-streaming",
            "status": status,
            "alerts": [{"status": status, "labels": {"alertname": name}}],
        }
    ).encode()


def test_receiver_records_notifications_in_order() -> None:
    """Posted notifications come back from /alerts, oldest first, with the receiver path."""
    with start_receiver(0) as receiver:
        assert _post(f"{receiver.webhook_url}/slack-streaming", _payload("A")) == 200
        assert _post(f"{receiver.webhook_url}/info-sink", _payload("B", "resolved")) == 200
        with urllib.request.urlopen(f"{receiver.url}/alerts", timeout=5) as response:
            listed = json.loads(response.read())
    assert [n["alerts"][0]["labels"]["alertname"] for n in listed] == ["A", "B"]
    assert [n["path_receiver"] for n in listed] == ["slack-streaming", "info-sink"]
    assert firing_alert_names(listed) == {"A"}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/webhook/x", b"not json", 400),
        ("/webhook/x", b'{"no": "alerts"}', 400),
        ("/webhook/x", b"[1, 2]", 400),
        ("/elsewhere", b"{}", 404),
    ],
)
def test_receiver_rejects_bad_posts(path: str, body: bytes, status: int) -> None:
    """Malformed bodies and unknown paths are refused and not recorded."""
    with start_receiver(0) as receiver:
        assert _post(f"{receiver.url}{path}", body) == status
        assert receiver.notifications() == []


def test_receiver_keeps_a_bounded_history() -> None:
    """Only the newest ``limit`` notifications are kept."""
    with start_receiver(0, limit=3) as receiver:
        for n in range(5):
            assert _post(receiver.webhook_url, _payload(f"A{n}")) == 200
        names = [n["alerts"][0]["labels"]["alertname"] for n in receiver.notifications()]
    assert names == ["A2", "A3", "A4"]
