"""``GET /ws/streams/{stream_id}``: the viewer WebSocket (design section 6).

Close codes: 4400 the ID is not a UUID, 4404 the stream is not active, 1013 the
process is at ``NOVA_MAX_CONNECTIONS``, 1000 after ``stream_ended``, 1001 on server
shutdown. Nothing a client sends creates a series: a viewer is counted only for a
stream the registry knows is active.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from nova_streaming.registry import InvalidStreamId, normalize_stream_id
from nova_streaming.service import Service
from nova_streaming.viewers.hub import CLOSE_NORMAL, Viewer, message

__all__ = ["CLOSE_INVALID_ID", "CLOSE_NOT_ACTIVE", "CLOSE_TRY_AGAIN", "viewer_route"]

log = logging.getLogger(__name__)

CLOSE_INVALID_ID = 4400
CLOSE_NOT_ACTIVE = 4404
CLOSE_TRY_AGAIN = 1013


async def _refuse(service: Service, websocket: WebSocket, code: int, reason: str) -> None:
    # Accept first: closing before the handshake would be an HTTP 403, not a close code.
    service.service_metrics.websocket_rejected.labels(reason=reason).inc()
    await websocket.accept()
    await websocket.close(code, reason.replace("_", " "))


async def viewer_endpoint(websocket: WebSocket) -> None:
    """Admit, count and serve one viewer until it leaves or the stream ends."""
    service: Service = websocket.app.state.service
    hub = service.hub
    registry = service.registry
    try:
        sid = normalize_stream_id(websocket.path_params.get("stream_id", ""))
    except InvalidStreamId:
        await _refuse(service, websocket, CLOSE_INVALID_ID, "invalid_stream_id")
        return
    if not hub.reserve():
        await _refuse(service, websocket, CLOSE_TRY_AGAIN, "over_capacity")
        return
    viewer: Viewer | None = None
    try:
        generation = registry.end_generation(sid)
        if not await registry.is_active(sid):
            await _refuse(service, websocket, CLOSE_NOT_ACTIVE, "stream_not_active")
            return
        await websocket.accept()
        if registry.end_generation(sid) != generation:
            # The stream ended while this viewer was being admitted.
            await websocket.send_text(message("stream_ended", sid, reason="ended"))
            await websocket.close(CLOSE_NORMAL, "stream ended")
            return
        viewer = Viewer(sid, websocket, asyncio.current_task())
        hub.release()
        if not hub.join(viewer):
            return
        while True:
            event = await websocket.receive()
            if event["type"] == "websocket.disconnect":
                break
            # Viewers have nothing to say; their messages are read and discarded.
    except asyncio.CancelledError:
        if viewer is None or not viewer.dropped:
            raise
        # Dropped by the hub (slow consumer): return so the server closes the transport.
    finally:
        if viewer is None:
            hub.release()
        else:
            hub.leave(viewer)


def viewer_route() -> WebSocketRoute:
    """The Starlette route of the viewer endpoint."""
    return WebSocketRoute("/ws/streams/{stream_id}", viewer_endpoint)
