"""``GET /ws/streams/{stream_id}``: the viewer WebSocket (design section 6).

Close codes: 4400 the ID is not a UUID, 4404 the stream is not active, 1013 the
process is at ``NOVA_MAX_CONNECTIONS``, 1000 after ``stream_ended``, 1001 on server
shutdown (connected viewers, and new ones while the replica drains: reconnect
elsewhere). Nothing a client sends creates a series: a viewer is counted only for a
stream the registry knows is active.

The endpoint is a plain ASGI app rather than a Starlette ``WebSocket`` function: an idle
viewer is held for hours, and Starlette's per-connection session (the ``WebSocket``
object, its own exception-handling wrapper and their suspended coroutine frames) cost
about 1.5 KiB per connection for features a viewer never uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from nova_streaming.registry import InvalidStreamId, normalize_stream_id
from nova_streaming.service import Service
from nova_streaming.viewers.hub import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    SendResult,
    Viewer,
    message,
    send_now,
)
from nova_streaming.viewers.protocol import LeanWebSocketProtocol

__all__ = [
    "CLOSE_INVALID_ID",
    "CLOSE_NOT_ACTIVE",
    "CLOSE_TRY_AGAIN",
    "AsgiViewerSocket",
    "ViewerEndpoint",
    "ViewerFastPath",
    "viewer_route",
]

log = logging.getLogger(__name__)

CLOSE_INVALID_ID = 4400
CLOSE_NOT_ACTIVE = 4404
CLOSE_TRY_AGAIN = 1013

VIEWER_PATH_PREFIX = "/ws/streams/"

# Scope entries a viewer connection no longer needs once accepted (see docs/service.md,
# "Garbage collection and event-loop stalls"): the request headers, the offered
# subprotocols, the extensions and state dicts.
_SCOPE_AFTER_ACCEPT = ("headers", "subprotocols", "extensions", "state")


class AsgiViewerSocket:
    """The hub's :class:`~nova_streaming.viewers.hub.ViewerSocket` over a raw ASGI ``send``.

    Example::

        socket = AsgiViewerSocket(send)
        await socket.send_text('{"type":"hello"}')
        await socket.close(1000, "stream ended")

    When ``send`` is the ``send`` of a :class:`LeanWebSocketProtocol` connection (what
    the service runs), broadcasts write their pre-encoded frame straight to it
    (:meth:`send_frame_now`); any other ASGI server goes through ``send``.
    """

    __slots__ = ("_send", "_wire")

    def __init__(self, send: Send) -> None:
        self._send = send
        wire = getattr(send, "__self__", None)
        self._wire = wire if isinstance(wire, LeanWebSocketProtocol) else None

    def send_text(self, data: str) -> Awaitable[None]:
        """Send one text frame (the server's coroutine, for :func:`send_now` to step)."""
        return self._send({"type": "websocket.send", "text": data})

    def close(self, code: int = 1000, reason: str | None = None) -> Awaitable[None]:
        """Start the closing handshake."""
        return self._send({"type": "websocket.close", "code": code, "reason": reason or ""})

    def send_frame_now(self, frame: bytes, text: str) -> SendResult:
        """Send one broadcast now: ``frame`` (``text`` encoded by
        :func:`~nova_streaming.viewers.hub.text_frame`) written to the connection as is,
        or ``text`` through ``send`` stepped by :func:`send_now`."""
        wire = self._wire
        if wire is not None:
            return wire.send_frame_now(frame)
        return send_now(self.send_text(text))


async def _refuse(
    service: Service, socket: AsgiViewerSocket, send: Send, code: int, reason: str
) -> None:
    # Accept first: closing before the handshake would be an HTTP 403, not a close code.
    service.service_metrics.websocket_rejected.labels(reason=reason).inc()
    await send({"type": "websocket.accept"})
    await socket.close(code, reason.replace("_", " "))


class ViewerEndpoint:
    """The ASGI app of ``/ws/streams/{stream_id}``: admit, count and serve one viewer
    until it leaves or the stream ends (mounted by :func:`viewer_route`).

    Example::

        WebSocketRoute("/ws/streams/{stream_id}", ViewerEndpoint())
    """

    __slots__ = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("viewers: the viewer endpoint serves WebSocket scopes only")
        if (await receive())["type"] != "websocket.connect":
            return  # The client left before the handshake.
        service: Service = scope["app"].state.service
        socket = AsgiViewerSocket(send)
        try:
            sid = normalize_stream_id(scope.get("path_params", {}).get("stream_id", ""))
        except InvalidStreamId:
            await _refuse(service, socket, send, CLOSE_INVALID_ID, "invalid_stream_id")
            return
        # One coroutine frame for the whole connection: it stays suspended while idle.
        hub = service.hub
        registry = service.registry
        if hub.closing:
            # Draining (SIGTERM): a load balancer may still send viewers here for a
            # moment; 1001 makes the client reconnect, to a replica that stays.
            await _refuse(service, socket, send, CLOSE_GOING_AWAY, "shutting_down")
            return
        if not hub.reserve():
            await _refuse(service, socket, send, CLOSE_TRY_AGAIN, "over_capacity")
            return
        viewer: Viewer | None = None
        try:
            generation = registry.end_generation(sid)
            if not await registry.is_active(sid):
                await _refuse(service, socket, send, CLOSE_NOT_ACTIVE, "stream_not_active")
                return
            await send({"type": "websocket.accept"})
            # The server logged the accept; nothing reads these again, and each is a
            # garbage-collected container held for the life of the connection.
            for key in _SCOPE_AFTER_ACCEPT:
                scope.pop(key, None)
            if registry.end_generation(sid) != generation:
                # The stream ended while this viewer was being admitted.
                await socket.send_text(message("stream_ended", sid, reason="ended"))
                await socket.close(CLOSE_NORMAL, "stream ended")
                return
            viewer = Viewer(sid, socket, asyncio.current_task())
            hub.release()
            if not hub.join(viewer):
                return
            # Viewers have nothing to say; their messages are read and discarded.
            while (await receive())["type"] != "websocket.disconnect":
                pass
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
    return WebSocketRoute(
        VIEWER_PATH_PREFIX + "{stream_id}", ViewerEndpoint(), name="viewer_endpoint"
    )


class ViewerFastPath:
    """The service app with viewer WebSockets dispatched straight to :class:`ViewerEndpoint`.

    Starlette routes a WebSocket through its error and exception middlewares, the router
    and the route, and each of them stays suspended for the life of the connection: about
    3 KiB per idle viewer. This front door matches ``/ws/streams/{stream_id}`` exactly as
    the route does, sets what the endpoint reads (``app``, ``path_params``) and calls it;
    everything else (HTTP, lifespan, other WebSocket paths) goes to ``app`` unchanged. The
    app has no middleware of its own; one added later must also wrap this (the route in
    ``app`` keeps serving viewers under any other server, e.g. a test client).

    ``__call__`` is a plain function returning the coroutine to await, so the front door
    adds no frame either; serve it as ``interface="asgi3"``.

    Example::

        uvicorn.Config(ViewerFastPath(create_app(settings, metrics=m)), interface="asgi3")
    """

    __slots__ = ("_app", "_endpoint")

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._endpoint = ViewerEndpoint()

    @property
    def app(self) -> ASGIApp:
        """The wrapped service app."""
        return self._app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(VIEWER_PATH_PREFIX):
                stream_id = path[len(VIEWER_PATH_PREFIX) :]
                # The route's ``{stream_id}`` is one non-empty path segment.
                if stream_id and "/" not in stream_id:
                    scope["app"] = self._app
                    scope["path_params"] = {"stream_id": stream_id}
                    return self._endpoint(scope, receive, send)
        return self._app(scope, receive, send)
