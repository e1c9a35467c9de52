"""A broadcast's pre-encoded frame: the same bytes websockets would send, and, written
straight to a viewer's connection, the same outcome as uvicorn's own ``send`` in every
state a viewer can be in (real uvicorn server, real ``websockets`` clients)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Frame, Opcode

from nova_streaming.viewers.endpoint import AsgiViewerSocket
from nova_streaming.viewers.hub import SendResult, Viewer, send_now, text_frame
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


def only_viewer(replica: Any, sid: str) -> Viewer:
    (viewer,) = replica.service.hub._streams[sid]
    assert isinstance(viewer, Viewer)
    return viewer


def both_ways(socket: AsgiViewerSocket, text: str) -> tuple[SendResult, SendResult]:
    """uvicorn's ``send`` stepped by ``send_now``, then the frame written directly."""
    assert socket._wire is not None
    return send_now(socket.send_text(text)), socket._wire.send_frame_now(text_frame(text))


async def test_the_service_writes_broadcast_frames_straight_to_the_connection(
    replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """The service's viewers get the fast path, and a frame written by it arrives as the
    text uvicorn's ``send`` would have sent."""
    replica = await replicas()
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as ws:
        await recv_json(ws)
        socket = only_viewer(replica, sid).socket
        assert isinstance(socket, AsgiViewerSocket)
        assert isinstance(socket._wire, LeanWebSocketProtocol)
        assert replica.service.hub.broadcast(sid, '{"n":"é"}') == 1
        assert await asyncio.wait_for(ws.recv(), 5) == '{"n":"é"}'
        assert both_ways(socket, "ab") == (SendResult.SENT, SendResult.SENT)
        assert [await asyncio.wait_for(ws.recv(), 5) for _ in range(2)] == ["ab", "ab"]


async def test_a_paused_connection_is_blocked_both_ways(
    replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """Writing paused (the peer does not read): uvicorn would wait, so both are BLOCKED,
    and neither writes anything."""
    replica = await replicas()
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as ws:
        await recv_json(ws)
        socket = only_viewer(replica, sid).socket
        assert isinstance(socket, AsgiViewerSocket) and socket._wire is not None
        socket._wire.pause_writing()
        assert both_ways(socket, "x") == (SendResult.BLOCKED, SendResult.BLOCKED)
        socket._wire.resume_writing()
        assert both_ways(socket, "y") == (SendResult.SENT, SendResult.SENT)
        assert [await asyncio.wait_for(ws.recv(), 5) for _ in range(2)] == ["y", "y"]


async def test_after_our_close_both_refuse_the_message(
    replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """Once the server sent its close frame uvicorn's send raises (CLOSED) and writes
    nothing; the frame path does the same (the client sees only the close)."""
    replica = await replicas()
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as ws:
        await recv_json(ws)
        socket = only_viewer(replica, sid).socket
        assert isinstance(socket, AsgiViewerSocket)
        assert send_now(socket.close(1000, "bye")) is SendResult.SENT
        assert both_ways(socket, "late") == (SendResult.CLOSED, SendResult.CLOSED)
        with pytest.raises(ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1000


async def test_a_gone_client_is_closed_both_ways(
    replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """A client that closed (its close frame received, the connection lost): CLOSED."""
    replica = await replicas()
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as ws:
        await recv_json(ws)
        socket = only_viewer(replica, sid).socket
        assert isinstance(socket, AsgiViewerSocket) and socket._wire is not None
    wire = socket._wire
    await wait(lambda: wire.disconnected, what="connection lost")
    assert both_ways(socket, "late") == (SendResult.CLOSED, SendResult.CLOSED)


async def test_a_client_closing_is_closed_both_ways(
    replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """The client's close frame arrived (websockets' state is CLOSING) before the
    connection is lost: uvicorn's send raises, so both are CLOSED."""
    replica = await replicas()
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as ws:
        await recv_json(ws)
        socket = only_viewer(replica, sid).socket
        assert isinstance(socket, AsgiViewerSocket) and socket._wire is not None
        wire = socket._wire
        # Hold the server's reads so the test sees the state between the close
        # frame's arrival and the connection's end: feed the close frame by hand.
        close = Frame(Opcode.CLOSE, b"\x03\xe8").serialize(mask=True, extensions=[])
        wire.data_received(close)
        assert wire.conn.state.name in {"CLOSING", "CLOSED"}
        assert both_ways(socket, "late") == (SendResult.CLOSED, SendResult.CLOSED)
