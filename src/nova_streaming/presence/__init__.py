"""Presence: how many viewers each stream has, on this replica and across all of them.

Two engines sit behind :class:`PresenceEngine`: ``memory`` (one process) and ``redis``
(many replicas). The hub tells the engine its *absolute* local count per stream;
the engine answers the global count from memory, without I/O, so reading it is O(1)
on every path that needs it (hello messages, coalesced updates, owner peaks).

Example::

    >>> from nova_streaming.presence.memory import MemoryPresence
    >>> engine = MemoryPresence()
    >>> engine.set_local("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b", 3)
    >>> engine.global_count("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b")
    3
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from nova_streaming.service_metrics import ServiceMetrics
    from nova_streaming.settings import Settings

__all__ = ["PresenceEngine", "PresenceUnavailable", "create_presence"]


class PresenceUnavailable(RuntimeError):
    """The shared backend (Redis) could not be reached; local state is still served."""


@runtime_checkable
class PresenceEngine(Protocol):
    """Per-stream viewer counts, local and global. Implementations: memory, redis."""

    name: str

    @property
    def ready(self) -> bool:
        """False while the shared backend is unreachable (drives ``/readyz``)."""
        ...

    async def start(self) -> None:
        """Connect and start background syncing."""
        ...

    async def stop(self) -> None:
        """Withdraw this replica's counts (graceful) and release connections."""
        ...

    def set_local(self, stream_id: str, count: int) -> None:
        """Record this replica's absolute viewer count of ``stream_id`` (no I/O)."""
        ...

    def local_count(self, stream_id: str) -> int:
        """This replica's viewers of ``stream_id``."""
        ...

    def global_count(self, stream_id: str) -> int:
        """Best known viewers of ``stream_id`` on all live replicas (no I/O)."""
        ...

    def watch(self, stream_id: str) -> None:
        """Keep the global count of ``stream_id`` fresh even with no local viewers."""
        ...

    def unwatch(self, stream_id: str) -> None:
        """Undo :meth:`watch`."""
        ...

    async def refresh(self, stream_ids: Iterable[str]) -> dict[str, int]:
        """Fresh global counts read from the backend; raises :class:`PresenceUnavailable`."""
        ...

    async def drop(self, stream_id: str, *, shared: bool) -> None:
        """Forget an ended stream; ``shared`` also deletes the cluster-wide state."""
        ...


def create_presence(settings: Settings, service_metrics: ServiceMetrics) -> PresenceEngine:
    """The engine ``settings.presence`` selects; Redis is imported only when chosen."""
    if settings.presence == "redis":
        from nova_streaming.presence.redis import RedisPresence

        return RedisPresence(settings, service_metrics)
    from nova_streaming.presence.memory import MemoryPresence

    return MemoryPresence()
