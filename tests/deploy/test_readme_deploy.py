"""The README's "Deploy to Kubernetes" section is true to the manifests it describes.

Its render command runs (into a scratch directory) and gives applicable variants; the
Secrets it creates are the ones the manifests reference, with the same keys; the paths
it applies exist; the Service and port it port-forwards exist; the resources it
describes are the ones rendered.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from nova_monitoring.cli import main
from nova_testing.kustomize import kustomize_build
from nova_testing.manifests import Resource, one


def _section(repo: Path) -> str:
    text = (repo / "README.md").read_text()
    match = re.search(r"<!-- section:deploy -->(.*?)<!-- /section:deploy -->", text, re.S)
    assert match, "README has no deploy section"
    return match.group(1)


def _commands(section: str) -> list[list[str]]:
    """Each shell command of the section's code blocks, continuations joined, comments cut."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            if words:
                commands.append(words)
    return commands


def _secret_refs(resources: list[Resource]) -> set[tuple[str, str]]:
    refs = set()
    for deployment in resources:
        if deployment["kind"] != "Deployment":
            continue
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    for config in resources:
        if config["kind"] == "AlertmanagerConfig":
            for receiver in config["spec"]["receivers"]:
                for slack in receiver.get("slackConfigs", []):
                    refs.add((slack["apiURL"]["name"], slack["apiURL"]["key"]))
    return refs


def test_readme_render_command_runs(repo: Path, tmp_path: Path) -> None:
    """The section's `nova-monitoring render --manifests` command works as printed."""
    renders = [c for c in _commands(_section(repo)) if c[0].endswith("nova-monitoring")]
    assert renders
    for words in renders:
        argv = words[1:]
        argv[argv.index("--output") + 1] = str(tmp_path / "out")
        assert main(argv) == 0
        for variant in ("single", "scaled"):
            assert one(kustomize_build(tmp_path / "out" / variant), "Service", "user-service")


def test_readme_secrets_are_the_ones_referenced(repo: Path, k8s: Path, tmp_path: Path) -> None:
    """Every `kubectl create secret` names a Secret and key the manifests read (by default,
    or with the option its comment names), and every Secret the committed manifests read
    is created there."""
    created = set()
    for words in _commands(_section(repo)):
        if words[:3] == ["kubectl", "create", "secret"]:
            name = words[4]
            (literal,) = [w for w in words if w.startswith("--from-literal=")]
            key = literal.removeprefix("--from-literal=").split("=", 1)[0]
            created.add((name, key))
    committed = set()
    for variant in ("single", "scaled"):
        committed |= _secret_refs(kustomize_build(k8s / variant))
    assert committed <= created, committed - created
    argv = ["render", "--manifests", "--output", str(tmp_path)]
    argv += ["--metrics-token-secret", "nova-metrics-token", "--redis", "external"]
    assert main(argv) == 0
    optional = _secret_refs(kustomize_build(tmp_path / "scaled"))
    assert created <= committed | optional, created - committed - optional


def test_readme_apply_and_port_forward_targets_exist(repo: Path, k8s: Path) -> None:
    """`kubectl apply -k k8s/...` paths are variants; `port-forward svc/user-service 8081`
    reaches the metrics port; the resources it then describes are rendered."""
    commands = _commands(_section(repo))
    applied = [c[c.index("-k") + 1] for c in commands if c[:3] == ["kubectl", "apply", "-k"]]
    assert applied
    for path in applied:
        if path.startswith("k8s/"):
            assert (repo / path / "kustomization.yaml").is_file(), path
    resources = kustomize_build(k8s / "single")
    forwards = [c for c in commands if c[:2] == ["kubectl", "port-forward"]]
    services = {c[c.index("port-forward") + 3]: c[-1] for c in forwards}
    service = one(resources, "Service", "user-service")
    local, _, remote = services["svc/user-service"].partition(":")
    ports = {p["port"]: p["name"] for p in service["spec"]["ports"]}
    assert ports[int(remote or local)] == "metrics"
    for words in commands:
        if words[:2] == ["kubectl", "describe"]:
            kind = {"servicemonitor": "ServiceMonitor"}[words[2]]
            one(resources, kind, words[3])


@pytest.mark.parametrize("name", ["nova-streaming-monitor", "nova-streaming-alerts"])
def test_readme_names_the_guides_resources(repo: Path, name: str) -> None:
    """The guide's resource names appear in the section as the procedures use them."""
    assert name in _section(repo)
