"""``nova-streaming verify``: the guide's Integration Checklist against a running system.

The checks live in :mod:`nova_streaming.stack.verify`; this module only parses flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["EXTRAS", "add_parser", "run"]

EXTRAS = ("monitoring",)
"""It reads the generated rules and dashboard (YAML)."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``verify``."""
    from nova_streaming.stack.scenario import SCENARIOS

    parser = subparsers.add_parser(
        "verify",
        help="check the Integration Checklist (targets, rules, panels, alerts, cardinality)",
        description="Exit 0 when every check passes, 1 otherwise.",
    )
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--alertmanager", default="http://127.0.0.1:9093")
    parser.add_argument("--receiver", default="http://127.0.0.1:9095")
    parser.add_argument("--scenario", choices=SCENARIOS, default="healthy")
    parser.add_argument("--replicas", type=int, default=1, help="service targets expected")
    parser.add_argument("--dashboard", type=Path, default=None, help="dashboard JSON")
    parser.add_argument("--window", type=float, default=5.0, help="minutes of panel data")
    parser.add_argument("--series-cap", type=int, default=None)
    parser.add_argument(
        "--service",
        default=None,
        help="a replica's HTTP URL: also check its /api/v1/streams?sort=lag (degraded)",
    )
    parser.add_argument(
        "--wait", type=float, default=0.0, help="retry for up to SECONDS until all pass"
    )
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between retries")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the checks (retrying with --wait) and print the table."""
    from nova_streaming.stack.verify import Check, VerifyConfig, format_table, verify

    config = VerifyConfig(
        prometheus_url=args.prometheus,
        alertmanager_url=args.alertmanager or None,
        receiver_url=args.receiver or None,
        scenario=args.scenario,
        replicas=args.replicas,
        dashboard_path=args.dashboard,
        window_minutes=args.window,
        series_cap=args.series_cap,
        service_url=args.service,
    )

    def progress(checks: list[Check]) -> None:
        failing = [c.name for c in checks if not c.ok]
        print(f"[verify] {len(failing)} failing, retrying: {'; '.join(failing)}", flush=True)

    checks = verify(config, wait=args.wait, interval=args.interval, progress=progress)
    print(format_table(checks))
    ok = all(c.ok for c in checks)
    if not ok:
        print("nova-streaming: verify: some checks failed", file=sys.stderr)
    return 0 if ok else 1
