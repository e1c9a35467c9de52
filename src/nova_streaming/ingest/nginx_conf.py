"""Render the nginx-rtmp configuration of the public ingest (Debian ``nginx`` +
``libnginx-mod-rtmp``), run under its own prefix directory, never as the system service.

The rendered file loads the RTMP module itself, keeps pid, logs and temp paths under
the prefix, listens for RTMP (1935 by default), calls the service's ``on_publish`` and
``on_publish_done``, ``push``es every published stream to the service's ingest
receiver, and serves ``rtmp_stat`` on a loopback HTTP port. Run it with::

    nginx -p PREFIX -c PREFIX/nginx.conf -e PREFIX/logs/error.log

Example::

    >>> conf = render_nginx_config(NginxRtmpConfig(prefix="/tmp/nova-nginx"))
    >>> "push rtmp://127.0.0.1:1936/live;" in conf
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

RTMP_MODULE_PATH = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s;{}'\"]+$")
_DURATION = re.compile(r"^[0-9]{1,6}(ms|s|m)?$")
_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True, slots=True)
class NginxRtmpConfig:
    """Everything the rendered configuration depends on.

    ``callback_base`` is the service's public HTTP base URL (on_publish goes to
    ``callback_base + on_publish_path``); ``push_urls`` the receivers every stream is
    pushed to (nginx appends the stream name); ``stat_port`` the loopback HTTP port
    serving ``/stat``. ``daemon=None`` leaves ``daemon`` out (so ``-g 'daemon off;'``
    can be given on the command line); ``False`` renders ``daemon off;``.
    ``master_process=False`` runs one process, simplest to supervise; with a master,
    ``worker_processes`` stays 1 because nginx-rtmp's live streams are per worker.

    Example::

        >>> NginxRtmpConfig(prefix="/srv/nginx", rtmp_port=19350).app
        'live'
    """

    prefix: str | Path
    rtmp_port: int = 1935
    rtmp_listen: str = ""
    app: str = "live"
    callback_base: str = "http://127.0.0.1:8080"
    on_publish_path: str = "/rtmp/on_publish"
    on_publish_done_path: str = "/rtmp/on_publish_done"
    push_urls: tuple[str, ...] = field(default=("rtmp://127.0.0.1:1936/live",))
    push_reconnect: str = "1s"
    stat_port: int = 8082
    chunk_size: int = 4096
    drop_idle_publisher: str = "10s"
    daemon: bool | None = False
    master_process: bool = True
    user: str | None = None
    module_path: str = RTMP_MODULE_PATH

    def __post_init__(self) -> None:
        for name in ("rtmp_port", "stat_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ValueError(f"nginx config: {name} {port} outside 1..65535")
        if self.rtmp_port == self.stat_port:
            raise ValueError("nginx config: rtmp_port and stat_port must differ")
        if not _NAME.match(self.app):
            raise ValueError(f"nginx config: app {self.app!r} must match {_NAME.pattern}")
        if not _URL.match(self.callback_base) or not self.callback_base.startswith("http"):
            raise ValueError(f"nginx config: callback_base {self.callback_base!r} is no URL")
        for path in (self.on_publish_path, self.on_publish_done_path):
            if not path.startswith("/") or not _URL.match("http://h" + path):
                raise ValueError(f"nginx config: callback path {path!r} is invalid")
        if not self.push_urls:
            raise ValueError("nginx config: at least one push URL is needed")
        for url in self.push_urls:
            if not url.startswith("rtmp://") or not _URL.match(url):
                raise ValueError(f"nginx config: push URL {url!r} is not an rtmp:// URL")
        for name in ("push_reconnect", "drop_idle_publisher"):
            if not _DURATION.match(getattr(self, name)):
                raise ValueError(f"nginx config: {name} must be an nginx time like 10s")
        if not 128 <= self.chunk_size <= 65536:
            raise ValueError("nginx config: chunk_size outside 128..65536")
        text_fields = (str(self.prefix), self.rtmp_listen, self.module_path, self.user or "")
        if any(ch in value for value in text_fields for ch in " ;{}'\"\n\t#"):
            raise ValueError("nginx config: prefix, listen, module path and user take no spaces")


def render_nginx_config(config: NginxRtmpConfig) -> str:
    """The nginx.conf text (absolute paths under ``config.prefix``).

    Example::

        >>> text = render_nginx_config(NginxRtmpConfig(prefix="/p", daemon=None))
        >>> "daemon" in text, "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;" in text
        (False, True)
    """
    prefix = Path(config.prefix).absolute()
    listen = (
        f"{config.rtmp_listen}:{config.rtmp_port}" if config.rtmp_listen else str(config.rtmp_port)
    )
    base = config.callback_base.rstrip("/")
    lines = [
        "# Rendered by nova-streaming (nova_streaming.ingest.nginx_conf); do not edit.",
        f"load_module {config.module_path};",
        "",
    ]
    if config.daemon is not None:
        lines.append(f"daemon {'on' if config.daemon else 'off'};")
    lines += [
        f"master_process {'on' if config.master_process else 'off'};",
        "worker_processes 1;",
        f"pid {prefix}/logs/nginx.pid;",
        f"error_log {prefix}/logs/error.log info;",
    ]
    if config.user:
        lines.append(f"user {config.user};")
    lines += [
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
        "rtmp {",
        f"    access_log {prefix}/logs/rtmp-access.log;",
        "    server {",
        f"        listen {listen};",
        f"        chunk_size {config.chunk_size};",
        "        notify_method post;",
        "",
        f"        application {config.app} {{",
        "            live on;",
        "            record off;",
        "            deny play all;",
        f"            drop_idle_publisher {config.drop_idle_publisher};",
        f"            on_publish {base}{config.on_publish_path};",
        f"            on_publish_done {base}{config.on_publish_done_path};",
    ]
    lines += [f"            push {url};" for url in config.push_urls]
    lines += [
        f"            push_reconnect {config.push_reconnect};",
        "        }",
        "    }",
        "}",
        "",
        "http {",
        "    access_log off;",
    ]
    lines += [f"    {name}_temp_path {prefix}/tmp/{name};" for name in _TEMP_DIRS]
    lines += [
        "    server {",
        f"        listen 127.0.0.1:{config.stat_port};",
        "        location /stat {",
        "            rtmp_stat all;",
        "        }",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


def write_nginx_config(config: NginxRtmpConfig) -> Path:
    """Create the prefix layout (logs/, tmp/*) and write ``nginx.conf``; return its path.

    Example::

        path = write_nginx_config(NginxRtmpConfig(prefix=tmp_path, rtmp_port=19350))
        # nginx -p {tmp_path} -c {path} -e {tmp_path}/logs/error.log
    """
    prefix = Path(config.prefix).absolute()
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    for name in _TEMP_DIRS:
        (prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(render_nginx_config(config))
    return path
