"""Redis for presence (the scaled variant): a Deployment, its Service and a NetworkPolicy.

Presence data is soft state that expires by itself (``NOVA_PRESENCE_TTL``), so Redis
runs without persistence (``--save ''``, no AOF) on an emptyDir. It has no password:
the NetworkPolicy lets only the service pods reach it. For a managed or existing Redis
render with ``redis="external"`` instead, which reads the URL from a Secret.

Example::

    >>> from nova_monitoring.options import RenderOptions
    >>> redis_url(RenderOptions(namespace="streaming"))
    'redis://nova-redis.streaming.svc:6379/0'
"""

from __future__ import annotations

from typing import Final

from nova_monitoring._types import Data
from nova_monitoring.deploy_options import DeployOptions
from nova_monitoring.options import RenderOptions
from nova_monitoring.pod_security import restricted_container_security, restricted_pod_security
from nova_monitoring.sizing import redis_resources
from nova_monitoring.workloads import component_labels, metadata, pod_labels

__all__ = [
    "REDIS_NAME",
    "REDIS_PORT",
    "REDIS_UID",
    "deployment",
    "network_policy",
    "redis_labels",
    "redis_url",
    "service",
]

REDIS_NAME: Final = "nova-redis"
REDIS_PORT: Final = 6379
REDIS_UID: Final = 999
"""The `redis` user of the official image; it then skips its root-only chown step."""


def redis_labels() -> dict[str, str]:
    """The Redis pods' selector labels."""
    return component_labels("nova-redis", "presence")


def redis_url(options: RenderOptions) -> str:
    """The in-cluster Redis URL the service replicas use (``NOVA_REDIS_URL``)."""
    return f"redis://{REDIS_NAME}.{options.namespace}.svc:{REDIS_PORT}/0"


def _exec_probe(*, period: int, failures: int) -> Data:
    return {
        "exec": {"command": ["redis-cli", "-p", str(REDIS_PORT), "ping"]},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def deployment(options: RenderOptions, deploy: DeployOptions) -> Data:
    """One Redis, non-root, read-only root, data on an emptyDir."""
    labels = redis_labels()
    container: Data = {
        "name": "redis",
        "image": deploy.redis_image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "redis-server",
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            # No password: reachable only from the service pods (NetworkPolicy below).
            "--protected-mode",
            "no",
        ],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "readinessProbe": _exec_probe(period=5, failures=2),
        "livenessProbe": _exec_probe(period=10, failures=3),
        "resources": redis_resources(),
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(REDIS_NAME, options, labels),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 5,
            # Never two Redis at once: replicas would split their presence data.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(REDIS_UID),
                    "containers": [container],
                    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


def service(options: RenderOptions) -> Data:
    """``nova-redis``: port 6379 inside the cluster."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(REDIS_NAME, options, redis_labels()),
        "spec": {
            "type": "ClusterIP",
            "selector": redis_labels(),
            "ports": [
                {"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}
            ],
        },
    }


def network_policy(options: RenderOptions) -> Data:
    """Only the service pods may connect to Redis."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(REDIS_NAME, options, redis_labels()),
        "spec": {
            "podSelector": {"matchLabels": redis_labels()},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": pod_labels()}}],
                    "ports": [{"port": "redis", "protocol": "TCP"}],
                }
            ],
        },
    }
