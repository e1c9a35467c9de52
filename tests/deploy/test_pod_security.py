"""Every pod template meets the *restricted* Pod Security Standard, and writes only to
volumes it declares.

The checks follow the standard's controls (Kubernetes docs, "Pod Security Standards",
restricted profile): no host namespaces, ports or paths, no privileged containers, only
the allowed volume types, non-root, no privilege escalation, every capability dropped
(only NET_BIND_SERVICE may be added back), seccomp RuntimeDefault or Localhost. On top
of it, this project requires a read-only root filesystem.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nova_testing.manifests import Resource, containers, pod_templates

_ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(template: Resource) -> list[str]:
    """What in a pod template breaks the restricted profile (empty when none)."""
    spec: dict[str, Any] = template["spec"]
    pod_sc: dict[str, Any] = spec.get("securityContext", {})
    problems = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) is True:
            problems.append(f"pod: {field}")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod: runAsUser 0")
    pod_seccomp = pod_sc.get("seccompProfile", {}).get("type")
    for container in containers(template):
        name = container["name"]
        sc: dict[str, Any] = container.get("securityContext", {})
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation not false")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) in (0, None):
            problems.append(f"{name}: no non-zero runAsUser")
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities not dropping ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities added")
        seccomp = sc.get("seccompProfile", {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccomp {seccomp}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem writable")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort")
    return problems


def test_every_pod_template_is_restricted(built: list[Resource]) -> None:
    """Service, ingest and Redis pods, committed and non-default, break no control."""
    templates = pod_templates(built)
    assert templates
    for name, template in templates:
        assert restricted_violations(template) == [], name


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("securityContext", "runAsNonRoot"), False, "runAsNonRoot"),
        (("securityContext", "allowPrivilegeEscalation"), True, "allowPrivilegeEscalation"),
        (("securityContext", "capabilities"), {"drop": ["NET_RAW"]}, "ALL"),
        (("securityContext", "readOnlyRootFilesystem"), False, "root filesystem"),
        (("securityContext", "seccompProfile"), {"type": "Unconfined"}, "seccomp"),
    ],
)
def test_the_policy_check_catches_a_violation(
    built: list[Resource], path: tuple[str, str], value: object, problem: str
) -> None:
    """Each control the check enforces fails when that field is changed (it can fail)."""
    _, template = pod_templates(built)[0]
    broken = copy.deepcopy(template)
    container = broken["spec"]["containers"][0]
    container[path[0]][path[1]] = value
    assert any(problem in p for p in restricted_violations(broken))


def test_host_paths_are_refused(built: list[Resource]) -> None:
    """A hostPath volume is not allowed under restricted."""
    _, template = pod_templates(built)[0]
    broken = copy.deepcopy(template)
    broken["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert any("volume host" in p for p in restricted_violations(broken))


def test_writable_paths_are_declared_volumes(built: list[Resource]) -> None:
    """With the root filesystem read-only, every mount is a declared volume and every
    writable one is an emptyDir (the ConfigMap is mounted read-only)."""
    for name, template in pod_templates(built):
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        for container in containers(template):
            for mount in container.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                if "emptyDir" not in volume:
                    assert mount.get("readOnly") is True, (name, mount)
        pod_sc = template["spec"]["securityContext"]
        assert pod_sc["runAsUser"] == pod_sc["runAsGroup"] != 0
        assert template["spec"]["automountServiceAccountToken"] is False
