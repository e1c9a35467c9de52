"""``nova-streaming stack up|down|status``: the whole system on this machine (``make run``).

The work lives in :mod:`nova_streaming.stack`; this module only parses flags.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

__all__ = ["EXTRAS", "add_parser", "run"]

EXTRAS = ("service", "monitoring")
"""It runs replicas and renders Prometheus/Alertmanager configuration (YAML)."""


class _StopRequested(BaseException):
    """Ctrl-C or SIGTERM: leave the wait loop and stop everything."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``stack`` and its ``up``, ``down`` and ``status`` actions."""
    from nova_streaming.stack.orchestrator import StackPorts
    from nova_streaming.stack.scenario import SCENARIOS

    parser = subparsers.add_parser(
        "stack",
        help="run the whole system locally (make run)",
        description="nginx-rtmp, the service, Prometheus, Alertmanager, synthetic "
        "broadcasters and viewers, and a dashboard preview, on loopback ports.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    up = actions.add_parser("up", help="start everything and wait (Ctrl-C stops it)")
    down = actions.add_parser("down", help="stop a stack started from --run-dir")
    status = actions.add_parser("status", help="what a stack in --run-dir runs")
    for sub in (up, down, status):
        sub.add_argument("--run-dir", type=Path, default=Path("run"), help="default ./run")
    up.add_argument("--scenario", choices=SCENARIOS, default="healthy")
    up.add_argument("--replicas", type=int, default=1, help="2+ adds Redis presence")
    up.add_argument(
        "--fast", action="store_true", help="compress time (CI): short for:, windows, timeouts"
    )
    up.add_argument("--k8s-dir", type=Path, default=Path("k8s/monitoring"))
    up.add_argument("--region", default="local")
    up.add_argument("--no-preview", action="store_true")
    up.add_argument("--no-broadcasters", action="store_true")
    up.add_argument("--no-viewers", action="store_true")
    up.add_argument("--duration", type=float, default=None, help="stop by itself after SECONDS")
    up.add_argument("--ready-timeout", type=float, default=60.0)
    defaults = StackPorts()
    ports = up.add_argument_group("ports (loopback)")
    for name in (
        "rtmp", "nginx_stat", "http", "metrics", "ingest", "prometheus", "alertmanager",
        "receiver", "preview", "redis", "replica_step",
    ):  # fmt: skip
        flag = "--" + name.replace("_", "-") + ("" if name == "replica_step" else "-port")
        ports.add_argument(flag, dest=f"port_{name}", type=int, default=getattr(defaults, name))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action."""
    if args.action == "up":
        return _up(args)
    if args.action == "down":
        return _down(args)
    return _status(args)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested


def _up(args: argparse.Namespace) -> int:
    from nova_streaming.stack.orchestrator import (
        LocalStack,
        StackError,
        StackOptions,
        StackPorts,
    )
    from nova_streaming.stack.ports import PortInUseError
    from nova_streaming.stack.supervisor import ProcessStartError

    ports = StackPorts(
        **{
            key[len("port_") :]: value
            for key, value in vars(args).items()
            if key.startswith("port_")
        }
    )
    try:
        options = StackOptions(
            run_dir=args.run_dir,
            scenario=args.scenario,
            replicas=args.replicas,
            ports=ports,
            fast=args.fast,
            k8s_dir=args.k8s_dir,
            region=args.region,
            preview=not args.no_preview,
            broadcasters=not args.no_broadcasters,
            viewers=not args.no_viewers,
            ready_timeout=args.ready_timeout,
        )
    except StackError as exc:
        print(f"nova-streaming: {exc}", file=sys.stderr)
        return 2
    stack = LocalStack(options)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        stack.up()
        print(stack.summary(), flush=True)
        stack.write_urls()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(1.0)
            dead = stack.dead_parts()
            if dead:
                print(
                    f"nova-streaming: stack: {', '.join(dead)} exited; see "
                    f"{stack.run_dir / 'logs'}; stopping everything",
                    file=sys.stderr,
                )
                code = 1
                break
    except _StopRequested:
        print("\n[stack] stopping ...", flush=True)
    except (StackError, PortInUseError, ProcessStartError, FileNotFoundError, ValueError) as exc:
        print(f"nova-streaming: {exc}", file=sys.stderr)
        code = 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        stack.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0:
        print("[stack] stopped", flush=True)
    return code


def _down(args: argparse.Namespace) -> int:
    from nova_streaming.stack.supervisor import stop_recorded

    stopped = stop_recorded(args.run_dir, progress=lambda m: print(f"[stack] {m}", flush=True))
    if not stopped:
        print(f"[stack] no running stack recorded in {args.run_dir}")
    else:
        print(f"[stack] stopped: {', '.join(stopped)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from nova_streaming.stack.supervisor import read_state, start_ticks

    state = read_state(args.run_dir)
    if not state:
        print(f"no stack recorded in {args.run_dir}")
        return 1
    orchestrator = state.get("orchestrator") or {}
    alive = start_ticks(int(orchestrator.get("pid", 0))) == orchestrator.get("ticks")
    print(f"stack pid {orchestrator.get('pid')}: {'running' if alive else 'gone'}")
    print(f"scenario: {state.get('scenario')}")
    for child in state.get("children") or []:
        running = start_ticks(int(child["pid"])) == child.get("ticks")
        print(f"  {child['name']:<28} pid {child['pid']:<8} {'running' if running else 'gone'}")
    for role, url in (state.get("urls") or {}).items():
        print(f"  {role:<14} {url}")
    return 0 if alive else 1
