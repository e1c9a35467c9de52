"""The in-process registry store: one replica, so every operation is trivially atomic.

Example::

    >>> store = MemoryStore("replica-a")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from nova_streaming.registry.model import ACTIVE, INTERRUPTED, StreamRecord, StreamStatus

__all__ = ["MemoryStore"]


class MemoryStore:
    """Active streams in a dict; events delivered on the running loop."""

    def __init__(self, replica_id: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._replica = replica_id
        self._clock = clock
        self._streams: dict[str, StreamRecord] = {}
        self._auth: dict[str, tuple[str, float]] = {}
        self._handlers: list[Callable[[str], None]] = []

    @property
    def instance_id(self) -> str:
        """One process: the instance is the replica."""
        return self._replica

    async def claim(
        self, stream_id: str, region: str, stream_type: str, owner: str, now: float
    ) -> tuple[StreamRecord, str | None]:
        """Create or take over, keeping start time and type."""
        old = self._streams.get(stream_id)
        if old is None:
            rec = StreamRecord(stream_id, region, stream_type, now, owner, instance=owner)
            self._streams[stream_id] = rec
            return rec, None
        rec = replace(
            old,
            owner=owner,
            instance=owner,
            region=region,
            state=ACTIVE,
            grace_until=None,
            interrupted_at=None,
        )
        self._streams[stream_id] = rec
        return rec, old.owner

    async def get(self, stream_id: str) -> StreamRecord | None:
        """The record, if active."""
        return self._streams.get(stream_id)

    async def list_active(self) -> list[StreamRecord]:
        """All records."""
        return list(self._streams.values())

    async def existing(self, stream_ids: Iterable[str]) -> set[str]:
        """The active ones among ``stream_ids``."""
        return {s for s in stream_ids if s in self._streams}

    async def status(self, stream_ids: Iterable[str]) -> dict[str, StreamStatus]:
        """Active, or ended: this process never loses its records."""
        out: dict[str, StreamStatus] = {}
        for s in stream_ids:
            rec = self._streams.get(s)
            out[s] = StreamStatus("ended") if rec is None else StreamStatus("active", rec)
        return out

    async def restore(self, record: StreamRecord) -> bool:
        """Nothing is ever lost here."""
        return False

    async def remove(
        self, stream_id: str, *, if_interrupted_by: str | None = None
    ) -> StreamRecord | None:
        """Delete and return the record (conditionally)."""
        rec = self._streams.get(stream_id)
        if rec is None:
            return None
        if if_interrupted_by is not None and (
            rec.state != INTERRUPTED or rec.owner != if_interrupted_by
        ):
            return None
        del self._streams[stream_id]
        return rec

    async def interrupt(
        self,
        stream_id: str,
        owner: str,
        grace_until: float,
        reason: str = "interrupted",
        *,
        interrupted_at: float | None = None,
    ) -> bool:
        """Mark interrupted if ``owner`` holds it (the first interruption time is kept)."""
        rec = self._streams.get(stream_id)
        if rec is None or rec.owner != owner:
            return False
        since = rec.interrupted_at if rec.state == INTERRUPTED else None
        self._streams[stream_id] = replace(
            rec,
            state=INTERRUPTED,
            grace_until=grace_until,
            interrupted_at=since if since is not None else interrupted_at,
        )
        return True

    async def reassert(self, record: StreamRecord, *, interrupted: bool) -> bool:
        """Nothing is ever taken for dead here."""
        return False

    async def authorize(self, stream_id: str, stream_type: str, ttl: float) -> None:
        """Remember the authorization until ``ttl`` seconds from now."""
        now = self._clock()
        # Drop expired entries so rejected-then-abandoned publishes cannot pile up.
        for sid in [s for s, (_, until) in self._auth.items() if until <= now]:
            del self._auth[sid]
        self._auth[stream_id] = (stream_type, now + ttl)

    async def authorization(self, stream_id: str) -> str | None:
        """The authorized type, if not expired."""
        entry = self._auth.get(stream_id)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    async def owner_alive(self, owner: str) -> bool:
        """Only this process exists."""
        return owner == self._replica

    async def expired(self, now: float) -> list[str]:
        """Nothing to sweep: this live process runs the grace timer of each stream."""
        return []

    async def sweep(self, stream_id: str, now: float) -> tuple[StreamRecord, str | None] | None:
        """Nothing to sweep (see :meth:`expired`)."""
        return None

    async def publish(self, message: str) -> None:
        """Deliver to this process's handlers on the next loop iteration."""
        loop = asyncio.get_running_loop()
        for handler in self._handlers:
            loop.call_soon(handler, message)

    def add_event_handler(self, handler: Callable[[str], None]) -> None:
        """Receive published messages."""
        self._handlers.append(handler)
