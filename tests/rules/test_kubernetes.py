"""The Kubernetes resources: validated like `kubectl --validate=strict`, offline.

Custom resources are checked against the Prometheus Operator CRD schemas in
``../shared/k8s-crds`` with every object schema that lists ``properties`` closed; the
ConfigMap against Kubernetes' own schema with kubernetes-validate.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from nova_monitoring.options import RenderOptions
from nova_monitoring.render import FILES, render_documents

KUBERNETES_VERSION = "1.32"
CRD_FILES = {
    "ServiceMonitor": "crd-servicemonitors.yaml",
    "PrometheusRule": "crd-prometheusrules.yaml",
    "AlertmanagerConfig": "crd-alertmanagerconfigs.yaml",
}


class _CrdLoader(yaml.SafeLoader):
    """Safe loader that reads a bare ``=`` (YAML 1.1 `value` tag) as the string it is."""


_CrdLoader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def _crd_dir() -> Path:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "k8s-crds"
    if not path.is_dir():
        pytest.fail(f"CRD schemas missing: expected {path} (the shared/ tree beside the repo)")
    return path


def _close(schema: Any) -> Any:
    """Close every object schema that lists properties, recursively (strict validation)."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            _close(value)
    elif isinstance(schema, list):
        for item in schema:
            _close(item)
    return schema


@cache
def _schema(kind: str, api_version: str) -> dict[str, Any]:
    crd = yaml.load((_crd_dir() / CRD_FILES[kind]).read_text(), Loader=_CrdLoader)
    version = api_version.split("/")[-1]
    for candidate in crd["spec"]["versions"]:
        if candidate["name"] == version:
            schema: dict[str, Any] = _close(copy.deepcopy(candidate["schema"]["openAPIV3Schema"]))
            return schema
    pytest.fail(f"{kind}: CRD has no version {version}")


def _validate_custom(resource: dict[str, Any]) -> None:
    schema = _schema(resource["kind"], resource["apiVersion"])
    jsonschema.Draft7Validator(schema).validate(resource)


def _resources(committed: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for key in ("servicemonitor", "alertmanager-config"):
        docs.extend(yaml.safe_load_all((committed / FILES[key]).read_text()))
    return docs


def test_custom_resources_validate_against_the_closed_crd_schemas(committed: Path) -> None:
    """ServiceMonitor, both PrometheusRules and the AlertmanagerConfig pass strict validation."""
    resources = _resources(committed)
    assert [(r["kind"], r["metadata"]["name"]) for r in resources] == [
        ("ServiceMonitor", "nova-streaming-monitor"),
        ("PrometheusRule", "nova-streaming-alerts"),
        ("PrometheusRule", "nova-streaming-recording"),
        ("AlertmanagerConfig", "nova-streaming-alertmanager"),
    ]
    for resource in resources:
        _validate_custom(resource)


@pytest.mark.parametrize(
    ("index", "path", "field"),
    [
        (0, ("spec", "endpoints", 0), "scrapeTimeoutSeconds"),
        (1, ("spec", "groups", 0, "rules", 0), "severity"),
        (3, ("spec", "receivers", 0, "slackConfigs", 0), "api_url"),
    ],
)
def test_strict_validation_rejects_an_unknown_field(
    index: int, path: tuple[str | int, ...], field: str, committed: Path
) -> None:
    """An unknown field (as a hand edit might add) fails validation, as kubectl strict would."""
    resource = copy.deepcopy(_resources(committed)[index])
    target: Any = resource
    for step in path:
        target = target[step]
    target[field] = "x"
    with pytest.raises(jsonschema.ValidationError, match=field):
        _validate_custom(resource)


def test_custom_resources_with_non_default_options_validate() -> None:
    """A render with every Kubernetes option set (bearer token, selectors) still validates."""
    options = RenderOptions(
        namespace="streaming",
        release="kps",
        cluster="eu-prod-1",
        selector=(("app.kubernetes.io/name", "nova"), ("tier", "edge")),
        metrics_token_secret="nova-metrics-token",
    )
    documents = render_documents(options)
    monitor, alerts, recording = yaml.safe_load_all(documents[FILES["servicemonitor"]])
    for resource in (monitor, alerts, recording):
        _validate_custom(resource)
        assert resource["metadata"]["namespace"] == "streaming"
        assert resource["metadata"]["labels"]["release"] == "kps"
    _validate_custom(yaml.safe_load(documents[FILES["alertmanager-config"]]))
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "nova-metrics-token", "key": "token"},
    }
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "nova",
        "tier": "edge",
    }
    assert {"action": "replace", "targetLabel": "cluster", "replacement": "eu-prod-1"} in (
        endpoint["relabelings"]
    )


def test_service_monitor_scrapes_as_the_design_says(committed: Path) -> None:
    """30 s interval, 10 s timeout, port `metrics` at /metrics, relabelings for the four labels."""
    monitor = _resources(committed)[0]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"] == {"matchLabels": {"app": "nova-streaming"}}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("30s", "10s")
    assert "authorization" not in endpoint
    targets = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert targets["cluster"]["replacement"] == "local"
    assert targets["namespace"]["sourceLabels"] == ["__meta_kubernetes_namespace"]
    assert targets["pod"]["sourceLabels"] == ["__meta_kubernetes_pod_name"]
    assert targets["service"]["sourceLabels"] == ["__meta_kubernetes_service_name"]
    assert targets["job"]["replacement"] == "nova-streaming"


def test_dashboard_configmap_validates_with_kubernetes_validate(committed: Path) -> None:
    """The ConfigMap is a valid core/v1 ConfigMap under strict schema validation."""
    configmap = yaml.safe_load((committed / FILES["dashboard-configmap"]).read_text())
    kubernetes_validate.validate(configmap, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(configmap)
    broken["dataa"] = broken.pop("data")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
