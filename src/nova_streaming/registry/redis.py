"""The Redis registry store: Lua scripts over the presence engine's connection.

Keys (prefix ``NOVA_REDIS_PREFIX``):

- ``{p}:stream:{id}``: hash ``region, stream_type, started_at, owner, state,
  grace_until, orphaned_at``; ``{p}:streams``: set of active IDs.
- ``{p}:auth:{id}``: the stream type ``on_publish`` authorized, with a TTL.
- ``{p}:ended:{id}``: a tombstone (10 min) telling "ended" from "lost": after a Redis
  restart without persistence owners restore their streams, and other replicas do not
  mistake the lost records for ends.
- Owner liveness is the owner's presence heartbeat ``{p}:replica:{id}``.

Every multi-step change is one Lua script, so two replicas racing to end a stream
cannot both win. This module does not import ``redis``: it goes through
:class:`~nova_streaming.presence.redis.RedisPresence`.

Example::

    store = RedisStore(engine)          # engine: a started RedisPresence
    record, previous_owner = await store.claim(sid, "eu", "live", "replica-a", time.time())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nova_streaming.registry.model import ACTIVE, StreamRecord

if TYPE_CHECKING:
    from nova_streaming.presence.redis import RedisPresence

__all__ = ["RedisStore"]

_CLAIM = """
local prev = redis.call('HGET', KEYS[1], 'owner')
if not prev then
  redis.call('HSET', KEYS[1], 'region', ARGV[2], 'stream_type', ARGV[3],
             'started_at', ARGV[5], 'owner', ARGV[4], 'state', 'active')
  redis.call('SADD', KEYS[2], ARGV[1])
  prev = ''
else
  redis.call('HSET', KEYS[1], 'owner', ARGV[4], 'region', ARGV[2], 'state', 'active')
  redis.call('HDEL', KEYS[1], 'grace_until', 'orphaned_at')
end
return {prev, redis.call('HGETALL', KEYS[1])}
"""

_REMOVE = """
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return {}
end
if ARGV[2] ~= '' then
  if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2]
     or redis.call('HGET', KEYS[1], 'state') ~= 'interrupted' then
    return {}
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
return flat
"""

_INTERRUPT = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'interrupted', 'grace_until', ARGV[2])
return 1
"""

_GET = "return redis.call('HGETALL', KEYS[1])"

_LIST = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local flat = redis.call('HGETALL', ARGV[1] .. id)
  if #flat == 0 then
    redis.call('SREM', KEYS[1], id)
  else
    out[#out + 1] = id
    out[#out + 1] = flat
  end
end
return out
"""

_EXISTING = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('EXISTS', key)
end
return out
"""

_REAP = """
local out = {}
local now = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. id
  local owner = redis.call('HGET', key, 'owner')
  if not owner then
    redis.call('SREM', KEYS[1], id)
  elseif redis.call('EXISTS', ARGV[2] .. owner) == 0 then
    local since = redis.call('HGET', key, 'orphaned_at')
    if not since then
      redis.call('HSET', key, 'orphaned_at', ARGV[3])
    elseif now - tonumber(since) >= grace then
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGETALL', key)
      redis.call('DEL', key)
      redis.call('SREM', KEYS[1], id)
      redis.call('SET', ARGV[5] .. id, '1', 'PX', ARGV[6])
    end
  else
    redis.call('HDEL', key, 'orphaned_at')
  end
end
return out
"""

# 1 active, 2 ended (tombstone), 0 unknown (e.g. Redis lost its data).
_STATUS = """
local out = {}
for i, id in ipairs(ARGV) do
  if i > 2 then
    if redis.call('EXISTS', ARGV[1] .. id) == 1 then
      out[#out + 1] = 1
    elseif redis.call('EXISTS', ARGV[2] .. id) == 1 then
      out[#out + 1] = 2
    else
      out[#out + 1] = 0
    end
  end
end
return out
"""

_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'region', ARGV[2], 'stream_type', ARGV[3],
           'started_at', ARGV[4], 'owner', ARGV[5], 'state', ARGV[6])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'grace_until', ARGV[7])
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

_AUTHORIZE = "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1"
_AUTHORIZATION = "return redis.call('GET', KEYS[1])"
_ALIVE = "return redis.call('EXISTS', KEYS[1])"


def _record(stream_id: str, flat: list[Any]) -> StreamRecord:
    fields = {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
    grace = fields.get("grace_until")
    return StreamRecord(
        stream_id=stream_id,
        region=fields.get("region", ""),
        stream_type=fields.get("stream_type", "live"),
        started_at=float(fields.get("started_at", "0")),
        owner=fields.get("owner", ""),
        state=fields.get("state", ACTIVE),
        grace_until=None if grace is None else float(grace),
    )


class RedisStore:
    """:class:`~nova_streaming.registry.store.RegistryStore` on Redis."""

    def __init__(self, engine: RedisPresence, *, tombstone_ttl: float = 600.0) -> None:
        self._engine = engine
        self._set_key = engine.key("streams")
        self._tombstone_ms = max(1, int(tombstone_ttl * 1000))

    def _ended_key(self, stream_id: str) -> str:
        return self._engine.key("ended", stream_id)

    def _stream_key(self, stream_id: str) -> str:
        return self._engine.key("stream", stream_id)

    async def claim(
        self, stream_id: str, region: str, stream_type: str, owner: str, now: float
    ) -> tuple[StreamRecord, str | None]:
        """Create or take over atomically, keeping start time and type."""
        prev, flat = await self._engine.script(
            _CLAIM,
            [self._stream_key(stream_id), self._set_key],
            [stream_id, region, stream_type, owner, repr(now)],
        )
        return _record(stream_id, flat), (str(prev) or None)

    async def get(self, stream_id: str) -> StreamRecord | None:
        """The record, if active."""
        flat = await self._engine.script(_GET, [self._stream_key(stream_id)], [])
        return _record(stream_id, flat) if flat else None

    async def list_active(self) -> list[StreamRecord]:
        """All active records (stale set members are cleaned on the way)."""
        out = await self._engine.script(_LIST, [self._set_key], [self._engine.key("stream", "")])
        return [_record(str(out[i]), out[i + 1]) for i in range(0, len(out) - 1, 2)]

    async def existing(self, stream_ids: Iterable[str]) -> set[str]:
        """The active ones among ``stream_ids``."""
        ids = list(stream_ids)
        if not ids:
            return set()
        flags = await self._engine.script(_EXISTING, [self._stream_key(s) for s in ids], [])
        return {s for s, flag in zip(ids, flags, strict=True) if int(flag)}

    async def remove(
        self, stream_id: str, *, if_interrupted_by: str | None = None
    ) -> StreamRecord | None:
        """Delete atomically; the one caller that deleted gets the record."""
        flat = await self._engine.script(
            _REMOVE,
            [self._stream_key(stream_id), self._set_key, self._ended_key(stream_id)],
            [stream_id, if_interrupted_by or "", self._tombstone_ms],
        )
        return _record(stream_id, flat) if flat else None

    async def status(self, stream_ids: Iterable[str]) -> dict[str, str]:
        """``active``, ``ended`` (recently) or ``unknown`` per stream."""
        ids = list(stream_ids)
        if not ids:
            return {}
        codes = await self._engine.script(
            _STATUS, [], [self._engine.key("stream", ""), self._engine.key("ended", ""), *ids]
        )
        names = {1: "active", 2: "ended", 0: "unknown"}
        return {s: names[int(c)] for s, c in zip(ids, codes, strict=True)}

    async def restore(self, record: StreamRecord) -> bool:
        """Re-create a record Redis lost (not one that ended); True if written."""
        sid = record.stream_id
        done = await self._engine.script(
            _RESTORE,
            [self._stream_key(sid), self._set_key, self._ended_key(sid)],
            [
                sid,
                record.region,
                record.stream_type,
                repr(record.started_at),
                record.owner,
                record.state,
                "" if record.grace_until is None else repr(record.grace_until),
            ],
        )
        return bool(int(done))

    async def interrupt(self, stream_id: str, owner: str, grace_until: float) -> bool:
        """Mark interrupted if ``owner`` holds it."""
        done = await self._engine.script(
            _INTERRUPT, [self._stream_key(stream_id)], [owner, repr(grace_until)]
        )
        return bool(int(done))

    async def authorize(self, stream_id: str, stream_type: str, ttl: float) -> None:
        """SET with a TTL."""
        await self._engine.script(
            _AUTHORIZE,
            [self._engine.key("auth", stream_id)],
            [stream_type, max(1, int(ttl * 1000))],
        )

    async def authorization(self, stream_id: str) -> str | None:
        """The authorized type, if not expired."""
        value = await self._engine.script(_AUTHORIZATION, [self._engine.key("auth", stream_id)], [])
        return None if value is None else str(value)

    async def owner_alive(self, owner: str) -> bool:
        """Whether ``owner``'s heartbeat key exists."""
        return bool(int(await self._engine.script(_ALIVE, [self._engine.heartbeat_key(owner)], [])))

    async def reap(self, now: float, grace: float) -> list[StreamRecord]:
        """Streams orphaned for ``grace`` seconds, each returned to one caller only."""
        out = await self._engine.script(
            _REAP,
            [self._set_key],
            [
                self._engine.key("stream", ""),
                self._engine.heartbeat_key(""),
                repr(now),
                repr(grace),
                self._engine.key("ended", ""),
                self._tombstone_ms,
            ],
        )
        return [_record(str(out[i]), out[i + 1]) for i in range(0, len(out) - 1, 2)]

    async def publish(self, message: str) -> None:
        """Publish on the events channel."""
        await self._engine.publish(message)

    def add_event_handler(self, handler: Callable[[str], None]) -> None:
        """Receive messages from the events channel."""
        self._engine.add_event_handler(handler)
