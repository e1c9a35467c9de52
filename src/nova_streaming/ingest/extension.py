"""The ingest as a service extension: callback routes plus the receiver component.

``nova-streaming serve`` finds :func:`service_extension` through
:mod:`nova_streaming.extensions` (it imports ``nova_streaming.ingest``).

Example::

    extension = ingest_extension(settings)
    app = create_app(settings, metrics=metrics, extensions=[extension])
    component = ingest_component(app)    # the running receiver, for tests and tools
"""

from __future__ import annotations

from starlette.applications import Starlette

from nova_streaming.app import Extension
from nova_streaming.ingest.callbacks import callback_routes
from nova_streaming.ingest.component import IngestComponent
from nova_streaming.settings import Settings
from nova_streaming.stream_signals import StreamSignals

__all__ = ["ingest_component", "ingest_extension"]


def ingest_extension(settings: Settings, component: IngestComponent | None = None) -> Extension:
    """Routes ``POST /rtmp/on_publish`` and ``/rtmp/on_publish_done`` and the RTMP
    receiver on ``settings.ingest_port``, sharing one :class:`IngestComponent`; plus
    the :class:`~nova_streaming.stream_signals.StreamSignals` that share the owned
    streams' lag and drops with the other replicas (``/api/v1/streams?sort=lag``)."""
    component = component or IngestComponent(settings)
    return Extension(routes=callback_routes(component), components=[component, StreamSignals()])


def ingest_component(app: Starlette) -> IngestComponent:
    """The ingest component of an app built with the ingest extension."""
    for component in app.state.service.components:
        if isinstance(component, IngestComponent):
            return component
    raise LookupError("ingest: the app has no ingest component")
