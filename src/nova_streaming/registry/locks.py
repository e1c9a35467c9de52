"""Per-stream asyncio locks: one registry step at a time per stream on this replica.

A start, an end and a grace expiry of the same stream each await the store several
times; interleaved, one step can undo another's bookkeeping (an end popping the record
a fresh start just stored). Holding the stream's lock across the whole step serialises
them without slowing other streams.

Example::

    >>> import asyncio
    >>> locks = StreamLocks()
    >>> async def step() -> int:
    ...     async with locks.hold("s"):
    ...         return len(locks)
    >>> asyncio.run(step()), len(locks)
    (1, 0)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["StreamLocks"]


class StreamLocks:
    """Locks created on demand and dropped when no step holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, stream_id: str) -> AsyncIterator[None]:
        """Hold ``stream_id``'s lock for the ``async with`` body."""
        lock, users = self._locks.get(stream_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[stream_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[stream_id]
            if users <= 1:
                del self._locks[stream_id]
            else:
                self._locks[stream_id] = (lock, users - 1)
