"""Type aliases shared by the generators: documents are plain JSON-like data."""

from __future__ import annotations

from typing import Any, TypeAlias

Data: TypeAlias = dict[str, Any]
"""One JSON/YAML object: a rule, a group, a Kubernetes resource, a dashboard."""
