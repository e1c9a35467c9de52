"""nginx-rtmp's HTTP callbacks on the service's public port.

- ``POST /rtmp/on_publish``: :func:`~nova_streaming.ingest.publish_auth.decide_publish`
  with the HTTP peer's address (``request.client.host``), the settings' trusted peers
  and publish secret. From an address outside the trusted peers: 403, counted only in
  ``nova_streaming_untrusted_requests_total{endpoint="on_publish"}`` (never a broadcast
  error: the error-rate page must not be something anyone on the network can fire).
  Refused by a trusted nginx (bad token, non-UUID name, ...): 403 (nginx drops the
  broadcaster) and ``auth_rejected`` counted once. Allowed: the authorization goes to
  the registry (cluster-wide, for
  :data:`~nova_streaming.ingest.component.AUTHORIZATION_TTL`), since the relay that
  follows may reach another replica's receiver and carries no query string; 200.
  503 (nothing counted) while the shared backend is unreachable.
- ``POST /rtmp/on_publish_done``: from a trusted peer, end the stream through the
  registry (routed to its owner, reason ``publish_done``) and answer 200 whatever
  happened (nginx ignores the answer); from anyone else 403, counted only in
  ``nova_streaming_untrusted_requests_total{endpoint="on_publish_done"}``.

The body is read only after the peer is known to be trusted, and at most
``MAX_CALLBACK_BODY`` bytes of it.

Example::

    routes = callback_routes(component)     # component: IngestComponent
    app = create_app(settings, metrics=metrics, extra_routes=routes, components=[component])
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from nova_streaming.ingest.component import AUTH_REJECTED, AUTHORIZATION_TTL, IngestComponent
from nova_streaming.ingest.publish_auth import (
    MAX_CALLBACK_BODY,
    REASON_MALFORMED_BODY,
    REASON_UNTRUSTED_PEER,
    decide_publish,
    decide_publish_done,
)
from nova_streaming.presence import PresenceUnavailable
from nova_streaming.service import Service

__all__ = ["ON_PUBLISH_DONE_PATH", "ON_PUBLISH_PATH", "callback_routes"]

log = logging.getLogger(__name__)

ON_PUBLISH_PATH = "/rtmp/on_publish"
ON_PUBLISH_DONE_PATH = "/rtmp/on_publish_done"


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _peer(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def _untrusted(service: Service, endpoint: str, peer: str | None) -> PlainTextResponse:
    """403 for a caller outside the trusted peers, counted in the service's own metric."""
    service.service_metrics.untrusted_requests.labels(endpoint=endpoint).inc()
    log.debug("ingest: %s refused (%s): from %r", endpoint, REASON_UNTRUSTED_PEER, peer)
    return PlainTextResponse(f"refused: {REASON_UNTRUSTED_PEER}\n", status_code=403)


def _refused(service: Service, what: str, reason: str, detail: str) -> PlainTextResponse:
    service.metrics.record_broadcast_error(AUTH_REJECTED)
    log.info("ingest: %s refused (%s): %s", what, reason, detail)
    return PlainTextResponse(f"refused: {reason}\n", status_code=403)


def callback_routes(component: IngestComponent) -> list[Route]:
    """The two callback routes, sharing ``component``'s settings and state."""
    settings = component.settings
    trusted = component.trusted

    async def on_publish(request: Request) -> PlainTextResponse:
        service: Service = request.app.state.service
        peer = _peer(request)
        if not trusted.allows(peer):
            return _untrusted(service, "on_publish", peer)
        body = await _read_body(request, MAX_CALLBACK_BODY)
        if body is None:
            return _refused(
                service, "on_publish", REASON_MALFORMED_BODY, f"body over {MAX_CALLBACK_BODY}"
            )
        decision = decide_publish(body, peer, secret=settings.publish_secret, trusted=trusted)
        if not decision.allowed or decision.stream_id is None:
            return _refused(
                service,
                f"publish of {decision.stream_name!r} from {decision.client_addr}",
                decision.reason or "refused",
                decision.detail,
            )
        try:
            await service.registry.authorize(
                decision.stream_id, decision.stream_type, AUTHORIZATION_TTL
            )
        except PresenceUnavailable:
            log.warning("ingest: on_publish of %s: registry unavailable", decision.stream_id)
            return PlainTextResponse("registry unavailable\n", status_code=503)
        component.note_authorized(decision.stream_id)
        log.info(
            "ingest: publish of %s (%s) authorized for %s",
            decision.stream_name,
            decision.stream_type,
            decision.client_addr,
        )
        return PlainTextResponse("ok\n")

    async def on_publish_done(request: Request) -> PlainTextResponse:
        service: Service = request.app.state.service
        peer = _peer(request)
        if not trusted.allows(peer):
            return _untrusted(service, "on_publish_done", peer)
        body = await _read_body(request, MAX_CALLBACK_BODY)
        decision = decide_publish_done(body or b"", peer, trusted=trusted)
        if body is None or not decision.allowed or decision.stream_id is None:
            # A publish on_publish refused (bad name, ...) ends here too: nothing to end.
            log.info("ingest: on_publish_done ignored: %s", decision.detail or "body too large")
            return PlainTextResponse("ignored\n")
        ended = await component.publish_done(decision.stream_id, decision.stream_name or "")
        log.info(
            "ingest: publish of %s done (%s)",
            decision.stream_name,
            "ended" if ended else "not active",
        )
        return PlainTextResponse("ok\n")

    return [
        Route(ON_PUBLISH_PATH, on_publish, methods=["POST"]),
        Route(ON_PUBLISH_DONE_PATH, on_publish_done, methods=["POST"]),
    ]
