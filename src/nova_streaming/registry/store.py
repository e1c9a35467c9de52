"""The storage seam under the registry: one Protocol, a memory and a Redis store."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from nova_streaming.registry.model import StreamRecord, StreamStatus

__all__ = ["RegistryStore"]


class RegistryStore(Protocol):
    """Atomic operations on the set of active streams, shared by all replicas.

    Every method may raise :class:`~nova_streaming.presence.PresenceUnavailable` when
    the shared backend is unreachable.
    """

    @property
    def instance_id(self) -> str:
        """The process whose records this store writes (``StreamRecord.instance``)."""
        ...

    async def claim(
        self, stream_id: str, region: str, stream_type: str, owner: str, now: float
    ) -> tuple[StreamRecord, str | None]:
        """Create the stream owned by ``owner``, or take it over keeping its start time
        and type. Returns the stored record and the previous owner (None if new)."""
        ...

    async def get(self, stream_id: str) -> StreamRecord | None:
        """The record of an active stream."""
        ...

    async def list_active(self) -> list[StreamRecord]:
        """Every active stream."""
        ...

    async def existing(self, stream_ids: Iterable[str]) -> set[str]:
        """Which of ``stream_ids`` are still active."""
        ...

    async def status(self, stream_ids: Iterable[str]) -> dict[str, StreamStatus]:
        """Per stream: ``active`` with its record, ``ended`` (recently ended here or
        elsewhere) or ``unknown`` (no trace: the backend lost its data, or ended long
        ago). The maintenance pass reconciles ownership from these records."""
        ...

    async def restore(self, record: StreamRecord) -> bool:
        """Re-create ``record`` unless the stream is active or recently ended."""
        ...

    async def remove(
        self, stream_id: str, *, if_interrupted_by: str | None = None
    ) -> StreamRecord | None:
        """Atomically delete the stream; only one caller cluster-wide gets the record.

        With ``if_interrupted_by``, delete only while that owner holds it interrupted.
        """
        ...

    async def interrupt(
        self,
        stream_id: str,
        owner: str,
        grace_until: float,
        reason: str = "interrupted",
        *,
        interrupted_at: float | None = None,
    ) -> bool:
        """Mark ``owner``'s stream as waiting for a re-push until ``grace_until`` (ended
        with ``reason`` if none comes), its media stopped at ``interrupted_at`` (kept if
        already interrupted); False if not its owner."""
        ...

    async def reassert(self, record: StreamRecord, *, interrupted: bool) -> bool:
        """This live process was taken for dead (``record.orphaned``): keep the stream,
        active again unless ``interrupted``. False if it is no longer ours."""
        ...

    async def authorize(self, stream_id: str, stream_type: str, ttl: float) -> None:
        """Remember for ``ttl`` seconds that ``stream_id`` may be published as ``stream_type``."""
        ...

    async def authorization(self, stream_id: str) -> str | None:
        """The stream type :meth:`authorize` recorded, if not expired."""
        ...

    async def owner_alive(self, owner: str) -> bool:
        """Whether the owning process ``owner`` (``record.instance``) still has a
        heartbeat."""
        ...

    async def expired(self, now: float) -> list[str]:
        """Interrupted streams whose grace deadline has passed: candidates for
        :meth:`sweep`. Work is proportional to such streams, not to all streams."""
        ...

    async def sweep(self, stream_id: str, now: float) -> tuple[StreamRecord, str | None] | None:
        """Delete ``stream_id`` if it is interrupted and its grace ran out (an orphaned
        one: its owner died); the (record, end reason) goes to exactly one caller
        cluster-wide."""
        ...

    async def publish(self, message: str) -> None:
        """Send ``message`` to every replica's event handlers (this one's included)."""
        ...

    def add_event_handler(self, handler: Callable[[str], None]) -> None:
        """Receive published messages."""
        ...
