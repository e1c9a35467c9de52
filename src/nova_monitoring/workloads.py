"""The streaming service on Kubernetes: its Deployment, the ``user-service`` Service the
ServiceMonitor selects, a NetworkPolicy, and (scaled variant) the HPA and PDB.

Ports and probe paths come from the service itself (``Settings`` defaults, the routes
of ``nova_streaming.health``); sizes from :mod:`nova_monitoring.sizing`; users and
paths from :mod:`nova_monitoring.images`. Secrets are only ever referenced
(``secretKeyRef``), never written.

Example::

    >>> from nova_monitoring.options import RenderOptions
    >>> from nova_monitoring.deploy_options import DeployOptions
    >>> service(RenderOptions())["metadata"]["name"]
    'user-service'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from nova_monitoring._types import Data
from nova_monitoring.deploy_options import DeployOptions
from nova_monitoring.images import SERVICE_TMP_DIR, SERVICE_UID
from nova_monitoring.kubernetes import METRICS_PORT_NAME
from nova_monitoring.options import RenderOptions
from nova_monitoring.pod_security import restricted_container_security, restricted_pod_security
from nova_monitoring.sizing import service_resources
from nova_streaming.settings import Settings

__all__ = [
    "DEPLOYMENT_NAME",
    "HEALTH_PATH",
    "HTTP_PORT",
    "HTTP_PORT_NAME",
    "INGEST_PORT",
    "INGEST_PORT_NAME",
    "METRICS_PORT",
    "READY_PATH",
    "SERVICE_NAME",
    "Presence",
    "component_labels",
    "deployment",
    "horizontal_pod_autoscaler",
    "metadata",
    "network_policy",
    "pod_disruption_budget",
    "pod_labels",
    "service",
]

_SETTINGS: Final = Settings(replica_id="render")

SERVICE_NAME: Final = "user-service"
"""The guide's name: ``kubectl port-forward svc/user-service 8081`` must work as written."""
DEPLOYMENT_NAME: Final = "nova-streaming"
CONTAINER_NAME: Final = "nova-streaming"
HTTP_PORT_NAME: Final = "http"
INGEST_PORT_NAME: Final = "ingest"
HTTP_PORT: Final = _SETTINGS.port
METRICS_PORT: Final = _SETTINGS.metrics_port
INGEST_PORT: Final = _SETTINGS.ingest_port
READY_PATH: Final = "/readyz"
HEALTH_PATH: Final = "/healthz"
PART_OF: Final = "nova-streaming"


def component_labels(name: str, component: str) -> dict[str, str]:
    """The selector labels of one component's pods (stable: never change them in place)."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


def pod_labels() -> dict[str, str]:
    """The service pods' selector labels."""
    return component_labels("nova-streaming", "service")


def metadata(name: str, options: RenderOptions, labels: dict[str, str]) -> Data:
    """``metadata`` with the namespace and ``part-of`` label every resource carries."""
    return {
        "name": name,
        "namespace": options.namespace,
        "labels": {**labels, "app.kubernetes.io/part-of": PART_OF},
    }


@dataclass(frozen=True, slots=True)
class Presence:
    """How the replicas share viewer counts: ``memory`` (one replica) or ``redis``.

    ``redis_url`` is the in-cluster Redis Service's URL; ``None`` with ``redis`` reads it
    from the ``redis_url_secret`` Secret (an external Redis, credentials and all).
    """

    engine: str
    redis_url: str | None = None


def _env(options: RenderOptions, deploy: DeployOptions, presence: Presence) -> list[Data]:
    env: list[Data] = [
        {"name": "NOVA_REGION", "value": deploy.region},
        {"name": "NOVA_PRESENCE", "value": presence.engine},
    ]
    if presence.engine == "redis":
        if presence.redis_url is not None:
            env.append({"name": "NOVA_REDIS_URL", "value": presence.redis_url})
        else:
            env.append(
                _secret_env("NOVA_REDIS_URL", deploy.redis_url_secret, deploy.redis_url_secret_key)
            )
    env += [
        # The nginx-rtmp callbacks and push come from the ingest pod's IP.
        {"name": "NOVA_TRUSTED_PEERS", "value": deploy.pod_cidr},
        {"name": "NOVA_MAX_CONNECTIONS", "value": str(deploy.max_connections)},
        # Below terminationGracePeriodSeconds, so the drain ends before any SIGKILL.
        {"name": "NOVA_SHUTDOWN_GRACE", "value": str(deploy.shutdown_grace)},
        _secret_env("NOVA_PUBLISH_SECRET", deploy.publish_secret, deploy.publish_secret_key),
    ]
    if options.metrics_token_secret is not None:
        env.append(
            _secret_env(
                "NOVA_METRICS_TOKEN", options.metrics_token_secret, options.metrics_token_key
            )
        )
    return env


def _secret_env(name: str, secret: str, key: str) -> Data:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _http_probe(path: str, *, period: int, failures: int) -> Data:
    return {
        "httpGet": {"path": path, "port": HTTP_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _container(options: RenderOptions, deploy: DeployOptions, presence: Presence) -> Data:
    return {
        "name": CONTAINER_NAME,
        "image": deploy.service_image,
        "imagePullPolicy": "IfNotPresent",
        # No command or args: the image's ENTRYPOINT is `nova-streaming serve`, and every
        # setting comes from the NOVA_ environment below.
        "ports": [
            {"name": HTTP_PORT_NAME, "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"},
            {"name": INGEST_PORT_NAME, "containerPort": INGEST_PORT, "protocol": "TCP"},
        ],
        "env": _env(options, deploy, presence),
        # Up to a minute to start (Redis may come up after the service); then liveness.
        "startupProbe": _http_probe(HEALTH_PATH, period=2, failures=30),
        "readinessProbe": _http_probe(READY_PATH, period=5, failures=2),
        "livenessProbe": _http_probe(HEALTH_PATH, period=10, failures=3),
        "lifecycle": {
            # The pod leaves the Service's endpoints while this runs, so viewers closed
            # by the drain (1001) and nginx's re-push reconnect to another replica, not
            # to this one; then SIGTERM starts the drain (NOVA_SHUTDOWN_GRACE).
            "preStop": {"exec": {"command": ["sleep", str(deploy.pre_stop_seconds)]}},
        },
        "resources": service_resources(deploy),
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": SERVICE_TMP_DIR}],
    }


def deployment(
    options: RenderOptions,
    deploy: DeployOptions,
    presence: Presence,
    *,
    replicas: int | None,
    spread: bool,
) -> Data:
    """The service Deployment; ``replicas=None`` leaves the count to the HPA."""
    labels = pod_labels()
    spec: Data = {}
    if replicas is not None:
        spec["replicas"] = replicas
    pod_spec: Data = {
        "automountServiceAccountToken": False,
        # Service links would inject variables such as NOVA_PORT=tcp://... for a
        # Service named `nova`, which the settings would then reject.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": deploy.termination_grace_seconds,
        "securityContext": restricted_pod_security(SERVICE_UID),
    }
    if spread:
        pod_spec["topologySpreadConstraints"] = [
            _spread("topology.kubernetes.io/zone", labels),
            _spread("kubernetes.io/hostname", labels),
        ]
    pod_spec["containers"] = [_container(options, deploy, presence)]
    pod_spec["volumes"] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    spec.update(
        {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": labels},
            # One new pod at a time, none removed before its replacement is ready.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        }
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(DEPLOYMENT_NAME, options, labels),
        "spec": spec,
    }


def _spread(topology_key: str, labels: dict[str, str]) -> Data:
    # ScheduleAnyway: spread when the cluster can, never leave a replica pending on a
    # single-zone or single-node cluster.
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": labels},
        "matchLabelKeys": ["pod-template-hash"],
    }


def service(options: RenderOptions) -> Data:
    """``user-service``: http 8080, metrics 8081, ingest 1936, labelled for the ServiceMonitor."""
    labels = {**pod_labels(), **dict(options.selector)}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(SERVICE_NAME, options, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": pod_labels(),
            "ports": [
                _port(HTTP_PORT_NAME, HTTP_PORT),
                _port(METRICS_PORT_NAME, METRICS_PORT),
                _port(INGEST_PORT_NAME, INGEST_PORT),
            ],
        },
    }


def _port(name: str, number: int) -> Data:
    return {"name": name, "port": number, "targetPort": name, "protocol": "TCP"}


def network_policy(options: RenderOptions, ingest_labels: dict[str, str]) -> Data:
    """Who may reach the service pods: http and metrics from anywhere, the RTMP receiver
    (ingest port) only from the nginx-rtmp pods (defence in depth beside
    ``NOVA_TRUSTED_PEERS``; enforced where the cluster's network plugin supports it)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(DEPLOYMENT_NAME, options, pod_labels()),
        "spec": {
            "podSelector": {"matchLabels": pod_labels()},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "ports": [
                        {"port": HTTP_PORT_NAME, "protocol": "TCP"},
                        {"port": METRICS_PORT_NAME, "protocol": "TCP"},
                    ]
                },
                {
                    "from": [{"podSelector": {"matchLabels": ingest_labels}}],
                    "ports": [{"port": INGEST_PORT_NAME, "protocol": "TCP"}],
                },
            ],
        },
    }


def horizontal_pod_autoscaler(options: RenderOptions, deploy: DeployOptions) -> Data:
    """CPU-based autoscaling of the service between ``replicas`` and ``max_replicas``.

    Scale-down removes one pod a minute at most: each removal sends its viewers away
    (close 1001) to reconnect elsewhere.
    """
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(DEPLOYMENT_NAME, options, pod_labels()),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": DEPLOYMENT_NAME,
            },
            "minReplicas": deploy.replicas,
            "maxReplicas": deploy.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": deploy.cpu_target_percent,
                        },
                    },
                }
            ],
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }
            },
        },
    }


def pod_disruption_budget(options: RenderOptions) -> Data:
    """At most one service pod evicted at a time (node drains, cluster upgrades)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(DEPLOYMENT_NAME, options, pod_labels()),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": pod_labels()}},
    }
