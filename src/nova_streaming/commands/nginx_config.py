"""``nova-streaming nginx-config --prefix DIR``: write the nginx-rtmp ingest config.

Renders :mod:`nova_streaming.ingest.nginx_conf` into ``DIR/nginx.conf`` (creating
``DIR/logs`` and ``DIR/tmp``) and prints the command that runs it.

Example::

    nova-streaming nginx-config --prefix /srv/nova-nginx --service-url http://127.0.0.1:8080 \\
        --push rtmp://127.0.0.1:1936/live
    # prints: nginx -p /srv/nova-nginx -c /srv/nova-nginx/nginx.conf -e .../logs/error.log
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nginx-config``."""
    parser = subparsers.add_parser(
        "nginx-config",
        help="write the nginx-rtmp ingest configuration",
        description="Write PREFIX/nginx.conf for Debian nginx + libnginx-mod-rtmp: RTMP on "
        "--rtmp-port, on_publish/on_publish_done to the service, push every stream to ONE "
        "service receiver (one relay = one owner), rtmp_stat on 127.0.0.1:--stat-port.",
    )
    parser.add_argument("--prefix", type=Path, required=True, help="nginx prefix directory")
    parser.add_argument("--rtmp-port", type=int, default=1935)
    parser.add_argument("--listen", default="", help="RTMP bind address (default: all)")
    parser.add_argument("--app", default="live", help="RTMP application name")
    parser.add_argument(
        "--service-url",
        default="http://127.0.0.1:8080",
        help="the service's public base URL, for the callbacks",
    )
    parser.add_argument(
        "--push",
        default="rtmp://127.0.0.1:1936/live",
        help="the service receiver every stream is relayed to (one URL)",
    )
    parser.add_argument("--stat-port", type=int, default=8082)
    parser.add_argument("--push-reconnect", default="1s", help="nginx time, e.g. 1s")
    parser.add_argument(
        "--drop-idle-publisher",
        default="60s",
        help="nginx time; keep it above the service's ingest timeout",
    )
    parser.add_argument("--user", default=None, help="worker user (when started as root)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the file and print how to run nginx; exit 2 on a bad option."""
    from nova_streaming.ingest.nginx_conf import NginxRtmpConfig, write_nginx_config

    try:
        config = NginxRtmpConfig(
            prefix=args.prefix.absolute(),
            rtmp_port=args.rtmp_port,
            rtmp_listen=args.listen,
            app=args.app,
            callback_base=args.service_url,
            push_urls=(args.push,),
            push_reconnect=args.push_reconnect,
            drop_idle_publisher=args.drop_idle_publisher,
            stat_port=args.stat_port,
            user=args.user,
        )
    except ValueError as exc:
        print(f"nova-streaming nginx-config: {exc}", file=sys.stderr)
        return 2
    path = write_nginx_config(config)
    prefix = path.parent
    command = ["nginx", "-p", str(prefix), "-c", str(path), "-e", str(prefix / "logs/error.log")]
    print(f"wrote {path}")
    print(shlex.join(command))
    return 0
