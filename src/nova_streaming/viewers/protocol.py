"""The WebSocket protocol uvicorn runs for every connection, minus what an idle viewer
does not need once its handshake is done.

uvicorn's sans-I/O protocol keeps the handshake's ``Request`` and ``Response`` (each
with a ``Headers``: a dict of one list per header name, plus a list of pairs) for the
life of the connection, though nothing reads them after the 101 is written. That is
about 18 of the roughly 68 objects the garbage collector tracks per idle viewer, and a
full (generation 2) collection walks every tracked object of the process: with
thousands of viewers each pass stalls the event loop for hundreds of milliseconds
(docs/service.md, "Garbage collection and event-loop stalls"). Fewer tracked objects
per connection make every pass shorter and the passes rarer (CPython starts one when
the objects promoted since the last grow past a quarter of the long-lived ones).

Example::

    uvicorn.Config(app, ws=LeanWebSocketProtocol)
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["LeanWebSocketProtocol"]


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` that lets go of the handshake once it is answered.

    uvicorn calls :meth:`start_keepalive` exactly once, right after it wrote the 101
    response (the only place that reads ``response``); ``request`` is never read after
    the handshake. Rejected handshakes never get here and keep uvicorn's path unchanged.
    """

    def start_keepalive(self) -> None:
        """Start uvicorn's keep-alive pings, then drop the handshake's request and
        response (and their header structures) for the rest of the connection."""
        super().start_keepalive()
        # websockets' parser generator keeps the Request in a local for the life of
        # the connection; emptying its headers frees their containers all the same.
        self.request.headers.clear()
        del self.request
        del self.response

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's bookkeeping, then break the one reference cycle a closed connection
        leaves: websockets' parser generator holds its protocol (and the protocol the
        generator). Closed, it releases its frame, and the connection's objects are
        freed by reference counting at once instead of waiting, promoted to the oldest
        generation, for the next full collection to find them (and to finalize three
        generators each). Nothing parses after the connection is lost."""
        super().connection_lost(exc)
        self.conn.parser.close()
