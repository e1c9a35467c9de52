"""``nova-streaming nginx-config``: writes the ingest config and prints how to run it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nova_streaming.cli import main


def test_writes_config_and_prints_the_nginx_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The config pushes to the one given receiver, calls the given service, and nginx
    accepts it (nginx -t); the printed command runs it under the prefix."""
    prefix = tmp_path / "ngx"
    code = main(
        ["nginx-config", "--prefix", str(prefix), "--rtmp-port", "19350", "--stat-port",
         "18082", "--service-url", "http://127.0.0.1:9000", "--push",
         "rtmp://127.0.0.1:2936/live", "--push-reconnect", "2s"]
    )  # fmt: skip
    assert code == 0
    text = (prefix / "nginx.conf").read_text()
    assert "push rtmp://127.0.0.1:2936/live;" in text and text.count("push rtmp://") == 1
    assert "on_publish http://127.0.0.1:9000/rtmp/on_publish;" in text
    assert "on_publish_done http://127.0.0.1:9000/rtmp/on_publish_done;" in text
    assert "push_reconnect 2s;" in text and "listen 19350;" in text
    out = capsys.readouterr().out.splitlines()
    conf, log = prefix / "nginx.conf", prefix / "logs" / "error.log"
    assert out[-1] == f"nginx -p {prefix} -c {conf} -e {log}"
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(prefix), "-c", str(conf), "-e", str(log)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_bad_push_url_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A push target that is not rtmp:// is refused with exit 2 and nothing written."""
    code = main(["nginx-config", "--prefix", str(tmp_path / "x"), "--push", "http://h/live"])
    assert code == 2
    assert "push URL 'http://h/live' is not an rtmp:// URL" in capsys.readouterr().err
    assert not (tmp_path / "x" / "nginx.conf").exists()
