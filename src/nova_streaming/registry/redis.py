"""The Redis registry store: one-slot Lua scripts over the presence engine's connection.

Keys (``{p}`` is ``NOVA_REDIS_PREFIX``; a ``{...}`` part is the Redis Cluster hash tag):

- ``{p}:stream:{<id>}``: hash ``region, stream_type, started_at, owner, instance, state,
  grace_until, reason, orphaned, interrupted_at``. ``owner`` is the replica id,
  ``instance`` the owning process (``<replica id>#<hex>``), which fences everything a
  dead process left. ``interrupted_at``: when an interrupted stream's media stopped.
- ``{p}:ended:{<id>}``: a tombstone (10 min) telling "ended" from "lost": after a Redis
  restart without persistence owners restore their streams, and other replicas do not
  mistake the lost records for ends. ``{p}:auth:{<id>}``: what ``on_publish`` authorized.
- ``{{p}}:streams``: set of active ids (the listing); ``{{p}}:grace``: sorted set of
  interrupted streams by grace deadline; ``{p}:owned:{<instance>}``: an instance's
  streams. These indexes are written next to the one-slot scripts (never inside them)
  and are only hints: every decision is re-checked on the stream's own hash.

Every change of a stream is one script on that stream's slot, so two replicas racing to
end it cannot both win, and every script gets its keys as KEYS (Redis Cluster safe).
Periodic work is O(changes): the sweep reads only streams whose grace ran out, and a
dead instance's streams are found through its ``owned`` set, once.

Example::

    store = RedisStore(engine)          # engine: a started RedisPresence
    record, previous_owner = await store.claim(sid, "eu", "live", "replica-a", time.time())
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nova_streaming.registry.model import ACTIVE, StreamRecord, StreamStatus

if TYPE_CHECKING:
    from nova_streaming.presence.redis import RedisPresence

__all__ = ["REASON_OWNER_LOST", "RedisStore"]

REASON_OWNER_LOST = "owner_lost"
_SWEEP_BATCH = 100

_CLAIM = """
local prev = redis.call('HGET', KEYS[1], 'owner')
if not prev then
  redis.call('HSET', KEYS[1], 'region', ARGV[1], 'stream_type', ARGV[2], 'started_at', ARGV[5],
             'owner', ARGV[3], 'instance', ARGV[4], 'state', 'active')
  prev = ''
else
  redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'instance', ARGV[4], 'region', ARGV[1],
             'state', 'active')
  redis.call('HDEL', KEYS[1], 'grace_until', 'orphaned', 'reason', 'interrupted_at')
end
return {prev, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: stream, tombstone. ARGV: instance that must hold it interrupted ('' = any), ttl.
_REMOVE = """
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then
  return {}
end
if ARGV[1] ~= '' then
  if redis.call('HGET', KEYS[1], 'instance') ~= ARGV[1]
     or redis.call('HGET', KEYS[1], 'state') ~= 'interrupted' then
    return {}
  end
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return flat
"""

# ARGV: instance, grace_until, reason, interrupted_at (kept if the owner had interrupted
# it already; not if it was orphaned: the owner, alive, knows better than its last
# heartbeat).
_INTERRUPT = """
if redis.call('HGET', KEYS[1], 'instance') ~= ARGV[1] then
  return 0
end
if redis.call('HGET', KEYS[1], 'state') ~= 'interrupted'
   or redis.call('HGET', KEYS[1], 'orphaned') == '1'
   or not redis.call('HGET', KEYS[1], 'interrupted_at') then
  redis.call('HSET', KEYS[1], 'interrupted_at', ARGV[4])
end
redis.call('HSET', KEYS[1], 'state', 'interrupted', 'grace_until', ARGV[2], 'reason', ARGV[3])
return 1
"""

# A dead instance's stream: interrupted (grace from now unless already running; media
# taken as stopped at ARGV[3], the instance's last heartbeat, or at the start if that
# came after it), orphaned.
_ORPHAN = """
if redis.call('HGET', KEYS[1], 'instance') ~= ARGV[1] then
  return false
end
if redis.call('HGET', KEYS[1], 'state') ~= 'interrupted' then
  local since = ARGV[3]
  local started = redis.call('HGET', KEYS[1], 'started_at')
  if started and tonumber(started) > tonumber(since) then
    since = started
  end
  redis.call('HSET', KEYS[1], 'state', 'interrupted', 'grace_until', ARGV[2],
             'interrupted_at', since)
end
redis.call('HSET', KEYS[1], 'orphaned', '1')
return redis.call('HGET', KEYS[1], 'grace_until')
"""

# The owner, back after being taken for dead: keep the stream (active again unless the
# owner itself holds it interrupted).
_REASSERT = """
if redis.call('HGET', KEYS[1], 'instance') ~= ARGV[1] then
  return 0
end
redis.call('HDEL', KEYS[1], 'orphaned')
if ARGV[2] == '0' and redis.call('HGET', KEYS[1], 'state') == 'interrupted' then
  redis.call('HSET', KEYS[1], 'state', 'active')
  redis.call('HDEL', KEYS[1], 'grace_until', 'reason', 'interrupted_at')
end
return 1
"""

# KEYS: stream, tombstone. ARGV: now, margin for a live owner's own timer, tombstone ttl.
# {0}: not interrupted any more (drop from the index); {1, due}: not yet; {2, flat}: ended.
_SWEEP = """
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then
  return {0}
end
local f = {}
for i = 1, #flat, 2 do
  f[flat[i]] = flat[i + 1]
end
if f['state'] ~= 'interrupted' or not f['grace_until'] then
  return {0}
end
local due = tonumber(f['grace_until'])
if f['orphaned'] ~= '1' then
  due = due + tonumber(ARGV[2])
end
if tonumber(ARGV[1]) < due then
  return {1, tostring(due)}
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return {2, flat}
"""

_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'region', ARGV[1], 'stream_type', ARGV[2], 'started_at', ARGV[3],
           'owner', ARGV[4], 'instance', ARGV[5], 'state', ARGV[6])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'grace_until', ARGV[7])
end
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[1], 'interrupted_at', ARGV[8])
end
return 1
"""


def _fields(flat: Any) -> dict[str, str]:
    if isinstance(flat, dict):
        return {str(k): str(v) for k, v in flat.items()}
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _record(stream_id: str, flat: Any) -> StreamRecord:
    fields = _fields(flat)
    grace = fields.get("grace_until")
    since = fields.get("interrupted_at")
    return StreamRecord(
        stream_id=stream_id,
        region=fields.get("region", ""),
        stream_type=fields.get("stream_type", "live"),
        started_at=float(fields.get("started_at", "0")),
        owner=fields.get("owner", ""),
        state=fields.get("state", ACTIVE),
        grace_until=None if grace is None else float(grace),
        instance=fields.get("instance", ""),
        orphaned=fields.get("orphaned") == "1",
        interrupted_at=None if since is None else float(since),
    )


class RedisStore:
    """:class:`~nova_streaming.registry.store.RegistryStore` on Redis (one node or a
    Cluster)."""

    def __init__(
        self,
        engine: RedisPresence,
        *,
        tombstone_ttl: float = 600.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._streams = engine.global_key("streams")
        self._grace = engine.global_key("grace")
        self._tombstone_ms = max(1, int(tombstone_ttl * 1000))
        self._wall = wall_clock
        self._orphan_grace = engine.settings.stream_grace
        engine.add_instance_cleaner(self._orphan_streams_of)

    @property
    def instance_id(self) -> str:
        """The process whose records this store writes (``<replica id>#<hex>``)."""
        return self._engine.instance_id

    def _key(self, kind: str, stream_id: str) -> str:
        return self._engine.stream_key(kind, stream_id)

    def _owned(self, instance: str) -> str:
        return self._engine.instance_key("owned", instance)

    async def claim(
        self, stream_id: str, region: str, stream_type: str, owner: str, now: float
    ) -> tuple[StreamRecord, str | None]:
        """Create or take over atomically, keeping start time and type."""
        me = self.instance_id
        await self._engine.commands(
            [("sadd", self._streams, stream_id), ("sadd", self._owned(me), stream_id)]
        )
        prev, flat = await self._engine.script(
            _CLAIM, [self._key("stream", stream_id)], [region, stream_type, owner, me, repr(now)]
        )
        await self._engine.commands([("zrem", self._grace, stream_id)])
        return _record(stream_id, flat), (str(prev) or None)

    async def get(self, stream_id: str) -> StreamRecord | None:
        """The record, if active."""
        [flat] = await self._engine.commands([("hgetall", self._key("stream", stream_id))])
        return _record(stream_id, flat) if flat else None

    async def list_active(self) -> list[StreamRecord]:
        """All active records: the ids set, then each record (stale ids are dropped)."""
        [members] = await self._engine.commands([("smembers", self._streams)])
        ids = sorted(str(m) for m in members)
        records: list[StreamRecord] = []
        stale: list[str] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            hashes = await self._engine.commands(
                [("hgetall", self._key("stream", s)) for s in chunk], operation="read"
            )
            for sid, flat in zip(chunk, hashes, strict=True):
                if flat:
                    records.append(_record(sid, flat))
                else:
                    stale.append(sid)
        if stale:
            await self._engine.commands([("srem", self._streams, *stale)])
        return records

    async def existing(self, stream_ids: Iterable[str]) -> set[str]:
        """The active ones among ``stream_ids``."""
        ids = list(stream_ids)
        flags = await self._engine.commands([("exists", self._key("stream", s)) for s in ids])
        return {s for s, flag in zip(ids, flags, strict=True) if int(flag)}

    async def status(self, stream_ids: Iterable[str]) -> dict[str, StreamStatus]:
        """Per stream: its record if active, else ``ended`` (tombstone) or ``unknown``."""
        ids = list(stream_ids)
        calls: list[tuple[Any, ...]] = []
        for s in ids:
            calls += [("hgetall", self._key("stream", s)), ("exists", self._key("ended", s))]
        out = await self._engine.commands(calls)
        result: dict[str, StreamStatus] = {}
        for n, s in enumerate(ids):
            flat, ended = out[2 * n], out[2 * n + 1]
            if flat:
                result[s] = StreamStatus("active", _record(s, flat))
            else:
                result[s] = StreamStatus("ended" if int(ended) else "unknown", None)
        return result

    async def remove(
        self, stream_id: str, *, if_interrupted_by: str | None = None
    ) -> StreamRecord | None:
        """Delete atomically; the one caller that deleted gets the record.
        ``if_interrupted_by`` is honoured as "this process holds it interrupted"."""
        fence = self.instance_id if if_interrupted_by is not None else ""
        flat = await self._engine.script(
            _REMOVE,
            [self._key("stream", stream_id), self._key("ended", stream_id)],
            [fence, self._tombstone_ms],
        )
        if not flat:
            return None
        record = _record(stream_id, flat)
        await self._forget(record)
        return record

    async def _forget(self, record: StreamRecord) -> None:
        sid = record.stream_id
        calls: list[tuple[Any, ...]] = [("srem", self._streams, sid), ("zrem", self._grace, sid)]
        if record.instance:
            calls.append(("srem", self._owned(record.instance), sid))
        await self._engine.commands(calls)

    async def restore(self, record: StreamRecord) -> bool:
        """Re-create a record Redis lost (not one that ended); True if written."""
        sid = record.stream_id
        done = await self._engine.script(
            _RESTORE,
            [self._key("stream", sid), self._key("ended", sid)],
            [
                record.region,
                record.stream_type,
                repr(record.started_at),
                record.owner,
                self.instance_id,
                record.state,
                "" if record.grace_until is None else repr(record.grace_until),
                "" if record.interrupted_at is None else repr(record.interrupted_at),
            ],
        )
        if not int(done):
            return False
        calls: list[tuple[Any, ...]] = [
            ("sadd", self._streams, sid),
            ("sadd", self._owned(self.instance_id), sid),
        ]
        if record.grace_until is not None:
            calls.append(("zadd", self._grace, {sid: record.grace_until}))
        await self._engine.commands(calls)
        return True

    async def interrupt(
        self,
        stream_id: str,
        owner: str,
        grace_until: float,
        reason: str = "interrupted",
        *,
        interrupted_at: float | None = None,
    ) -> bool:
        """Mark interrupted if this process holds it (``owner`` is this replica); the
        first interruption time is kept."""
        since = self._wall() if interrupted_at is None else interrupted_at
        done = await self._engine.script(
            _INTERRUPT,
            [self._key("stream", stream_id)],
            [self.instance_id, repr(grace_until), reason, repr(since)],
        )
        if not int(done):
            return False
        await self._engine.commands([("zadd", self._grace, {stream_id: grace_until})])
        return True

    async def reassert(self, record: StreamRecord, *, interrupted: bool) -> bool:
        """This live process was taken for dead: keep its stream (active again unless
        ``interrupted``, i.e. its own grace timer runs)."""
        sid = record.stream_id
        done = await self._engine.script(
            _REASSERT, [self._key("stream", sid)], [self.instance_id, "1" if interrupted else "0"]
        )
        if not int(done):
            return False
        calls: list[tuple[Any, ...]] = [("sadd", self._owned(self.instance_id), sid)]
        if not interrupted:
            calls.append(("zrem", self._grace, sid))
        await self._engine.commands(calls)
        return True

    async def authorize(self, stream_id: str, stream_type: str, ttl: float) -> None:
        """SET with a TTL."""
        await self._engine.commands(
            [("set", self._key("auth", stream_id), stream_type, None, max(1, int(ttl * 1000)))]
        )

    async def authorization(self, stream_id: str) -> str | None:
        """The authorized type, if not expired."""
        [value] = await self._engine.commands([("get", self._key("auth", stream_id))])
        return None if value is None else str(value)

    async def owner_alive(self, owner: str) -> bool:
        """Whether the owning instance (``record.instance``) still has a heartbeat."""
        return await self._engine.instance_alive(owner)

    async def expired(self, now: float) -> list[str]:
        """Interrupted streams whose grace deadline has passed (a bounded batch)."""
        [due] = await self._engine.commands(
            [("zrangebyscore", self._grace, "-inf", now, 0, _SWEEP_BATCH)]
        )
        return [str(s) for s in due]

    async def sweep(self, stream_id: str, now: float) -> tuple[StreamRecord, str | None] | None:
        """End ``stream_id`` if its grace ran out (an orphaned one at its deadline, one
        whose live owner runs its own timer a TTL later); the (record, end reason) goes
        to exactly one caller cluster-wide."""
        margin = self._engine.settings.presence_ttl
        out = await self._engine.script(
            _SWEEP,
            [self._key("stream", stream_id), self._key("ended", stream_id)],
            [repr(now), repr(margin), self._tombstone_ms],
        )
        code = int(out[0])
        if code == 0:
            await self._engine.commands([("zrem", self._grace, stream_id)])
            return None
        if code == 1:
            await self._engine.commands([("zadd", self._grace, {stream_id: float(out[1])})])
            return None
        record = _record(stream_id, out[1])
        await self._forget(record)
        return record, REASON_OWNER_LOST if record.orphaned else _fields(out[1]).get("reason")

    async def _orphan_streams_of(self, instance: str) -> None:
        """Presence reaps a dead ``instance``: its streams wait ``NOVA_STREAM_GRACE`` for a
        re-push (take-over), then the sweep ends them (``owner_lost``), once."""
        owned = self._owned(instance)
        [members] = await self._engine.commands([("smembers", owned)])
        now = self._wall()
        grace_until = now + self._orphan_grace
        # The media of a dead owner's streams stopped when it did. The store knows its
        # last heartbeat (an age on Redis's clock, applied to ours); alive, it would have
        # heartbeated again within a sync interval plus that sync's own time: take two
        # intervals after it (never after now), so a real stop is not cut short.
        age = await self._engine.heartbeat_age(instance)
        slack = 2 * self._engine.settings.presence_sync_interval
        since = now - max(0.0, age - slack) if age is not None else now
        for raw in sorted(str(m) for m in members):
            until = await self._engine.script(
                _ORPHAN, [self._key("stream", raw)], [instance, repr(grace_until), repr(since)]
            )
            if until is not None:
                await self._engine.commands([("zadd", self._grace, {raw: float(until)})])
        await self._engine.commands([("delete", owned)])

    async def publish(self, message: str) -> None:
        """Publish on the events channel."""
        await self._engine.publish(message)

    def add_event_handler(self, handler: Callable[[str], None]) -> None:
        """Receive messages from the events channel."""
        self._engine.add_event_handler(handler)
