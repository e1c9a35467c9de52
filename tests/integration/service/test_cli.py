"""The ``nova-streaming`` console script: token, settings errors, serve and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from nova_streaming.tokens import publish_token

CLI = str(Path(sys.executable).parent / "nova-streaming")
SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_")}
    env.update(extra)
    return env


def test_token_prints_the_hmac_of_the_stream_id() -> None:
    """`token STREAM_ID` prints lowercase hex HMAC-SHA256 under NOVA_PUBLISH_SECRET."""
    out = subprocess.run(
        [CLI, "token", SID],
        env=clean_env(NOVA_PUBLISH_SECRET="s3cret"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == publish_token("s3cret", SID)
    assert out.stdout.strip() == out.stdout.strip().lower()
    flag = subprocess.run(
        [CLI, "token", SID, "--secret", "other"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert flag.stdout.strip() == publish_token("other", SID)


def test_token_refuses_without_secret_or_with_a_bad_id() -> None:
    """No secret, or a non-UUID stream ID, exits 2 with a message naming the problem."""
    no_secret = subprocess.run([CLI, "token", SID], env=clean_env(), capture_output=True, text=True)
    assert no_secret.returncode == 2
    assert "NOVA_PUBLISH_SECRET" in no_secret.stderr
    bad = subprocess.run(
        [CLI, "token", "abc", "--secret", "x"], env=clean_env(), capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "STREAM_ID" in bad.stderr


def test_serve_with_a_bad_setting_exits_2_naming_it() -> None:
    """A bad environment value or flag stops `serve` at start with the setting's name."""
    env_bad = subprocess.run(
        [CLI, "serve"], env=clean_env(NOVA_PORT="abc"), capture_output=True, text=True, timeout=30
    )
    assert env_bad.returncode == 2
    assert "NOVA_PORT: must be an integer 1-65535, got 'abc'" in env_bad.stderr
    flag_bad = subprocess.run(
        [CLI, "serve", "--presence", "etcd"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert flag_bad.returncode == 2
    assert "NOVA_PRESENCE" in flag_bad.stderr


def test_serve_answers_and_stops_cleanly_on_sigterm(
    free_ports: Callable[[], int], tmp_path: Path
) -> None:
    """`serve` answers /readyz on NOVA_PORT and /metrics on NOVA_METRICS_PORT; SIGTERM
    runs the whole shutdown (lifespan included), then the process ends by that signal
    (uvicorn re-raises it, so the exit status says "terminated")."""
    port, metrics_port, ingest_port = free_ports(), free_ports(), free_ports()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [CLI, "serve", "--host=127.0.0.1", "--metrics-host=127.0.0.1", "--region=cli-test"],
            env=clean_env(
                NOVA_PORT=str(port),
                NOVA_METRICS_PORT=str(metrics_port),
                # serve also starts the RTMP receiver: never the default port in a test
                NOVA_INGEST_PORT=str(ingest_port),
            ),
            stdout=sink,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "serve exited early"
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.05)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'nova_streaming_active_streams{region="cli-test"} 0.0' in metrics
        assert "nova_streaming_presence_up 1.0" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == -signal.SIGTERM
        text = log.read_text()
        assert "Application shutdown complete" in text
        assert "Traceback" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
