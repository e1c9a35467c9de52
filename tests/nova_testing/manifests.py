"""Helpers for the deployment tests: pick resources out of a built kustomization, and
the non-default render options those tests use besides the committed defaults.

Example::

    deployment = one(kustomize_build(k8s / "single"), "Deployment", "nova-streaming")
"""

from __future__ import annotations

from typing import Any

from nova_monitoring.deploy_options import DeployOptions
from nova_monitoring.options import RenderOptions

__all__ = [
    "NON_DEFAULT_DEPLOY",
    "NON_DEFAULT_OPTIONS",
    "Resource",
    "containers",
    "one",
    "pick",
    "pod_templates",
]

Resource = dict[str, Any]

NON_DEFAULT_OPTIONS = RenderOptions(
    namespace="streaming",
    release="kps",
    selector=(("app.kubernetes.io/instance", "nova-prod"),),
    metrics_token_secret="nova-metrics-token",
)
"""Every monitoring option the workloads read, changed (bearer token on)."""

NON_DEFAULT_DEPLOY = DeployOptions(
    service_image="registry.example.com/nova/nova-streaming:0.1.0",
    ingest_image="registry.example.com/nova/ingest@sha256:" + "a" * 64,
    region="eu-west-1",
    pod_cidr="10.42.0.0/16",
    max_connections=5000,
    replicas=3,
    max_replicas=6,
    ingest_service_type="NodePort",
    redis="external",
)
"""Every workload option changed that changes the shape (external Redis, NodePort)."""


def pick(resources: list[Resource], kind: str, name: str | None = None) -> list[Resource]:
    """The resources of one kind (and name), in order."""
    return [
        r
        for r in resources
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)
    ]


def one(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    """The single resource of that kind (and name); fails when there are none or several."""
    found = pick(resources, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def pod_templates(resources: list[Resource]) -> list[tuple[str, Resource]]:
    """(workload name, pod template) of every Deployment."""
    return [(r["metadata"]["name"], r["spec"]["template"]) for r in pick(resources, "Deployment")]


def containers(template: Resource) -> list[Resource]:
    """Every container of a pod template, init containers included."""
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]
