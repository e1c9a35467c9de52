"""The ``nova-monitoring`` command: ``nova-monitoring render --output DIR [options]``.

Example::

    $ nova-monitoring render --output k8s/monitoring
    $ nova-monitoring render --output /tmp/rules --only rules-file \\
          --eval-interval 1s --for-scale 0.05 --rate-window 30s
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from nova_monitoring.options import DEFAULT_SELECTOR, RenderOptions, RenderOptionsError
from nova_monitoring.render import FILES, render

__all__ = ["build_parser", "main", "options_from_args"]

_DEFAULTS = RenderOptions()


def _selector(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests).

    Example::

        >>> build_parser().parse_args(["render", "--output", "out"]).namespace
        'default'
    """
    parser = argparse.ArgumentParser(
        prog="nova-monitoring",
        description="Monitoring as code for Nova Streaming: render rules, alerts, dashboard "
        "and Kubernetes resources.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser(
        "render",
        help="write the generated monitoring files",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    r.add_argument("--output", type=Path, required=True, help="directory to write into")
    r.add_argument(
        "--only",
        action="append",
        choices=sorted(FILES),
        default=[],
        help="render only this file (repeatable; default: all)",
    )
    k8s = r.add_argument_group("kubernetes")
    k8s.add_argument("--namespace", default=_DEFAULTS.namespace)
    k8s.add_argument("--release", default=_DEFAULTS.release, help="value of the `release` label")
    k8s.add_argument(
        "--cluster", default=_DEFAULTS.cluster, help="cluster label added by relabeling"
    )
    k8s.add_argument(
        "--selector",
        action="append",
        type=_selector,
        default=[],
        metavar="KEY=VALUE",
        help="ServiceMonitor matchLabels (repeatable; default: "
        + ",".join(f"{k}={v}" for k, v in DEFAULT_SELECTOR)
        + ")",
    )
    k8s.add_argument("--job", default=_DEFAULTS.job, help="scrape job name the alerts use")
    k8s.add_argument("--scrape-interval", default=_DEFAULTS.scrape_interval)
    k8s.add_argument("--scrape-timeout", default=_DEFAULTS.scrape_timeout)
    k8s.add_argument(
        "--metrics-token-secret",
        default=None,
        help="Secret holding the bearer token of the metrics port (NOVA_METRICS_TOKEN)",
    )
    k8s.add_argument("--metrics-token-key", default=_DEFAULTS.metrics_token_key)
    thresholds = r.add_argument_group("thresholds")
    thresholds.add_argument(
        "--error-rate-ratio",
        type=float,
        default=_DEFAULTS.error_rate_ratio,
        help="errors per ingested frame",
    )
    thresholds.add_argument("--peak-viewers", type=int, default=_DEFAULTS.peak_viewers)
    thresholds.add_argument(
        "--latency-seconds",
        type=float,
        default=_DEFAULTS.latency_seconds,
        help="latency alert bound; must be a histogram bucket bound",
    )
    thresholds.add_argument("--latency-quantile", type=float, default=_DEFAULTS.latency_quantile)
    thresholds.add_argument(
        "--cardinality-fraction",
        type=float,
        default=_DEFAULTS.cardinality_fraction,
        help="tracked/max tracked streams that warns",
    )
    thresholds.add_argument(
        "--scrape-timeout-fraction",
        type=float,
        default=_DEFAULTS.scrape_timeout_fraction,
        help="scrape duration/scrape timeout that warns",
    )
    timing = r.add_argument_group("timing (compress for end-to-end runs)")
    timing.add_argument("--eval-interval", default=_DEFAULTS.eval_interval)
    timing.add_argument(
        "--for-scale",
        type=float,
        default=_DEFAULTS.for_scale,
        help="multiply every alert's for: by this",
    )
    timing.add_argument(
        "--rate-window", default=_DEFAULTS.rate_window, help="rate() window in the rules"
    )
    routing = r.add_argument_group("alerting")
    routing.add_argument("--runbook-base-url", default=_DEFAULTS.runbook_base_url)
    routing.add_argument("--slack-secret", default=_DEFAULTS.slack_secret)
    routing.add_argument("--slack-secret-key", default=_DEFAULTS.slack_secret_key)
    routing.add_argument("--slack-channel", default=_DEFAULTS.slack_channel)
    return parser


def options_from_args(args: argparse.Namespace) -> RenderOptions:
    """Build validated ``RenderOptions`` from parsed ``render`` arguments."""
    return RenderOptions(
        namespace=args.namespace,
        release=args.release,
        cluster=args.cluster,
        selector=tuple(args.selector) or DEFAULT_SELECTOR,
        job=args.job,
        scrape_interval=args.scrape_interval,
        scrape_timeout=args.scrape_timeout,
        metrics_token_secret=args.metrics_token_secret,
        metrics_token_key=args.metrics_token_key,
        error_rate_ratio=args.error_rate_ratio,
        peak_viewers=args.peak_viewers,
        latency_seconds=args.latency_seconds,
        latency_quantile=args.latency_quantile,
        cardinality_fraction=args.cardinality_fraction,
        scrape_timeout_fraction=args.scrape_timeout_fraction,
        eval_interval=args.eval_interval,
        for_scale=args.for_scale,
        rate_window=args.rate_window,
        runbook_base_url=args.runbook_base_url,
        slack_secret=args.slack_secret,
        slack_secret_key=args.slack_secret_key,
        slack_channel=args.slack_channel,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; invalid options exit 2 with a message naming the option."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except RenderOptionsError as exc:
        parser.error(str(exc))
    for path in render(args.output, options, only=args.only):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
