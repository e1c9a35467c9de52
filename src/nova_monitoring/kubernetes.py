"""Kubernetes resources that wrap the plain rules, dashboard and Alertmanager routing.

Nothing here decides what is alerted or shown: it only adds ``apiVersion``, ``kind``,
metadata and the labels kube-prometheus-stack selects on (``release: <helm release>``)
around data built elsewhere.

Example::

    >>> from nova_monitoring.options import RenderOptions
    >>> service_monitor(RenderOptions())["metadata"]["labels"]["release"]
    'prometheus'
"""

from __future__ import annotations

from nova_monitoring._types import Data
from nova_monitoring.alertmanager import alertmanager_config_spec
from nova_monitoring.options import RenderOptions

__all__ = [
    "ALERTMANAGER_CONFIG_NAME",
    "ALERTS_RULE_NAME",
    "DASHBOARD_CONFIGMAP_NAME",
    "DASHBOARD_FILE",
    "RECORDING_RULE_NAME",
    "SERVICE_MONITOR_NAME",
    "SLO_DASHBOARD_CONFIGMAP_NAME",
    "SLO_DASHBOARD_FILE",
    "alertmanager_config_resource",
    "dashboard_configmap",
    "prometheus_rule",
    "service_monitor",
]

SERVICE_MONITOR_NAME = "nova-streaming-monitor"
ALERTS_RULE_NAME = "nova-streaming-alerts"
RECORDING_RULE_NAME = "nova-streaming-recording"
DASHBOARD_CONFIGMAP_NAME = "nova-streaming-dashboard"
DASHBOARD_FILE = "grafana-streaming-dashboard.json"
SLO_DASHBOARD_CONFIGMAP_NAME = "nova-streaming-slo-dashboard"
SLO_DASHBOARD_FILE = "grafana-slo-dashboard.json"
ALERTMANAGER_CONFIG_NAME = "nova-streaming-alertmanager"
METRICS_PORT_NAME = "metrics"
METRICS_PATH = "/metrics"

_MONITORING_API = "monitoring.coreos.com/v1"
_ALERTMANAGER_CONFIG_API = "monitoring.coreos.com/v1alpha1"


def _metadata(name: str, options: RenderOptions, *, release: bool = True) -> Data:
    labels = {
        "app.kubernetes.io/name": "nova-streaming",
        "app.kubernetes.io/component": "monitoring",
        "app.kubernetes.io/part-of": "nova-streaming",
    }
    if release:
        labels["release"] = options.release
    return {"name": name, "namespace": options.namespace, "labels": labels}


def service_monitor(options: RenderOptions) -> Data:
    """The ServiceMonitor scraping the service's ``metrics`` port every 30 s.

    Relabelings add ``cluster`` (a constant), ``namespace``, ``pod`` and ``service``,
    and pin ``job`` to ``options.job`` so the target-down alerts match whatever the
    Service is called.
    """
    endpoint: Data = {
        "port": METRICS_PORT_NAME,
        "path": METRICS_PATH,
        "interval": options.scrape_interval,
        "scrapeTimeout": options.scrape_timeout,
    }
    if options.metrics_token_secret is not None:
        endpoint["authorization"] = {
            "type": "Bearer",
            "credentials": {
                "name": options.metrics_token_secret,
                "key": options.metrics_token_key,
            },
        }
    endpoint["relabelings"] = [
        {"action": "replace", "targetLabel": "cluster", "replacement": options.cluster},
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_namespace"],
            "targetLabel": "namespace",
        },
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_pod_name"],
            "targetLabel": "pod",
        },
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_service_name"],
            "targetLabel": "service",
        },
        {"action": "replace", "targetLabel": "job", "replacement": options.job},
    ]
    return {
        "apiVersion": _MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": _metadata(SERVICE_MONITOR_NAME, options),
        "spec": {
            "selector": {"matchLabels": dict(options.selector)},
            "namespaceSelector": {"matchNames": [options.namespace]},
            "endpoints": [endpoint],
        },
    }


def prometheus_rule(name: str, group: Data, options: RenderOptions, *more_groups: Data) -> Data:
    """A PrometheusRule holding rule groups exactly as the plain rules file has them."""
    return {
        "apiVersion": _MONITORING_API,
        "kind": "PrometheusRule",
        "metadata": _metadata(name, options),
        "spec": {"groups": [group, *more_groups]},
    }


def dashboard_configmap(
    dashboard_json: str,
    options: RenderOptions,
    *,
    name: str = DASHBOARD_CONFIGMAP_NAME,
    file: str = DASHBOARD_FILE,
) -> Data:
    """A dashboard JSON in a ConfigMap the Grafana sidecar loads (``grafana_dashboard``).

    ``name`` and ``file`` default to the guide's dashboard; the SLO dashboard has its own.
    """
    metadata = _metadata(name, options, release=False)
    metadata["labels"]["grafana_dashboard"] = "1"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {file: dashboard_json},
    }


def alertmanager_config_resource(options: RenderOptions) -> Data:
    """The routing as an AlertmanagerConfig; the Slack URL is a Secret key reference."""
    return {
        "apiVersion": _ALERTMANAGER_CONFIG_API,
        "kind": "AlertmanagerConfig",
        "metadata": _metadata(ALERTMANAGER_CONFIG_NAME, options),
        "spec": alertmanager_config_spec(options),
    }
