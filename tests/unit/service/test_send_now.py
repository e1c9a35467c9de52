"""send_now: a broadcast send completes at once, or the viewer is reported blocked."""

from __future__ import annotations

import asyncio

from nova_streaming.viewers.hub import SendResult, send_now


async def test_send_that_needs_no_wait_completes() -> None:
    """A send whose transport takes the frame now is SENT, with its effect done."""
    sent: list[str] = []
    writable = asyncio.Event()
    writable.set()

    async def send(text: str) -> None:
        await writable.wait()
        sent.append(text)

    assert send_now(send("a")) is SendResult.SENT
    assert sent == ["a"]


async def test_send_that_would_wait_is_blocked_and_abandoned() -> None:
    """A send that would wait for a paused transport is BLOCKED and leaves no waiter."""
    sent: list[str] = []
    writable = asyncio.Event()

    async def send(text: str) -> None:
        await writable.wait()
        sent.append(text)

    assert send_now(send("a")) is SendResult.BLOCKED
    writable.set()
    await asyncio.sleep(0)
    assert sent == []
    assert not writable._waiters  # type: ignore[attr-defined]


async def test_send_on_a_closed_connection_is_closed() -> None:
    """A send that raises (the connection is gone) is CLOSED."""

    async def send() -> None:
        raise RuntimeError("closed")

    assert send_now(send()) is SendResult.CLOSED
