"""Deployment options: what a cluster may change in the rendered workloads (``k8s/single``,
``k8s/scaled``), validated up front like :class:`~nova_monitoring.options.RenderOptions`.

The monitoring options (namespace, ``release`` label, ServiceMonitor selector, metrics
token Secret) stay in ``RenderOptions`` and apply to the workloads too, so the Service
the ServiceMonitor selects and the Deployment that reads the token always agree.
The defaults render exactly the committed files.

Example::

    >>> DeployOptions(pod_cidr="10.42.0.0/16").pod_cidr
    '10.42.0.0/16'
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from nova_monitoring.options import RenderOptionsError
from streaming_metrics.definitions import LABEL_VALUE_PATTERN

__all__ = [
    "INGEST_SERVICE_TYPES",
    "REDIS_MODES",
    "DeployOptions",
]

INGEST_SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")
REDIS_MODES = ("in-cluster", "external")

_K8S_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
# registry/path:tag or registry/path@sha256:digest; no whitespace, no shell characters.
_IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9./_-]*(:[A-Za-z0-9_.-]{1,128})?(@sha256:[0-9a-f]{64})?")


@dataclass(frozen=True, slots=True)
class DeployOptions:
    """What a deployment may change in the service, ingest and Redis manifests.

    ``pod_cidr`` becomes ``NOVA_TRUSTED_PEERS``: the nginx-rtmp callbacks and push come
    from the ingest pod's IP, so the service must trust the pod network (set your
    cluster's pod CIDR; the default is a common private range). Several networks are
    comma-separated, no spaces.
    ``max_connections`` (``NOVA_MAX_CONNECTIONS``) and ``streams_per_replica`` size the
    service's requests and limits (:mod:`nova_monitoring.sizing`).
    ``replicas`` is the scaled variant's HPA minimum, ``max_replicas`` its maximum.
    ``redis`` is ``in-cluster`` (a Redis Deployment and Service for presence) or
    ``external`` (the URL read from the ``redis_url_secret`` Secret).
    ``shutdown_grace`` is ``NOVA_SHUTDOWN_GRACE``, the seconds the service takes to
    drain on SIGTERM (unready, viewers closed with 1001, streams handed over); the pod's
    ``terminationGracePeriodSeconds`` covers it plus the preStop pause and 5 s to exit.

    Example::

        >>> DeployOptions(redis="external").redis_url_secret
        'nova-redis-url'
    """

    service_image: str = "nova-streaming:0.1.0"
    ingest_image: str = "nova-streaming-ingest:0.1.0"
    redis_image: str = "docker.io/library/redis:7.4.2-bookworm"
    region: str = "local"
    pod_cidr: str = "10.0.0.0/8"
    max_connections: int = 20_000
    streams_per_replica: int = 50
    replicas: int = 2
    max_replicas: int = 10
    cpu_target_percent: int = 70
    ingest_replicas: int = 1
    ingest_service_type: str = "LoadBalancer"
    publish_secret: str = "nova-publish-secret"
    publish_secret_key: str = "secret"
    redis: str = "in-cluster"
    redis_url_secret: str = "nova-redis-url"
    redis_url_secret_key: str = "url"
    shutdown_grace: int = 20
    pre_stop_seconds: int = 5

    def __post_init__(self) -> None:
        for name in ("service_image", "ingest_image", "redis_image"):
            value = getattr(self, name)
            if not _IMAGE_RE.fullmatch(value) or (":" not in value and "@" not in value):
                raise RenderOptionsError(
                    f"{name}: {value!r} is not an image reference with a tag or digest"
                )
        if not LABEL_VALUE_PATTERN.fullmatch(self.region):
            raise RenderOptionsError(f"region: {self.region!r} is not a lowercase label value")
        for network in self.pod_cidr.split(","):
            try:
                ipaddress.ip_network(network, strict=True)
            except ValueError:
                raise RenderOptionsError(
                    f"pod_cidr: {network!r} is not a network in CIDR notation"
                ) from None
        for name in ("max_connections", "streams_per_replica", "replicas", "ingest_replicas"):
            if getattr(self, name) < 1:
                raise RenderOptionsError(f"{name}: must be at least 1")
        if self.max_replicas < self.replicas:
            raise RenderOptionsError("max_replicas: must not be below replicas")
        if not 1 <= self.cpu_target_percent <= 100:
            raise RenderOptionsError("cpu_target_percent: must be 1-100")
        if self.ingest_service_type not in INGEST_SERVICE_TYPES:
            raise RenderOptionsError(
                f"ingest_service_type: {self.ingest_service_type!r} is not one of "
                f"{', '.join(INGEST_SERVICE_TYPES)}"
            )
        if self.redis not in REDIS_MODES:
            raise RenderOptionsError(
                f"redis: {self.redis!r} is not one of {', '.join(REDIS_MODES)}"
            )
        for name in ("publish_secret", "redis_url_secret"):
            value = getattr(self, name)
            if not _K8S_NAME_RE.fullmatch(value) or len(value) > 253:
                raise RenderOptionsError(f"{name}: {value!r} is not a Secret name")
        for name in ("publish_secret_key", "redis_url_secret_key"):
            if not _SECRET_KEY_RE.fullmatch(getattr(self, name)):
                raise RenderOptionsError(f"{name}: {getattr(self, name)!r} is not a Secret key")
        if not 1 <= self.shutdown_grace <= 3600:
            raise RenderOptionsError("shutdown_grace: must be 1-3600 seconds")
        if not 0 <= self.pre_stop_seconds <= 60:
            raise RenderOptionsError("pre_stop_seconds: must be 0-60 seconds")

    @property
    def termination_grace_seconds(self) -> int:
        """``terminationGracePeriodSeconds``: preStop pause + drain + 5 s to exit."""
        return self.pre_stop_seconds + self.shutdown_grace + 5
