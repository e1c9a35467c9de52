"""Monitoring as code for Nova Streaming: rules, alerts, dashboard, Kubernetes resources.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from nova_monitoring import RenderOptions, render_rules_file
    >>> opts = RenderOptions(eval_interval="1s", for_scale=0.05, rate_window="30s")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     render_rules_file(Path(tmp) / "rules.yml", opts).name
    'rules.yml'
"""

from nova_monitoring.options import RenderOptions, RenderOptionsError
from nova_monitoring.render import render, render_documents, render_rules_file

__all__ = [
    "RenderOptions",
    "RenderOptionsError",
    "render",
    "render_documents",
    "render_rules_file",
]
