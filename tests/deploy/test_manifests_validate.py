"""Every generated resource validates strictly; every variant is `kubectl apply -k`-able.

Built-in kinds go through kubernetes-validate (strict: unknown fields fail) for the
oldest and newest Kubernetes versions in ``KUBERNETES_VERSIONS``; Prometheus Operator
kinds through the vendored, closed CRD schemas.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from nova_monitoring.variants import VARIANTS
from nova_testing.kubernetes_schemas import is_custom, validate_builtin, validate_resource
from nova_testing.kustomize import (
    KUSTOMIZATION,
    KubectlYamlLoader,
    kustomization_resources,
    kustomize_build,
    load_documents,
)
from nova_testing.manifests import Resource, one, pick


def test_every_resource_validates_strictly(built: list[Resource]) -> None:
    """Each resource of each variant (monitoring bundle included), committed and with
    non-default options, passes strict schema validation."""
    kinds = {r["kind"] for r in built}
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "ServiceMonitor"} <= kinds
    for resource in built:
        validate_resource(resource)


def test_both_variants_hold_what_the_design_lists(k8s: Path) -> None:
    """single: one replica, memory presence; scaled: HPA, PDB, spread, Redis presence."""
    single = kustomize_build(k8s / "single")
    scaled = kustomize_build(k8s / "scaled")
    for resources in (single, scaled):
        one(resources, "Service", "user-service")
        one(resources, "Service", "nova-ingest")
        one(resources, "Deployment", "nova-ingest")
        one(resources, "ConfigMap", "nova-ingest-nginx")
        one(resources, "ServiceMonitor", "nova-streaming-monitor")
        one(resources, "PrometheusRule", "nova-streaming-alerts")
    service_single = one(single, "Deployment", "nova-streaming")
    assert service_single["spec"]["replicas"] == 1
    assert not pick(single, "HorizontalPodAutoscaler") and not pick(
        single, "Deployment", "nova-redis"
    )
    service_scaled = one(scaled, "Deployment", "nova-streaming")
    # The HPA owns the replica count; a count in the Deployment would fight it on apply.
    assert "replicas" not in service_scaled["spec"]
    hpa = one(scaled, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "nova-streaming"
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    one(scaled, "PodDisruptionBudget")
    assert service_scaled["spec"]["template"]["spec"]["topologySpreadConstraints"]
    one(scaled, "Deployment", "nova-redis")
    one(scaled, "Service", "nova-redis")
    assert one(single, "ConfigMap", "nova-ingest-nginx") == one(
        scaled, "ConfigMap", "nova-ingest-nginx"
    )


def test_external_redis_variant_has_no_redis_deployment(non_default_k8s: Path) -> None:
    """redis=external: no Redis workload; the URL comes from the Secret."""
    scaled = kustomize_build(non_default_k8s / "scaled")
    assert not pick(scaled, "Deployment", "nova-redis")
    assert not pick(scaled, "Service", "nova-redis")
    assert one(scaled, "Service", "nova-ingest")["spec"]["type"] == "NodePort"


@pytest.mark.parametrize(
    ("kind", "name", "mutate"),
    [
        (
            "Deployment",
            "nova-streaming",
            lambda r: r["spec"]["template"]["spec"]["containers"][0].update(imagePull="x"),
        ),
        ("Service", "user-service", lambda r: r["spec"]["ports"][0].update(portName="x")),
        ("HorizontalPodAutoscaler", "nova-streaming", lambda r: r["spec"].update(targetCPU=70)),
    ],
)
def test_strict_validation_rejects_unknown_fields(
    kind: str, name: str, mutate: object, k8s: Path
) -> None:
    """A misspelt field fails, as `kubectl apply --validate=strict` would."""
    resource = copy.deepcopy(one(kustomize_build(k8s / "scaled"), kind, name))
    assert callable(mutate)
    mutate(resource)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(resource)


def test_custom_resources_are_checked_against_the_crds(k8s: Path) -> None:
    """The ServiceMonitor goes through the closed CRD schema: an unknown field fails."""
    monitor = copy.deepcopy(one(kustomize_build(k8s / "single"), "ServiceMonitor"))
    assert is_custom(monitor)
    monitor["spec"]["endpoints"][0]["bearerTokenSecretName"] = "x"
    with pytest.raises(jsonschema.ValidationError):
        validate_resource(monitor)


def test_kustomization_resources_exist_and_cover_every_file(tree: Path) -> None:
    """Every listed resource exists; every manifest file in a variant is listed; each
    variant includes the monitoring bundle, which is a kustomization itself."""
    for directory in [tree / "monitoring", *(tree / v for v in VARIANTS)]:
        listed = kustomization_resources(directory)
        files = {p.resolve() for p in directory.glob("*.yaml") if p.name != KUSTOMIZATION}
        listed_files = {p for p in listed if p.is_file()}
        assert listed_files == files, directory
        if directory.name == "monitoring":
            # .yaml files are resources; the plain rules (.yml), Alertmanager (.yml) and
            # dashboard (.json) files are for non-operator setups, never applied.
            plain = [p for p in directory.iterdir() if p.suffix in (".yml", ".json")]
            assert plain
            for path in plain:
                assert "kind" not in (load_documents(path)[0] if path.suffix == ".yml" else {})
            for path in files:
                assert all("apiVersion" in d and "kind" in d for d in load_documents(path))
            continue
        assert (tree / "monitoring").resolve() in listed


def test_a_missing_resource_is_reported(tmp_path: Path, k8s: Path) -> None:
    """The resolver fails on a listed file that is not there (it can fail)."""
    shutil.copytree(k8s, tmp_path / "k8s")
    (tmp_path / "k8s" / "single" / "ingest.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"ingest\.yaml"):
        kustomization_resources(tmp_path / "k8s" / "single")


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl not installed: kustomize build not checked (Python resolution is)")
    return path


@pytest.mark.parametrize("name", VARIANTS)
def test_kubectl_kustomize_builds_each_variant(name: str, k8s: Path) -> None:
    """`kubectl kustomize k8s/<variant>` (what `apply -k` builds) succeeds offline and gives
    the same resources as the resolution the other tests use."""
    result = subprocess.run(
        [_kubectl(), "kustomize", str(k8s / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.load_all(result.stdout, Loader=KubectlYamlLoader) if d]

    def key(r: Resource) -> tuple[str, str]:
        return (r["kind"], r["metadata"]["name"])

    ours = kustomize_build(k8s / name)
    assert sorted(map(key, built)) == sorted(map(key, ours))
    by_key = {key(r): r for r in ours}
    for resource in built:
        assert resource == by_key[key(resource)], key(resource)
