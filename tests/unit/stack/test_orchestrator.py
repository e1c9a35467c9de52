"""`stack up` before anything runs: missing packages, and what it prints once ready."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from nova_streaming.stack import orchestrator
from nova_streaming.stack.orchestrator import (
    LocalStack,
    StackError,
    StackOptions,
    cli_command,
    with_ports,
)
from nova_streaming.tokens import verify_publish_token


def test_summary_prints_a_valid_publish_command_and_its_viewer_url(tmp_path: Path) -> None:
    """The printed ffmpeg command publishes a fresh UUID with this run's valid token."""
    options = with_ports(StackOptions(run_dir=tmp_path / "run", replicas=2), rtmp=11935)
    stack = LocalStack(options, say=lambda _m: None)
    text = stack.summary()
    command = next(line.strip() for line in text.splitlines() if "ffmpeg" in line)
    argv = shlex.split(command)
    assert argv[0] == "ffmpeg"
    match = re.fullmatch(
        r"rtmp://127\.0\.0\.1:11935/live/([0-9a-f-]{36})\?token=([0-9a-f]{64})", argv[-1]
    )
    assert match is not None, argv[-1]
    stream_id, token = match.groups()
    assert verify_publish_token(stack.secret, stream_id, token)
    assert not verify_publish_token(stack.secret + "x", stream_id, token)
    assert f"ws://127.0.0.1:8080/ws/streams/{stream_id}" in text
    assert "http://127.0.0.1:8180/api/v1/streams" in text  # replica 1
    assert "--replicas 2" in text
    assert f"stack down --run-dir {tmp_path / 'run'}" in text
    # A second summary is a fresh stream ID.
    assert stream_id not in stack.summary()


def test_cli_command_names_the_virtualenv_script_when_not_on_path() -> None:
    """The printed commands work from a shell where the virtualenv is not activated."""
    script = Path(sys.executable).parent / "nova-streaming"
    printed = cli_command(sys.executable)
    assert Path(printed).absolute() == script.absolute()
    assert cli_command("/nonexistent/bin/python") == "/nonexistent/bin/python -m nova_streaming.cli"


def test_missing_system_package_stops_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing binary names its Debian package and how to install it; no run dir is made."""
    monkeypatch.setitem(
        orchestrator.REQUIRED_BINARIES,
        "alertmanager",
        (str(tmp_path / "absent" / "prometheus-alertmanager"), "prometheus-alertmanager"),
    )
    stack = LocalStack(StackOptions(run_dir=tmp_path / "run"), say=lambda _m: None)
    with pytest.raises(StackError) as caught:
        stack.up()
    message = str(caught.value)
    assert message.startswith("stack: missing system packages: prometheus-alertmanager.")
    assert "./scripts/setup" in message
    assert "sudo apt-get install prometheus-alertmanager" in message
    assert not (tmp_path / "run").exists()
