"""The deployable variants: which resources go in which file of ``k8s/<variant>/``.

Each variant directory is a kustomization (``kubectl apply -k k8s/<variant>``) that
includes the monitoring bundle (``../monitoring``, itself a kustomization), so one apply
gives the guide's whole system:

- ``single``: one service replica with memory presence, the ingest, their Services;
- ``scaled``: replicas with Redis presence under an HPA (CPU), a PodDisruptionBudget,
  topology spread, Redis for presence (or an external one from a Secret), the same
  ingest.

Example::

    >>> from nova_monitoring.options import RenderOptions
    >>> from nova_monitoring.deploy_options import DeployOptions
    >>> sorted(variant_files("scaled", RenderOptions(), DeployOptions()))
    ['autoscaling.yaml', 'ingest.yaml', 'kustomization.yaml', 'nova-streaming.yaml', 'redis.yaml']
"""

from __future__ import annotations

from typing import Final

from nova_monitoring import ingest, redis_presence, workloads
from nova_monitoring._types import Data
from nova_monitoring.deploy_options import DeployOptions
from nova_monitoring.options import RenderOptions

__all__ = [
    "KUSTOMIZATION_FILE",
    "MONITORING_DIR",
    "VARIANTS",
    "kustomization",
    "variant_files",
]

VARIANTS: Final = ("single", "scaled")
MONITORING_DIR: Final = "monitoring"
KUSTOMIZATION_FILE: Final = "kustomization.yaml"


def kustomization(resources: list[str]) -> Data:
    """A plain kustomization listing ``resources`` (files or directories) in order."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }


def _service_documents(
    options: RenderOptions, deploy: DeployOptions, presence: workloads.Presence, *, scaled: bool
) -> list[Data]:
    return [
        workloads.service(options),
        workloads.deployment(
            options,
            deploy,
            presence,
            replicas=None if scaled else 1,
            spread=scaled,
        ),
        workloads.network_policy(options, ingest.ingest_labels()),
    ]


def _ingest_documents(
    options: RenderOptions, deploy: DeployOptions, service_replicas: int
) -> list[Data]:
    return [
        ingest.configmap(options),
        ingest.deployment(options, deploy, service_replicas=service_replicas),
        ingest.service(options, deploy),
    ]


def variant_files(
    variant: str, options: RenderOptions, deploy: DeployOptions
) -> dict[str, list[Data]]:
    """Every file of one variant directory: file name to its YAML documents.

    The kustomization lists the monitoring bundle first, then the files in this order.
    """
    files: dict[str, list[Data]]
    if variant == "single":
        files = {
            "nova-streaming.yaml": _service_documents(
                options, deploy, workloads.Presence("memory"), scaled=False
            ),
            "ingest.yaml": _ingest_documents(options, deploy, 1),
        }
    elif variant == "scaled":
        in_cluster = deploy.redis == "in-cluster"
        presence = workloads.Presence(
            "redis", redis_presence.redis_url(options) if in_cluster else None
        )
        files = {
            "nova-streaming.yaml": _service_documents(options, deploy, presence, scaled=True),
            "autoscaling.yaml": [
                workloads.horizontal_pod_autoscaler(options, deploy),
                workloads.pod_disruption_budget(options),
            ],
        }
        if in_cluster:
            files["redis.yaml"] = [
                redis_presence.service(options),
                redis_presence.deployment(options, deploy),
                redis_presence.network_policy(options),
            ]
        files["ingest.yaml"] = _ingest_documents(options, deploy, deploy.replicas)
    else:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    files[KUSTOMIZATION_FILE] = [kustomization([f"../{MONITORING_DIR}", *files])]
    return files
