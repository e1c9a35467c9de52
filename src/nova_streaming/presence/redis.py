"""The Redis presence engine: absolute per-replica counts that cannot drift.

Scheme (why in ``docs/service.md``). ``{p}`` is ``NOVA_REDIS_PREFIX``; a ``{...}`` part
of a key is its Redis Cluster hash tag, so every script touches one slot:

- Each process is an *instance* ``<replica id>#<8 random hex>``, new at every start, so
  an explicit ``NOVA_REPLICA_ID`` reused by a restarted process never inherits the dead
  process's counts.
- ``{{p}}:replicas``: a sorted set, instance -> heartbeat deadline (Redis server time,
  ms), refreshed every ``presence_sync_interval`` (TTL/4, at most 1 s). One script call
  per sync also returns the live instances and those whose deadline has passed.
- ``{p}:presence:{<stream id>}``: a hash ``{instance: local viewer count}``. Each
  instance writes its *absolute* count (HSET, or HDEL at 0), never increments, so a lost
  or repeated write is corrected by the next one, and writes of one stream coalesce.
  Only changed streams are written, plus one full rewrite per TTL (which also refreshes
  the hashes' own expiry, 4 x TTL) and after any failure or lost heartbeat.
- ``{p}:rstreams:{<instance>}``: the streams an instance has counts in, so that its
  counts can be removed without scanning.
- The global count of a stream is the sum of its hash's fields whose instance is live
  (as of this replica's last heartbeat call): O(replicas watching the stream).
- After an outage of this replica's own heartbeats (a failover of the ``{{p}}`` slot's
  master, a Redis restart) every deadline may have lapsed, and each instance is back
  only at its own next heartbeat. For a TTL after its heartbeats hold again, a replica
  keeps counting the instances live before the outage and reaps no one: a live replica
  back a moment later is never missing from the sum (above all from an end's final
  count), and one that died in the outage leaves it a TTL after the outage.
- A dead instance (deadline passed) is reaped by the replica that first takes its
  ``{p}:reaping:{<instance>}`` lease (SET NX, TTL): its fields are deleted (through its
  ``rstreams`` set), cleaners registered by the registry mark its streams interrupted,
  then it leaves the sorted set. Work is proportional to what the dead instance held,
  once, not to streams x replicas every second. An instance live again by then (only
  its heartbeats had failed, e.g. a Cluster failover longer than the TTL) keeps its
  fields, and one back during the deletes is marked in ``{{p}}:reaped`` so that its
  next heartbeat makes it rewrite every count.
- At start, a replica first reaps every earlier instance of its own replica id (same
  ``NOVA_REPLICA_ID`` after a crash): their counts leave the global sum at once.

The registry's Redis store runs its own commands through :meth:`RedisPresence.script`
and :meth:`RedisPresence.batch` and so shares this connection. Single node or Redis
Cluster: see :mod:`nova_streaming.presence.redis_url`.

Example::

    engine = RedisPresence(Settings(presence="redis"), ServiceMetrics(CollectorRegistry()))
    await engine.start()
    engine.set_local(stream_id, 12)        # absolute; synced in the background
    engine.global_count(stream_id)         # 12 + other live replicas' counts
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from redis.exceptions import RedisError

from nova_streaming.presence import PresenceUnavailable
from nova_streaming.presence.redis_connection import RedisClient, connect, subscriber
from nova_streaming.presence.redis_url import parse_redis_url
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings

__all__ = ["InstanceCleaner", "RedisPresence"]

log = logging.getLogger(__name__)

_BATCH = 500
# A write on a connection that a concurrent disconnect closed (redis-py's Cluster client
# disconnects a node after a timeout or a failover, with commands in flight on it) fails
# with RuntimeError on uvloop (the service's loop: "the handler is closed") or
# AttributeError (the writer already dropped), not a ConnectionError (redis-py #4217).
# redis-py drops that connection and the next call reconnects. Every use below wraps a
# Redis call only, never our own code.
_ERRORS = (RedisError, OSError, asyncio.TimeoutError, RuntimeError, AttributeError)

InstanceCleaner = Callable[[str], Awaitable[None]]
"""``cleaner(instance)``: release what a dead instance held (the registry's streams)."""

# Heartbeat, in server time: returns {previous deadline or '', now, reaped while alive
# (1/0), live..., '|', dead...}. KEYS: the replicas set, the "reaped while alive" marks.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local reaped = redis.call('HDEL', KEYS[2], ARGV[1])
local out = {prev or '', tostring(now), tostring(reaped)}
for _, r in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  out[#out + 1] = r
end
out[#out + 1] = '|'
for _, r in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)) do
  out[#out + 1] = r
end
return out
"""

# Leave the set only if still dead. An instance cut off for a while (every heartbeat
# failing through a Cluster failover longer than the TTL) may be back, its counts
# deleted by the reap after it rewrote them: mark it, so that its next heartbeat makes
# it rewrite them all. KEYS: the replicas set, the marks.
_FORGET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and (ARGV[2] == '1' or tonumber(score) <= now) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
elseif score then
  redis.call('HSET', KEYS[2], ARGV[1], '1')
end
return 1
"""

# {deadline or '', now}: how long ago an instance last heartbeated, in server time.
_DEADLINE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {redis.call('ZSCORE', KEYS[1], ARGV[1]) or '', tostring(now)}
"""

# The live instances now, in server time.
_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""

_ALIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) > now then
  return 1
end
return 0
"""


class RedisPresence:
    """Presence shared by replicas through Redis (one node or a Cluster); see the module
    docstring."""

    name = "redis"

    def __init__(
        self,
        settings: Settings,
        service_metrics: ServiceMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.redis_url:
            raise ValueError("presence: redis URL missing")
        self._settings = settings
        self._target = parse_redis_url(settings.redis_url)
        self._metrics = service_metrics
        self._clock = clock
        self._replica = settings.replica_id
        self._instance = f"{settings.replica_id}#{secrets.token_hex(4)}"
        self._prefix = settings.redis_prefix
        self._ttl_ms = max(1, int(settings.presence_ttl * 1000))
        self._interval = settings.presence_sync_interval
        self._timeout = max(0.2, min(2.0, settings.presence_ttl / 3.0))
        self._local: dict[str, int] = {}
        self._others: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._watched: dict[str, int] = {}
        self._live: frozenset[str] = frozenset()
        # After an outage of our own heartbeats, the instances live before it, still
        # counted (and not reaped) until ``_hold_until``: see _back_from_outage.
        self._held: frozenset[str] = frozenset()
        self._hold_until = float("-inf")
        self._ready = False
        self._resync = True
        self._earlier_cleared = False
        self._last_full = float("-inf")
        # Set when a sync fails: our heartbeats may be lapsing, and the others' with them.
        self._cut_off = True
        self._client: RedisClient | None = None
        self._scripts: dict[str, Any] = {}
        self._handlers: list[Callable[[str], None]] = []
        self._cleaners: list[InstanceCleaner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._synced = asyncio.Event()

    # --- keys and the facade the registry store uses ---

    @property
    def replica_id(self) -> str:
        """This replica's id (``NOVA_REPLICA_ID`` or the per-start default)."""
        return self._replica

    @property
    def instance_id(self) -> str:
        """This process's instance: ``<replica id>#<8 random hex>``, new every start."""
        return self._instance

    @property
    def settings(self) -> Settings:
        """The settings this engine runs with (the registry store reads its timings)."""
        return self._settings

    @property
    def cluster(self) -> bool:
        """True when ``NOVA_REDIS_URL`` names a Redis Cluster."""
        return self._target.cluster

    def key(self, *parts: str) -> str:
        """A key under this deployment's prefix: ``key("stream", id)``."""
        return ":".join((self._prefix, *parts))

    def stream_key(self, kind: str, stream_id: str) -> str:
        """A per-stream key, hash-tagged by the stream so one stream is one slot."""
        return f"{self._prefix}:{kind}:{{{stream_id}}}"

    def instance_key(self, kind: str, instance: str) -> str:
        """A per-instance key, hash-tagged by the instance."""
        return f"{self._prefix}:{kind}:{{{instance}}}"

    def global_key(self, name: str) -> str:
        """A deployment-wide key; all of them share the slot of ``{prefix}``."""
        return f"{{{self._prefix}}}:{name}"

    @property
    def events_channel(self) -> str:
        """The pub/sub channel every replica listens on."""
        return self.key("events")

    def _redis(self) -> RedisClient:
        if self._client is None:
            self._client = connect(self._target, self._timeout)
        return self._client

    def _fail(self, operation: str, exc: BaseException) -> PresenceUnavailable:
        self._metrics.presence_errors.labels(operation=operation).inc()
        log.warning("presence: redis %s failed: %s", operation, exc)
        return PresenceUnavailable(f"presence: redis {operation} failed: {exc}")

    async def script(
        self,
        source: str,
        keys: Sequence[str],
        args: Sequence[str | int | float],
        *,
        operation: str = "registry",
    ) -> Any:
        """Run a Lua script (cached by source); ``keys`` must share one hash slot.
        Failures are counted and raised as :class:`PresenceUnavailable`."""
        runner = self._scripts.get(source)
        if runner is None:
            runner = self._redis().register_script(source)
            self._scripts[source] = runner
        try:
            return await runner(keys=list(keys), args=list(args))
        except _ERRORS as exc:
            raise self._fail(operation, exc) from exc

    async def batch(self, fill: Callable[[Any], object], *, operation: str = "registry") -> Any:
        """Run the commands ``fill(pipeline)`` queues, in one pipeline (fanned out per
        node on a Cluster; not a transaction) and return their results."""
        try:
            pipe = self._redis().pipeline(transaction=False)
        except _ERRORS as exc:
            raise self._fail(operation, exc) from exc
        fill(pipe)  # queues only: our code, outside the handling of Redis failures
        try:
            return await pipe.execute()
        except _ERRORS as exc:
            raise self._fail(operation, exc) from exc

    async def commands(
        self, calls: Iterable[tuple[Any, ...]], *, operation: str = "registry"
    ) -> list[Any]:
        """Run ``(command, *args)`` calls (``("hgetall", key)``) in one pipeline."""
        queued = list(calls)
        if not queued:
            return []

        def fill(pipe: Any) -> None:
            for name, *args in queued:
                getattr(pipe, name)(*args)

        return list(await self.batch(fill, operation=operation))

    async def publish(self, message: str) -> None:
        """Publish ``message`` to every replica (including this one's subscriber)."""
        try:
            await self._redis().publish(self.events_channel, message)
        except _ERRORS as exc:
            raise self._fail("events", exc) from exc

    def add_event_handler(self, handler: Callable[[str], None]) -> None:
        """Call ``handler(message)`` for every message on the events channel."""
        self._handlers.append(handler)

    def add_instance_cleaner(self, cleaner: InstanceCleaner) -> None:
        """Await ``cleaner(instance)`` when a dead instance is reaped, before its
        presence counts go (the registry marks its streams interrupted)."""
        self._cleaners.append(cleaner)

    async def instance_alive(self, instance: str) -> bool:
        """Whether ``instance`` has a heartbeat deadline in the future."""
        found = await self.script(_ALIVE, [self.global_key("replicas")], [instance])
        return bool(int(found))

    async def heartbeat_age(self, instance: str) -> float | None:
        """Seconds since ``instance`` last heartbeated (its deadline minus the TTL, on
        Redis's clock), or None if it is not in the set any more."""
        deadline, now = await self.script(
            _DEADLINE, [self.global_key("replicas")], [instance], operation="sync"
        )
        if deadline in ("", b"", None):
            return None
        return max(0.0, (int(now) - (float(deadline) - self._ttl_ms)) / 1000.0)

    async def ping(self) -> bool:
        """True when Redis answers now."""
        try:
            return bool(await self._redis().ping())
        except _ERRORS:
            return False

    # --- PresenceEngine ---

    @property
    def ready(self) -> bool:
        """False from a failed sync until the next successful one."""
        return self._ready

    async def start(self) -> None:
        """Start syncing and listening; waits briefly for a first sync (not fatal).

        The first sync reaps earlier instances of this replica id before writing
        anything, so a restart under the same id starts from a clean slate."""
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._sync_loop(), name="presence-sync"),
            asyncio.create_task(self._events_loop(), name="presence-events"),
        ]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout=self._settings.presence_ttl)

    async def stop(self) -> None:
        """Withdraw this instance (its counts; its streams become interrupted, through
        the cleaners), then close the connection."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        # Bounded: a shutdown must never hang on a connection stuck mid-read.
        if self._tasks:
            done, _ = await asyncio.wait(self._tasks, timeout=4 * self._timeout)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("presence: %s failed", task.get_name(), exc_info=task.exception())
        self._tasks = []
        if self._client is not None:
            with contextlib.suppress(PresenceUnavailable, asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._reap_instance(self._instance, force=True), timeout=8 * self._timeout
                )
            with contextlib.suppress(*_ERRORS):
                await asyncio.wait_for(self._client.aclose(), timeout=2 * self._timeout)
            self._client = None
        self._local.clear()
        self._others.clear()
        self._dirty.clear()

    def set_local(self, stream_id: str, count: int) -> None:
        """Record the absolute local count; written to Redis by the next sync."""
        if count > 0:
            self._local[stream_id] = count
        else:
            self._local.pop(stream_id, None)
        self._dirty.add(stream_id)

    def local_count(self, stream_id: str) -> int:
        """This replica's viewers of ``stream_id``."""
        return self._local.get(stream_id, 0)

    def global_count(self, stream_id: str) -> int:
        """Local count (exact, now) plus the other replicas' counts as of the last sync."""
        return self._local.get(stream_id, 0) + self._others.get(stream_id, 0)

    def watch(self, stream_id: str) -> None:
        """Include ``stream_id`` in every sync's read (the owner needs it for peaks)."""
        self._watched[stream_id] = self._watched.get(stream_id, 0) + 1

    def unwatch(self, stream_id: str) -> None:
        """Undo one :meth:`watch`."""
        n = self._watched.get(stream_id, 0) - 1
        if n > 0:
            self._watched[stream_id] = n
        else:
            self._watched.pop(stream_id, None)

    async def refresh(self, stream_ids: Iterable[str]) -> dict[str, int]:
        """Read the other replicas' counts now; returns local + others per stream.

        An instance counts if it was live at this replica's last heartbeat *or* is live
        now *or* is held through this replica's own outage (see
        :meth:`_back_from_outage`): after a Cluster failover longer than the TTL every
        deadline has lapsed and each instance is back only at its own next heartbeat,
        so the deadlines alone miss live instances at the moment an end reads its final
        count."""
        ids = list(dict.fromkeys(stream_ids))
        now = await self.script(_LIVE, [self.global_key("replicas")], [], operation="read")
        live = self._counted() | frozenset(str(r) for r in now)
        others = await self._read_others(ids, operation="read", live=live)
        for s in ids:
            if s in self._local or s in self._watched:
                self._others[s] = others[s]
        return {s: self._local.get(s, 0) + others[s] for s in ids}

    async def drop(self, stream_id: str, *, shared: bool) -> None:
        """Forget an ended stream; ``shared`` deletes its hash for every replica."""
        self._local.pop(stream_id, None)
        self._others.pop(stream_id, None)
        self._watched.pop(stream_id, None)
        self._dirty.add(stream_id)
        if shared:
            try:
                await self._redis().delete(self.stream_key("presence", stream_id))
            except _ERRORS as exc:
                # The hash expires on its own (4 x TTL); nothing reads it once ended.
                self._fail("sync", exc)

    # --- background work ---

    async def _read_others(
        self, ids: list[str], *, operation: str, live: frozenset[str] | None = None
    ) -> dict[str, int]:
        result: dict[str, int] = {}
        live = self._counted() if live is None else live
        for i in range(0, len(ids), _BATCH):
            chunk = ids[i : i + _BATCH]
            hashes = await self.commands(
                [("hgetall", self.stream_key("presence", s)) for s in chunk], operation=operation
            )
            for s, fields in zip(chunk, hashes, strict=True):
                # Fields of instances that missed their deadline no longer count, even
                # before a reaper deletes them: exact at the TTL.
                result[s] = sum(
                    int(n) for inst, n in fields.items() if inst != self._instance and inst in live
                )
        return result

    async def _write(self, streams: list[str]) -> None:
        """Write this instance's absolute counts of ``streams`` (0 deletes)."""
        index = self.instance_key("rstreams", self._instance)
        expire = self._ttl_ms * 4
        for i in range(0, len(streams), _BATCH):
            chunk = streams[i : i + _BATCH]
            adds = [s for s in chunk if self._local.get(s, 0) > 0]
            drops = [s for s in chunk if self._local.get(s, 0) <= 0]

            def fill(pipe: Any, adds: list[str] = adds, drops: list[str] = drops) -> None:
                for s in adds:
                    key = self.stream_key("presence", s)
                    pipe.hset(key, self._instance, self._local.get(s, 0))
                    pipe.pexpire(key, expire)
                for s in drops:
                    pipe.hdel(self.stream_key("presence", s), self._instance)

            if adds:
                # Indexed before written: a crash in between leaves nothing unfindable.
                await self.commands([("sadd", index, *adds)], operation="sync")
            await self.batch(fill, operation="sync")
            if drops:
                await self.commands([("srem", index, *drops)], operation="sync")

    async def _heartbeat(self) -> tuple[bool, list[str]]:
        """Refresh our deadline; (whether it had lapsed or vanished, dead instances)."""
        out = await self.script(
            _HEARTBEAT,
            [self.global_key("replicas"), self.global_key("reaped")],
            [self._instance, self._ttl_ms],
            operation="heartbeat",
        )
        prev, now, reaped = str(out[0]), int(out[1]), int(out[2])
        split = out.index("|", 3)
        self._live = frozenset(str(r) for r in out[3:split])
        dead = [str(r) for r in out[split + 1 :] if r != self._instance]
        # Reaped while alive: some of our counts may be gone, rewrite them all.
        lapsed = prev == "" or float(prev) <= now or reaped > 0
        return lapsed, dead

    def _back_from_outage(self, before: frozenset[str], now: float) -> None:
        """Our heartbeats held again after failing or lapsing (a failover of the
        heartbeats' master, a Redis restart): every deadline may have lapsed with ours,
        and each instance is back only at its own next heartbeat, seconds apart. Until
        then its deadline says "dead" though nothing says it died, so for a TTL the
        instances live at our last heartbeat before the outage (``before``) keep
        counting and nobody is reaped. One that really died in the outage leaves the
        count a TTL after the outage (exact within the TTL after the fault)."""
        if now >= self._hold_until:
            self._held = frozenset()
        self._held |= before
        self._hold_until = now + self._settings.presence_ttl
        self._cut_off = False

    def _counted(self) -> frozenset[str]:
        """The instances whose counts are in the sum: live at our last heartbeat, or
        held through our own outage (for a TTL after it)."""
        if self._held and self._clock() >= self._hold_until:
            self._held = frozenset()
        return self._live | self._held

    async def _clear_earlier_incarnations(self) -> None:
        """Reap every other instance of this replica id (a restart under the same id)."""
        members = await self.commands(
            [("zrange", self.global_key("replicas"), 0, -1)], operation="heartbeat"
        )
        mine = f"{self._replica}#"
        for instance in members[0]:
            if str(instance).startswith(mine) and instance != self._instance:
                log.warning("presence: clearing %s, an earlier start of this replica", instance)
                await self._reap_instance(str(instance), force=True)
        self._earlier_cleared = True

    async def _reap_instance(self, instance: str, *, force: bool = False) -> None:
        """Release what ``instance`` held: streams (cleaners), counts, then its entry."""
        for cleaner in self._cleaners:
            await cleaner(instance)
        index = self.instance_key("rstreams", instance)
        [members] = await self.commands([("smembers", index)], operation="sync")
        streams = sorted(str(s) for s in members)
        if not force and await self.instance_alive(instance):
            # Back meanwhile (its heartbeats had only failed): its counts are current,
            # keep them. _FORGET below marks it in case it came back during the deletes.
            streams = []
        for i in range(0, len(streams), _BATCH):
            chunk = streams[i : i + _BATCH]
            await self.commands(
                [("hdel", self.stream_key("presence", s), instance) for s in chunk],
                operation="sync",
            )
        if streams or force:
            await self.commands([("delete", index)], operation="sync")
        await self.script(
            _FORGET,
            [self.global_key("replicas"), self.global_key("reaped")],
            [instance, "1" if force else "0"],
            operation="sync",
        )

    async def _sync_once(self) -> None:
        if not self._earlier_cleared:
            await self._clear_earlier_incarnations()
        before = self._live
        lapsed, dead = await self._heartbeat()
        now = self._clock()
        if lapsed or self._cut_off:
            self._back_from_outage(before, now)
        full = self._resync or lapsed or now - self._last_full >= self._settings.presence_ttl
        streams = list(set(self._local) | self._dirty) if full else list(self._dirty)
        self._dirty.clear()
        try:
            await self._write(streams)
        except PresenceUnavailable:
            self._dirty.update(streams)
            raise
        if full:
            self._last_full = now
            self._resync = False
        interest = list(set(self._local) | set(self._watched))
        self._others = await self._read_others(interest, operation="sync")
        if now < self._hold_until:
            # Cut off ourselves until just now: the others found dead may be as alive as
            # we are and back at their next heartbeat. Reap only after a TTL of our own
            # heartbeats holding.
            dead = []
        for instance in dead:
            # One reaper per dead instance: a lease (TTL) so that N replicas seeing it in
            # the same second do not all redo its work; if the reaper dies, it expires.
            lease = self.instance_key("reaping", instance)
            [won] = await self.commands(
                [("set", lease, self._instance, None, self._ttl_ms, True)], operation="sync"
            )
            if won:
                log.warning("presence: instance %s missed its heartbeat; releasing it", instance)
                await self._reap_instance(instance)

    def _set_ready(self, ready: bool) -> None:
        if ready != self._ready:
            if ready:
                log.info("presence: redis reachable")
            self._ready = ready
        self._metrics.presence_up.set(1 if ready else 0)

    async def _sync_loop(self) -> None:
        backoff = self._interval
        while not self._stopping.is_set():
            try:
                await self._sync_once()
            except PresenceUnavailable:
                self._set_ready(False)
                self._resync = True
                self._cut_off = True
                delay = backoff
                # Retry soon enough that counts converge within the TTL once Redis returns.
                backoff = min(backoff * 2, max(self._interval, self._settings.presence_ttl / 4))
            except Exception:  # a bug must not stop syncing forever
                log.exception("presence: sync failed unexpectedly")
                self._resync = True
                self._cut_off = True
                delay = backoff
            else:
                self._set_ready(True)
                self._synced.set()
                backoff = self._interval
                delay = self._interval
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        data = message.get("data")
        if not isinstance(data, str):
            return
        for handler in self._handlers:
            try:
                handler(data)
            except Exception:
                log.exception("presence: event handler failed")

    async def _events_loop(self) -> None:
        backoff = self._interval
        attempt = 0
        nodes = 1
        while not self._stopping.is_set():
            owned = False
            pubsub = None
            try:
                conn, owned, nodes = subscriber(self._redis(), self._target, attempt, self._timeout)
                pubsub = conn.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.events_channel)
                backoff = self._interval
                while not self._stopping.is_set():
                    # get_message with a timeout, not listen(): some redis-py releases
                    # time listen() out under socket_timeout (redis-py #4098).
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self._interval
                    )
                    if message is not None:
                        self._dispatch(message)
            except _ERRORS as exc:
                self._fail("events", exc)
                attempt += 1
            finally:
                if pubsub is not None:
                    with contextlib.suppress(*_ERRORS):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
                if owned:
                    with contextlib.suppress(*_ERRORS):
                        await conn.aclose()
            if attempt % nodes != 0:
                continue  # a Cluster node failed: try the next one at once
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, max(self._interval, self._settings.presence_ttl / 4))
