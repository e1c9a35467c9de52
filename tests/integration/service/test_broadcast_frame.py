"""A broadcast's pre-encoded frame: the same bytes websockets would send, and, written
straight to a viewer's connection, the same outcome as uvicorn's own ``send`` in every
state a viewer can be in (real uvicorn server, real ``websockets`` clients)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Frame, Opcode

from nova_streaming.viewers.endpoint import AsgiViewerSocket
from nova_streaming.viewers.hub import SendResult, send_now, text_frame
from nova_streaming.viewers.protocol import LeanWebSocketProtocol
from nova_testing.ws_messages import recv_json

Replicas = Callable[..., Awaitable[Any]]
Wait = Callable[..., Awaitable[Any]]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_is_the_frame_websockets_serialises(size: int) -> None:
    """Every length encoding (7-bit, 16-bit, 64-bit) and multi-byte UTF-8."""
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert text_frame(text) == expected


@dataclass
class Watching:
    """One viewer of one stream on a replica: its client and the server's socket."""

    replica: Any
    sid: str
    ws: ClientConnection
    socket: AsgiViewerSocket
    wire: LeanWebSocketProtocol


@pytest.fixture
async def watching(replicas: Replicas, new_stream_id: Callable[[], str]) -> AsyncIterator[Watching]:
    """A replica with one live stream and one connected viewer (its hello read)."""
    replica = await replicas()
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as ws:
        await recv_json(ws)
        (viewer,) = replica.service.hub._streams[sid]
        socket = viewer.socket
        assert isinstance(socket, AsgiViewerSocket)
        assert isinstance(socket._wire, LeanWebSocketProtocol)  # the service's fast path
        yield Watching(replica, sid, ws, socket, socket._wire)


def both_ways(socket: AsgiViewerSocket, text: str) -> tuple[SendResult, SendResult]:
    """uvicorn's ``send`` stepped by ``send_now``, then the frame written directly."""
    assert socket._wire is not None
    return send_now(socket.send_text(text)), socket._wire.send_frame_now(text_frame(text))


async def receive(w: Watching, count: int) -> list[Any]:
    return [await asyncio.wait_for(w.ws.recv(), 5) for _ in range(count)]


async def test_the_service_writes_broadcast_frames_straight_to_the_connection(
    watching: Watching,
) -> None:
    """The service's viewers get the fast path, and a frame written by it arrives as the
    text uvicorn's ``send`` would have sent."""
    assert watching.replica.service.hub.broadcast(watching.sid, '{"n":"é"}') == 1
    assert await receive(watching, 1) == ['{"n":"é"}']
    assert both_ways(watching.socket, "ab") == (SendResult.SENT, SendResult.SENT)
    assert await receive(watching, 2) == ["ab", "ab"]


async def test_a_paused_connection_is_blocked_both_ways(watching: Watching) -> None:
    """Writing paused (the peer does not read): uvicorn would wait, so both are BLOCKED,
    and neither writes anything."""
    watching.wire.pause_writing()
    assert both_ways(watching.socket, "x") == (SendResult.BLOCKED, SendResult.BLOCKED)
    watching.wire.resume_writing()
    assert both_ways(watching.socket, "y") == (SendResult.SENT, SendResult.SENT)
    assert await receive(watching, 2) == ["y", "y"]


async def test_after_our_close_both_refuse_the_message(watching: Watching) -> None:
    """Once the server sent its close frame uvicorn's send raises (CLOSED) and writes
    nothing; the frame path does the same (the client sees only the close)."""
    assert send_now(watching.socket.close(1000, "bye")) is SendResult.SENT
    assert both_ways(watching.socket, "late") == (SendResult.CLOSED, SendResult.CLOSED)
    with pytest.raises(ConnectionClosedOK):
        await receive(watching, 1)
    assert watching.ws.close_code == 1000


async def test_a_gone_client_is_closed_both_ways(watching: Watching, wait: Wait) -> None:
    """A client that closed (its close frame received, the connection lost): CLOSED."""
    await watching.ws.close()
    await wait(lambda: watching.wire.disconnected, what="connection lost")
    assert both_ways(watching.socket, "late") == (SendResult.CLOSED, SendResult.CLOSED)


async def test_a_client_closing_is_closed_both_ways(watching: Watching) -> None:
    """The client's close frame arrived (websockets' state is CLOSING) before the
    connection is lost: uvicorn's send raises, so both are CLOSED."""
    # Hold the server's reads so the test sees the state between the close frame's
    # arrival and the connection's end: feed the close frame by hand.
    close = Frame(Opcode.CLOSE, b"\x03\xe8").serialize(mask=True, extensions=[])
    watching.wire.data_received(close)
    assert watching.wire.conn.state.name in {"CLOSING", "CLOSED"}
    assert both_ways(watching.socket, "late") == (SendResult.CLOSED, SendResult.CLOSED)
