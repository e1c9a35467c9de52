"""The public RTMP ingest on Kubernetes: nginx-rtmp's ConfigMap, Deployment and Service.

nginx.conf is rendered by the same code as ``nova-streaming nginx-config``
(:func:`nova_streaming.ingest.nginx_conf.render_nginx_config`, with that command's
defaults): every stream is pushed to ``user-service:1936`` (one relay connection lands
on one replica, which owns the stream; if it dies nginx re-pushes and the Service routes
to another) and the publish callbacks go to ``user-service:8080``. Importing this
needs no service dependency: the renderer is plain Python.

Example::

    >>> "push rtmp://user-service:1936/live;" in nginx_config_text()
    True
"""

from __future__ import annotations

import hashlib
from typing import Final

from nova_monitoring._types import Data
from nova_monitoring.deploy_options import DeployOptions
from nova_monitoring.images import (
    INGEST_CONFIG_DIR,
    INGEST_CONFIG_FILE,
    INGEST_PREFIX,
    INGEST_RTMP_PORT,
    INGEST_UID,
    INGEST_WRITABLE_DIRS,
)
from nova_monitoring.options import RenderOptions
from nova_monitoring.pod_security import restricted_container_security, restricted_pod_security
from nova_monitoring.sizing import ingest_resources
from nova_monitoring.workloads import (
    HTTP_PORT,
    INGEST_PORT,
    SERVICE_NAME,
    component_labels,
    metadata,
)
from nova_streaming.ingest.nginx_conf import NginxRtmpConfig, render_nginx_config

__all__ = [
    "CONFIGMAP_NAME",
    "INGEST_NAME",
    "RTMP_APP",
    "RTMP_PORT_NAME",
    "configmap",
    "deployment",
    "ingest_labels",
    "nginx_config_text",
    "service",
]

INGEST_NAME: Final = "nova-ingest"
CONFIGMAP_NAME: Final = "nova-ingest-nginx"
RTMP_PORT_NAME: Final = "rtmp"
RTMP_APP: Final = "live"
CALLBACK_BASE: Final = f"http://{SERVICE_NAME}:{HTTP_PORT}"
PUSH_URL: Final = f"rtmp://{SERVICE_NAME}:{INGEST_PORT}/{RTMP_APP}"
# `nova-streaming nginx-config`'s defaults for what the cluster does not change.
DROP_IDLE_PUBLISHER: Final = "60s"
PUSH_RECONNECT: Final = "1s"
STAT_PORT: Final = 8082


def ingest_labels() -> dict[str, str]:
    """The ingest pods' selector labels."""
    return component_labels("nova-ingest", "ingest")


def nginx_config_text(prefix: str = INGEST_PREFIX) -> str:
    """nginx.conf as ``nova-streaming nginx-config --prefix PREFIX --service-url
    http://user-service:8080 --push rtmp://user-service:1936/live`` writes it."""
    return render_nginx_config(
        NginxRtmpConfig(
            prefix=prefix,
            rtmp_port=INGEST_RTMP_PORT,
            rtmp_listen="",
            app=RTMP_APP,
            callback_base=CALLBACK_BASE,
            push_urls=(PUSH_URL,),
            push_reconnect=PUSH_RECONNECT,
            drop_idle_publisher=DROP_IDLE_PUBLISHER,
            stat_port=STAT_PORT,
            user=None,
        )
    )


def configmap(options: RenderOptions) -> Data:
    """The ConfigMap holding nginx.conf, mounted read-only at ``/etc/nova-ingest``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(CONFIGMAP_NAME, options, ingest_labels()),
        "data": {INGEST_CONFIG_FILE: nginx_config_text()},
    }


def _tcp_probe(*, period: int, failures: int) -> Data:
    return {
        "tcpSocket": {"port": RTMP_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def deployment(options: RenderOptions, deploy: DeployOptions, *, service_replicas: int) -> Data:
    """nginx-rtmp, non-root, read-only root: it writes only its logs and temp emptyDirs."""
    labels = ingest_labels()
    logs_dir, tmp_dir = INGEST_WRITABLE_DIRS
    # A changed nginx.conf changes the pod template, so the Deployment rolls.
    checksum = hashlib.sha256(nginx_config_text().encode()).hexdigest()
    container: Data = {
        "name": "nginx",
        "image": deploy.ingest_image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": RTMP_PORT_NAME, "containerPort": INGEST_RTMP_PORT, "protocol": "TCP"}],
        "startupProbe": _tcp_probe(period=2, failures=15),
        "readinessProbe": _tcp_probe(period=5, failures=2),
        "livenessProbe": _tcp_probe(period=10, failures=3),
        "resources": ingest_resources(deploy, service_replicas),
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "config", "mountPath": INGEST_CONFIG_DIR, "readOnly": True},
            {"name": "logs", "mountPath": logs_dir},
            {"name": "tmp", "mountPath": tmp_dir},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(INGEST_NAME, options, labels),
        "spec": {
            "replicas": deploy.ingest_replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"nova-streaming/nginx-conf-sha256": checksum},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(INGEST_UID),
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "config",
                            "configMap": {
                                "name": CONFIGMAP_NAME,
                                "items": [{"key": INGEST_CONFIG_FILE, "path": INGEST_CONFIG_FILE}],
                            },
                        },
                        {"name": "logs", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def service(options: RenderOptions, deploy: DeployOptions) -> Data:
    """RTMP 1935 for broadcasters; ``LoadBalancer`` unless the options say otherwise."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(INGEST_NAME, options, ingest_labels()),
        "spec": {
            "type": deploy.ingest_service_type,
            "selector": ingest_labels(),
            "ports": [
                {
                    "name": RTMP_PORT_NAME,
                    "port": INGEST_RTMP_PORT,
                    "targetPort": RTMP_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }
