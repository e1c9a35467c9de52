"""The monitoring bundle's Kubernetes resources: validated like `kubectl --validate=strict`.

Custom resources are checked against the Prometheus Operator CRD schemas vendored in
``tests/schemas/prometheus-operator`` (structural data of kube-prometheus-stack 88.5.3 /
operator v0.93.1) with every object schema that lists ``properties`` closed; the
ConfigMap against Kubernetes' own schemas with kubernetes-validate (strict).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from nova_monitoring.options import RenderOptions
from nova_monitoring.render import FILES, render_documents
from nova_testing.kubernetes_schemas import (
    CRD_SCHEMA_DIR,
    validate_builtin,
    validate_custom,
)


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
        validate_custom(resource)


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
        validate_custom(resource)


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
        validate_custom(resource)
        assert resource["metadata"]["namespace"] == "streaming"
        assert resource["metadata"]["labels"]["release"] == "kps"
    validate_custom(yaml.safe_load(documents[FILES["alertmanager-config"]]))
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
    validate_builtin(configmap)
    broken = copy.deepcopy(configmap)
    broken["dataa"] = broken.pop("data")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(broken)


def test_vendored_crd_schemas_are_structural_and_self_contained() -> None:
    """The vendored schemas hold no prose, carry their source, and keep the `=` enum value.

    The AlertmanagerConfig matcher enum contains a bare `=`, which PyYAML's YAML 1.1
    loader reads as the `value` tag: the extraction must have kept it as the string.
    """
    files = sorted(p.name for p in CRD_SCHEMA_DIR.glob("*.json"))
    assert files == [
        "alertmanagerconfigs.monitoring.coreos.com_v1alpha1.json",
        "prometheusrules.monitoring.coreos.com_v1.json",
        "servicemonitors.monitoring.coreos.com_v1.json",
    ]
    keywords: set[str] = set()

    def walk(node: Any) -> None:
        keywords.update(node)
        for name in ("items", "not"):
            if isinstance(node.get(name), dict):
                walk(node[name])
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])
        for sub in node.get("properties", {}).values():
            walk(sub)
        for sub in node.get("anyOf", []):
            walk(sub)

    for name in files:
        document = json.loads((CRD_SCHEMA_DIR / name).read_text())
        assert document["source"]["operatorVersion"] == "0.93.1"
        walk(document["openAPIV3Schema"])
    assert "description" not in keywords
    assert {"type", "properties", "required", "pattern", "enum"} <= keywords
    matcher = json.loads((CRD_SCHEMA_DIR / files[0]).read_text())["openAPIV3Schema"]
    route = matcher["properties"]["spec"]["properties"]["route"]
    match_type = route["properties"]["matchers"]["items"]["properties"]["matchType"]
    assert "=" in match_type["enum"]
