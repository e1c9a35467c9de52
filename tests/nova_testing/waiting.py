"""Wait on conditions with a deadline instead of fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_for(
    condition: Callable[[], Any],
    *,
    within: float = 20.0,
    what: str = "condition",
    interval: float = 0.02,
) -> Any:
    """Poll ``condition`` (sync, or returning an awaitable) until its result is truthy and
    return that result; fail the test after ``within`` seconds, naming ``what`` and the
    last result.

    Example::

        await wait_for(lambda: len(sink.stops) == 1, within=10, what="publish stop")
    """
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {result!r})")
        await asyncio.sleep(interval)
