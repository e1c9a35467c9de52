"""The nginx-rtmp configuration renderer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nova_streaming.ingest.nginx_conf import (
    NginxRtmpConfig,
    render_nginx_config,
    write_nginx_config,
)


def test_rendered_config_contents(tmp_path: Path) -> None:
    """The file loads the module, keeps paths under the prefix, calls back and pushes."""
    text = render_nginx_config(
        NginxRtmpConfig(
            prefix=tmp_path,
            rtmp_port=19350,
            stat_port=18080,
            callback_base="http://127.0.0.1:8080/",
            push_urls=("rtmp://127.0.0.1:1936/live", "rtmp://10.0.0.2:1936/live"),
        )
    )
    assert text.splitlines()[1] == "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;"
    assert f"pid {tmp_path}/logs/nginx.pid;" in text
    assert f"error_log {tmp_path}/logs/error.log info;" in text
    assert "daemon off;" in text and "listen 19350;" in text
    assert "on_publish http://127.0.0.1:8080/rtmp/on_publish;" in text
    assert "on_publish_done http://127.0.0.1:8080/rtmp/on_publish_done;" in text
    assert "push rtmp://127.0.0.1:1936/live;" in text and "push rtmp://10.0.0.2:1936/live;" in text
    assert "listen 127.0.0.1:18080;" in text and "rtmp_stat all;" in text
    assert "daemon" not in render_nginx_config(NginxRtmpConfig(prefix=tmp_path, daemon=None))


def test_nginx_accepts_the_rendered_file(tmp_path: Path) -> None:
    """`nginx -t` (the Debian binary) accepts the written configuration."""
    conf = write_nginx_config(NginxRtmpConfig(prefix=tmp_path, rtmp_port=19351, stat_port=18081))
    result = subprocess.run(
        [
            "nginx",
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-e",
            str(tmp_path / "logs" / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tmp" / "client_body").is_dir()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rtmp_port": 0}, "rtmp_port"),
        ({"rtmp_port": 8082}, "must differ"),
        ({"app": "li ve"}, "app"),
        ({"callback_base": "ftp://x"}, "callback_base"),
        ({"push_urls": ()}, "push URL"),
        ({"push_urls": ("http://x/live",)}, "rtmp://"),
        ({"push_urls": ("rtmp://x/live; evil",)}, "rtmp://"),
        ({"push_reconnect": "soon"}, "push_reconnect"),
        ({"prefix": "/tmp/a b"}, "no spaces"),
        ({"chunk_size": 10}, "chunk_size"),
    ],
)
def test_invalid_settings_rejected(kwargs: dict[str, object], match: str) -> None:
    """Bad ports, names, URLs and durations are ValueErrors naming the setting."""
    kwargs.setdefault("prefix", "/tmp/p")
    with pytest.raises(ValueError, match=match):
        NginxRtmpConfig(**kwargs)  # type: ignore[arg-type]
