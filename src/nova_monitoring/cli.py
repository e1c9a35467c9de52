"""The ``nova-monitoring`` command: ``nova-monitoring render --output DIR [options]``.

Example::

    $ nova-monitoring render --manifests --output k8s     # all of k8s/ (make generate)
    $ nova-monitoring render --output k8s/monitoring
    $ nova-monitoring render --output /tmp/rules --only rules-file \\
          --eval-interval 1s --for-scale 0.05 --rate-window 30s
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from nova_monitoring.deploy_options import INGEST_SERVICE_TYPES, REDIS_MODES, DeployOptions
from nova_monitoring.options import DEFAULT_SELECTOR, RenderOptions, RenderOptionsError
from nova_monitoring.render import FILES, render, render_manifests

__all__ = ["build_parser", "deploy_options_from_args", "main", "options_from_args"]

_DEFAULTS = RenderOptions()
_DEPLOY = DeployOptions()


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
    _add_deploy_arguments(r)
    return parser


def _add_deploy_arguments(r: argparse.ArgumentParser) -> None:
    """``--manifests`` and the workload options (k8s/single, k8s/scaled)."""
    r.add_argument(
        "--manifests",
        action="store_true",
        help="write all of k8s/ under --output: the monitoring bundle in OUTPUT/monitoring "
        "and every deployable variant in OUTPUT/single, OUTPUT/scaled",
    )
    d = r.add_argument_group("workloads (with --manifests)")
    d.add_argument("--service-image", default=_DEPLOY.service_image)
    d.add_argument("--ingest-image", default=_DEPLOY.ingest_image)
    d.add_argument("--redis-image", default=_DEPLOY.redis_image)
    d.add_argument("--region", default=_DEPLOY.region, help="NOVA_REGION of the replicas")
    d.add_argument(
        "--pod-cidr",
        default=_DEPLOY.pod_cidr,
        help="the cluster's pod network (CIDR[,CIDR...]): NOVA_TRUSTED_PEERS, who may call "
        "the nginx-rtmp callbacks and push",
    )
    d.add_argument(
        "--max-connections",
        type=int,
        default=_DEPLOY.max_connections,
        help="NOVA_MAX_CONNECTIONS per replica; sizes the memory request",
    )
    d.add_argument(
        "--streams-per-replica",
        type=int,
        default=_DEPLOY.streams_per_replica,
        help="expected streams per replica; sizes the CPU requests",
    )
    d.add_argument("--replicas", type=int, default=_DEPLOY.replicas, help="scaled: HPA minimum")
    d.add_argument(
        "--max-replicas", type=int, default=_DEPLOY.max_replicas, help="scaled: HPA maximum"
    )
    d.add_argument("--cpu-target-percent", type=int, default=_DEPLOY.cpu_target_percent)
    d.add_argument("--ingest-replicas", type=int, default=_DEPLOY.ingest_replicas)
    d.add_argument(
        "--ingest-service-type", choices=INGEST_SERVICE_TYPES, default=_DEPLOY.ingest_service_type
    )
    d.add_argument("--publish-secret", default=_DEPLOY.publish_secret)
    d.add_argument("--publish-secret-key", default=_DEPLOY.publish_secret_key)
    d.add_argument(
        "--redis",
        choices=REDIS_MODES,
        default=_DEPLOY.redis,
        help="scaled: a Redis Deployment, or an external Redis whose URL is in a Secret",
    )
    d.add_argument("--redis-url-secret", default=_DEPLOY.redis_url_secret)
    d.add_argument("--redis-url-secret-key", default=_DEPLOY.redis_url_secret_key)
    d.add_argument(
        "--shutdown-grace",
        type=int,
        default=_DEPLOY.shutdown_grace,
        help="seconds the service drains on SIGTERM",
    )
    d.add_argument(
        "--pre-stop-seconds",
        type=int,
        default=_DEPLOY.pre_stop_seconds,
        help="pause before SIGTERM while endpoints are removed",
    )


def deploy_options_from_args(args: argparse.Namespace) -> DeployOptions:
    """Build validated ``DeployOptions`` from parsed ``render`` arguments."""
    return DeployOptions(
        service_image=args.service_image,
        ingest_image=args.ingest_image,
        redis_image=args.redis_image,
        region=args.region,
        pod_cidr=args.pod_cidr,
        max_connections=args.max_connections,
        streams_per_replica=args.streams_per_replica,
        replicas=args.replicas,
        max_replicas=args.max_replicas,
        cpu_target_percent=args.cpu_target_percent,
        ingest_replicas=args.ingest_replicas,
        ingest_service_type=args.ingest_service_type,
        publish_secret=args.publish_secret,
        publish_secret_key=args.publish_secret_key,
        redis=args.redis,
        redis_url_secret=args.redis_url_secret,
        redis_url_secret_key=args.redis_url_secret_key,
        shutdown_grace=args.shutdown_grace,
        pre_stop_seconds=args.pre_stop_seconds,
    )


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
        deploy = deploy_options_from_args(args)
    except RenderOptionsError as exc:
        parser.error(str(exc))
    if args.manifests and args.only:
        parser.error("--only: not with --manifests, which writes every file")
    if args.manifests:
        paths = render_manifests(args.output, options, deploy)
    else:
        paths = render(args.output, options, only=args.only)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
