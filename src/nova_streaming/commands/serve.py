"""``nova-streaming serve``: run one replica (app on NOVA_PORT, /metrics on NOVA_METRICS_PORT)."""

from __future__ import annotations

import argparse
import logging

from nova_streaming.settings import SETTING_SPECS, Settings, process_environ
from streaming_metrics import StreamingMetrics
from streaming_metrics.helpers import set_default_metrics

__all__ = ["EXTRAS", "add_parser", "run", "settings_from_args"]

EXTRAS = ("service",)
"""uvicorn, Starlette, websockets and redis: imported in :func:`run` only."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``serve`` with one flag per setting (flags override ``NOVA_*``)."""
    parser = subparsers.add_parser(
        "serve",
        help="run the streaming service",
        description="Run one replica. Every flag overrides its NOVA_ environment variable.",
    )
    for spec in SETTING_SPECS:
        parser.add_argument(
            spec.flag,
            dest=spec.field,
            default=None,
            metavar="VALUE",
            help=f"{spec.help} ({spec.env})",
        )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment with the flags given on the command line on top."""
    overrides = {spec.field: getattr(args, spec.field, None) for spec in SETTING_SPECS}
    return Settings.from_env(process_environ(), overrides)


def run(args: argparse.Namespace) -> int:
    """Validate settings (SettingsError exits 2), then serve until SIGTERM/SIGINT."""
    from nova_streaming.extensions import load_extensions
    from nova_streaming.runner import run as run_service
    from nova_streaming.runner import serve

    settings = settings_from_args(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    metrics = StreamingMetrics(
        max_tracked_streams=settings.max_tracked_streams,
        series_linger_seconds=settings.series_linger,
        regions=[settings.region],
    )
    # The guide's helper functions then record into the same instance.
    set_default_metrics(metrics)
    run_service(serve(settings, metrics=metrics, extensions=load_extensions(settings)))
    return 0
