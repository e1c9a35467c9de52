"""What a viewer connection leaves to CPython's garbage collector (docs/service.md,
"Garbage collection and event-loop stalls"): every full collection walks every tracked
object, so a held viewer must track few, and a closed one must be freed by reference
counting, never left for the collector. Real ``websockets`` clients against a replica
served by uvicorn in this process, with the service's own ``uvicorn_config``."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from nova_streaming.viewers.protocol import LeanWebSocketProtocol
from nova_testing.ws_messages import recv_json

Replicas = Callable[..., Awaitable[Any]]
Wait = Callable[..., Awaitable[Any]]


@pytest.fixture
def collector_off() -> Iterator[None]:
    """No automatic collection while the test looks at what only the collector frees."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def server_protocols(replica: Any) -> list[Any]:
    return list(replica.server.server.server_state.connections)


async def test_a_closed_viewer_is_freed_without_the_collector(
    replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait, collector_off: None
) -> None:
    """Before the fix, websockets' parser generator and its protocol referenced each
    other: every closed connection waited for a full collection to be freed."""
    replica = await replicas(presence="memory")
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as ws:
        await recv_json(ws)
        (protocol,) = server_protocols(replica)
        parser_side = weakref.ref(protocol.conn)
        del protocol
    await wait(lambda: replica.service.hub.total == 0, what="viewer uncounted")
    await wait(lambda: not server_protocols(replica), what="connection lost")
    assert parser_side() is None, "the closed connection waits for the collector"


async def test_an_idle_viewer_holds_no_handshake_objects(
    replicas: Replicas, new_stream_id: Callable[[], str]
) -> None:
    """Before the fix, every held connection kept the handshake's request and response
    (one list per header, two Headers, two dicts) and the scope's header list: about
    18 of the 68 tracked objects of an idle viewer."""
    replica = await replicas(presence="memory")
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid)) as ws:
        await recv_json(ws)
        (protocol,) = server_protocols(replica)
        assert isinstance(protocol, LeanWebSocketProtocol)
        assert not hasattr(protocol, "response")
        assert not hasattr(protocol, "request")
        for key in ("headers", "subprotocols", "extensions", "state"):
            assert key not in protocol.scope
        # The viewer is still served: a broadcast reaches it.
        assert replica.service.hub.broadcast(sid, '{"type":"viewers"}') == 1
        assert (await recv_json(ws))["type"] == "viewers"


async def test_keepalive_runs_on_the_shared_wheel(
    replicas: Replicas, new_stream_id: Callable[[], str], wait: Wait
) -> None:
    """Before the fix, each connection armed a loop timer of its own (a TimerHandle,
    its bound callback and context, uvloop's timer) at every ping and pong. Now the
    pings go out and their pongs come back with no timer per connection."""
    replica = await replicas(presence="memory", ws_ping_interval=0.2, ws_ping_timeout=5.0)
    sid = new_stream_id()
    await replica.service.registry.start(sid, "test-1", "live")
    async with connect(replica.ws(sid), ping_interval=None) as ws:
        await recv_json(ws)
        (protocol,) = server_protocols(replica)
        # The client's library answers every ping: a round trip is measured, twice.
        await wait(lambda: protocol.last_ping_rtt > 0, what="a ping answered")
        protocol.last_ping_rtt = 0.0
        await wait(lambda: protocol.last_ping_rtt > 0, what="the next ping answered")
        assert protocol.ping_timer is None and protocol.pong_timer is None
        assert ws.close_code is None
    await wait(lambda: not server_protocols(replica), what="connection lost")
