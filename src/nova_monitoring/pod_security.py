"""Security contexts meeting the *restricted* Pod Security Standard, for every pod.

Restricted requires: ``runAsNonRoot``, ``allowPrivilegeEscalation: false``, all
capabilities dropped, a ``RuntimeDefault`` (or Localhost) seccomp profile; on top of
that every container here has a read-only root filesystem, and writes only to the
emptyDirs its pod declares.

Example::

    >>> restricted_pod_security(10001)["runAsNonRoot"]
    True
"""

from __future__ import annotations

from nova_monitoring._types import Data

__all__ = ["restricted_container_security", "restricted_pod_security"]


def restricted_pod_security(uid: int) -> Data:
    """The pod-level ``securityContext``: a fixed non-root user and group, seccomp on."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> Data:
    """The container-level ``securityContext``: no escalation, no capability, read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
