"""Read a kustomization directory the way ``kubectl apply -k`` does, for plain ones.

The generated kustomizations only list ``resources`` (files and directories that are
kustomizations themselves), so resolving them is following that list in order. Any
other kustomize feature in a generated file is refused here, so a test notices it
instead of silently reading something else than kubectl would apply.

Example::

    documents = kustomize_build(repo / "k8s" / "single")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "KUSTOMIZATION",
    "KubectlYamlLoader",
    "kustomization_resources",
    "kustomize_build",
    "load_documents",
]

KUSTOMIZATION = "kustomization.yaml"
_PLAIN_KEYS = {"apiVersion", "kind", "resources"}


class KubectlYamlLoader(yaml.SafeLoader):
    """Safe loader for what kubectl prints: it writes the matcher value ``=`` unquoted,
    which PyYAML (YAML 1.1) would read as the ``value`` tag; here it is the string."""


KubectlYamlLoader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document of a file (empty documents skipped)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization_resources(directory: Path) -> list[Path]:
    """The resolved paths a kustomization lists (``FileNotFoundError`` for a missing one)."""
    (kustomization,) = load_documents(directory / KUSTOMIZATION)
    extra = set(kustomization) - _PLAIN_KEYS
    if extra:
        raise ValueError(f"{directory}: kustomize features not handled here: {sorted(extra)}")
    paths = []
    for entry in kustomization["resources"]:
        path = (directory / entry).resolve()
        if not path.exists():
            raise FileNotFoundError(f"{directory / KUSTOMIZATION}: resource {entry!r} missing")
        paths.append(path)
    return paths


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """All resources ``kubectl apply -k directory`` would apply, bases first."""
    documents: list[dict[str, Any]] = []
    for path in kustomization_resources(directory):
        if path.is_dir():
            documents.extend(kustomize_build(path))
        else:
            documents.extend(load_documents(path))
    return documents
