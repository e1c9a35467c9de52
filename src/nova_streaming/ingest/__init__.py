"""RTMP ingest: the receiver nginx-rtmp pushes to, its callbacks' logic, its config.

Modules: ``handshake``, ``chunks``, ``amf0`` and ``session`` parse RTMP sans-IO;
``frames`` measures lag, drops, quality and bitrate; ``receiver`` is the asyncio
server and the :class:`IngestSink` protocol; ``publish_auth`` decides nginx's
on_publish callbacks; ``nginx_conf`` renders nginx's configuration. Wired into the
service (needs the ``service`` extra): ``component`` (the receiver as an app component
and its sink: registry and metrics), ``callbacks`` (the HTTP callback routes),
``extension`` (:func:`service_extension`, which ``nova-streaming serve`` loads).

Example::

    >>> from nova_streaming.ingest import quality_for_height
    >>> quality_for_height(1080)
    '1080p'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nova_streaming.ingest.errors import AmfError, HandshakeError, RtmpProtocolError
from nova_streaming.ingest.frames import quality_for_height, split_rendition
from nova_streaming.ingest.limits import IngestLimits
from nova_streaming.ingest.nginx_conf import (
    NginxRtmpConfig,
    render_nginx_config,
    write_nginx_config,
)
from nova_streaming.ingest.peers import TrustedPeers
from nova_streaming.ingest.publish_auth import (
    PublishDecision,
    decide_publish,
    decide_publish_done,
    parse_callback_form,
)
from nova_streaming.ingest.receiver import (
    IngestReceiver,
    IngestSession,
    IngestSink,
    StopReason,
    VideoFrame,
)

if TYPE_CHECKING:
    from nova_streaming.app import Extension
    from nova_streaming.settings import Settings

__all__ = [
    "AmfError",
    "HandshakeError",
    "IngestLimits",
    "IngestReceiver",
    "IngestSession",
    "IngestSink",
    "NginxRtmpConfig",
    "PublishDecision",
    "RtmpProtocolError",
    "StopReason",
    "TrustedPeers",
    "VideoFrame",
    "decide_publish",
    "decide_publish_done",
    "parse_callback_form",
    "quality_for_height",
    "render_nginx_config",
    "service_extension",
    "split_rendition",
    "write_nginx_config",
]


def service_extension(settings: Settings) -> Extension:
    """The ingest's routes and receiver component for ``create_app(extensions=...)``.

    Imported lazily: the parsing modules above need no web framework.

    Example::

        app = create_app(settings, metrics=metrics, extensions=[service_extension(settings)])
    """
    from nova_streaming.ingest.extension import ingest_extension

    return ingest_extension(settings)
