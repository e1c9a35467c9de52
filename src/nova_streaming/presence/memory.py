"""The in-process presence engine: one replica, so the global count is the local one.

Example::

    >>> engine = MemoryPresence()
    >>> engine.set_local("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b", 2)
    >>> engine.global_count("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b")
    2
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MemoryPresence"]


class MemoryPresence:
    """Presence for a single process: counts live in a dict, nothing can drift."""

    name = "memory"

    def __init__(self) -> None:
        self._local: dict[str, int] = {}

    @property
    def ready(self) -> bool:
        """Always ready: there is no backend to lose."""
        return True

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Forget every count."""
        self._local.clear()

    def set_local(self, stream_id: str, count: int) -> None:
        """Record the absolute local count; 0 removes the entry."""
        if count > 0:
            self._local[stream_id] = count
        else:
            self._local.pop(stream_id, None)

    def local_count(self, stream_id: str) -> int:
        """This process's viewers of ``stream_id``."""
        return self._local.get(stream_id, 0)

    def global_count(self, stream_id: str) -> int:
        """Same as the local count: this process is the whole cluster."""
        return self._local.get(stream_id, 0)

    def watch(self, stream_id: str) -> None:
        """Nothing to keep fresh."""

    def unwatch(self, stream_id: str) -> None:
        """Nothing to keep fresh."""

    async def refresh(self, stream_ids: Iterable[str]) -> dict[str, int]:
        """The local counts of ``stream_ids``."""
        return {s: self._local.get(s, 0) for s in stream_ids}

    async def drop(self, stream_id: str, *, shared: bool) -> None:
        """Forget ``stream_id``."""
        self._local.pop(stream_id, None)
