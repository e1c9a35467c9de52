"""Offline validation of Kubernetes resources, as strict as ``kubectl --validate=strict``.

Built-in kinds are checked with kubernetes-validate (Kubernetes' own OpenAPI schemas,
strict mode: unknown fields fail) for every version in ``KUBERNETES_VERSIONS``.
Custom resources are checked with jsonschema against the Prometheus Operator CRD schemas
vendored in ``tests/schemas/prometheus-operator`` (see the README there), with every
object schema that lists ``properties`` closed, as the API server's strict field
validation does for structural schemas.

Example::

    from nova_testing.kubernetes_schemas import validate_resource
    validate_resource(yaml.safe_load(path.read_text()))
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

__all__ = [
    "CRD_SCHEMA_DIR",
    "KUBERNETES_VERSIONS",
    "close_schema",
    "crd_schema",
    "is_custom",
    "validate_builtin",
    "validate_custom",
    "validate_resource",
]

CRD_SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "prometheus-operator"

KUBERNETES_VERSIONS: tuple[str, ...] = ("1.32", kubernetes_validate.latest_version())
"""The oldest Kubernetes the manifests target (the kubectl on these machines) and the
newest kubernetes-validate knows: a field removed or renamed in between fails one."""


def close_schema(schema: Any) -> Any:
    """Close every object schema that lists properties, recursively (in place)."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            close_schema(value)
    elif isinstance(schema, list):
        for item in schema:
            close_schema(item)
    return schema


@cache
def _vendored() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_SCHEMA_DIR.glob("*.json")):
        document = json.loads(path.read_text())
        found[(document["apiVersion"], document["kind"])] = document["openAPIV3Schema"]
    if not found:
        raise FileNotFoundError(f"no vendored CRD schemas in {CRD_SCHEMA_DIR}")
    return found


def is_custom(resource: dict[str, Any]) -> bool:
    """True for a kind with a vendored CRD schema (a Prometheus Operator resource)."""
    return (resource["apiVersion"], resource["kind"]) in _vendored()


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The closed schema of a vendored custom resource kind (``KeyError`` when none)."""
    schema: dict[str, Any] = close_schema(copy.deepcopy(_vendored()[(api_version, kind)]))
    return schema


def validate_custom(resource: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless the custom resource fits its closed CRD."""
    schema = crd_schema(resource["apiVersion"], resource["kind"])
    jsonschema.Draft7Validator(schema).validate(resource)


def validate_builtin(resource: dict[str, Any]) -> None:
    """Raise ``kubernetes_validate.ValidationError`` unless the resource is valid (strict)
    for every version in ``KUBERNETES_VERSIONS``."""
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(resource, version, strict=True)


def validate_resource(resource: dict[str, Any]) -> None:
    """Validate a custom resource against its CRD, anything else against Kubernetes."""
    if is_custom(resource):
        validate_custom(resource)
    else:
        validate_builtin(resource)
