"""The stream registry: the seam the ingest calls, shared by every replica.

Example::

    from nova_streaming.registry import StreamRegistry, create_store
    registry = StreamRegistry(settings, metrics, presence, create_store(settings, presence))
    await registry.open()
    await registry.start("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b", "local", "live")
"""

from __future__ import annotations

from nova_streaming.presence import PresenceEngine, PresenceUnavailable
from nova_streaming.registry.core import EndListener, StreamRegistry
from nova_streaming.registry.memory import MemoryStore
from nova_streaming.registry.model import (
    ACTIVE,
    INTERRUPTED,
    InvalidStreamId,
    StreamEnded,
    StreamRecord,
    normalize_stream_id,
)
from nova_streaming.registry.store import RegistryStore
from nova_streaming.settings import Settings

__all__ = [
    "ACTIVE",
    "INTERRUPTED",
    "EndListener",
    "InvalidStreamId",
    "MemoryStore",
    "RegistryStore",
    "RegistryUnavailable",
    "StreamEnded",
    "StreamRecord",
    "StreamRegistry",
    "create_store",
    "normalize_stream_id",
]

RegistryUnavailable = PresenceUnavailable
"""Raised by registry calls while the shared backend (Redis) is unreachable."""


def create_store(settings: Settings, presence: PresenceEngine) -> RegistryStore:
    """The store matching the presence engine: Redis shares its connection."""
    if settings.presence == "redis":
        from nova_streaming.presence.redis import RedisPresence
        from nova_streaming.registry.redis import RedisStore

        if not isinstance(presence, RedisPresence):
            raise ValueError("registry: the redis store needs the redis presence engine")
        return RedisStore(presence)
    return MemoryStore(settings.replica_id)
