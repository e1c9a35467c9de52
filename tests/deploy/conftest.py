"""Fixtures for the deployment tests: the committed ``k8s/`` tree and a render with
non-default options, each built per variant like ``kubectl apply -k``.

Kubernetes and containers cannot run on these machines, so the manifests and
Containerfiles are checked as artifacts: against the Kubernetes and CRD schemas, against
each other, and against the real service (its settings, routes and CLI).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nova_monitoring.render import render_manifests
from nova_monitoring.variants import VARIANTS
from nova_testing.kustomize import kustomize_build
from nova_testing.manifests import NON_DEFAULT_DEPLOY, NON_DEFAULT_OPTIONS, Resource


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def k8s(repo: Path) -> Path:
    """The committed generated tree, ``k8s/``."""
    return repo / "k8s"


@pytest.fixture(scope="session")
def non_default_k8s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All of ``k8s/`` rendered with the non-default options (token, external Redis...)."""
    root = tmp_path_factory.mktemp("k8s-non-default")
    render_manifests(root, NON_DEFAULT_OPTIONS, NON_DEFAULT_DEPLOY)
    return root


@pytest.fixture(scope="session", params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    """Each deployable variant in turn."""
    value: str = request.param
    return value


@pytest.fixture(scope="session", params=["committed", "non-default"])
def tree(request: pytest.FixtureRequest, k8s: Path, non_default_k8s: Path) -> Path:
    """The committed ``k8s/``, then the non-default render."""
    return k8s if request.param == "committed" else non_default_k8s


@pytest.fixture(scope="session")
def built(tree: Path, variant: str) -> list[Resource]:
    """What ``kubectl apply -k <tree>/<variant>`` applies, for each tree and variant."""
    return kustomize_build(tree / variant)
