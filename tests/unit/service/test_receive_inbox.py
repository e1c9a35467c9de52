"""The per-connection receive queue that replaces ``asyncio.Queue`` for viewers."""

from __future__ import annotations

import asyncio
import gc

import pytest

from nova_streaming.viewers.protocol import ReceiveInbox


async def test_items_come_out_in_order_whether_queued_or_awaited() -> None:
    inbox = ReceiveInbox()
    assert inbox.empty() and inbox.qsize() == 0
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert not inbox.empty() and inbox.qsize() == 2
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait(3)
    assert await waiting == 3
    assert inbox.empty()


async def test_an_item_survives_a_receiver_cancelled_after_it_was_woken() -> None:
    """As with asyncio.Queue: the receive that replaces the cancelled one gets it."""
    inbox = ReceiveInbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("disconnect")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await inbox.get() == "disconnect"


async def test_one_receiver_at_a_time() -> None:
    inbox = ReceiveInbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one receiver"):
        await inbox.get()
    inbox.put_nowait("x")
    assert await first == "x"


async def test_an_idle_inbox_holds_no_container() -> None:
    """asyncio.Queue holds 5 tracked containers per connection for life; this none
    once what was queued is taken."""
    inbox = ReceiveInbox()
    inbox.put_nowait("x")
    assert await inbox.get() == "x"
    assert held(inbox) == []
    assert len(held(asyncio.Queue())) >= 4


def held(obj: object) -> list[object]:
    """The tracked objects ``obj`` refers to, its class aside."""
    return [r for r in gc.get_referents(obj) if gc.is_tracked(r) and r is not type(obj)]
