"""The Redis presence engine: absolute per-replica counts that cannot drift.

Scheme (why in ``docs/service.md``):

- ``{prefix}:replica:{replica_id}``: this replica's heartbeat, a string with a TTL of
  ``NOVA_PRESENCE_TTL``, refreshed every ``presence_sync_interval`` (TTL/4, at most 1 s).
- ``{prefix}:presence:{stream_id}``: a hash ``{replica_id: local viewer count}``. Each
  replica writes its *absolute* count (HSET, or HDEL at 0), never increments, so a lost
  or repeated write is corrected by the next one, and writes of one stream coalesce.
- The global count of a stream is the sum of the hash fields whose replica still has a
  heartbeat (a Lua script: O(replicas watching the stream), independent of viewers);
  the script deletes fields of dead replicas as it meets them. A crashed replica's
  viewers therefore leave every count as soon as its heartbeat expires (within the TTL).
- When the heartbeat was found missing (Redis restarted, or we were cut off longer
  than the TTL) or after any failed sync, the replica rewrites all its counts; every
  TTL it also rewrites them to refresh the hashes' own expiry (4 x TTL), which collects
  hashes of streams whose every replica died.

This module is the only importer of ``redis``. The stream registry's Redis store runs
its own Lua scripts through :meth:`RedisPresence.script`, :meth:`RedisPresence.publish`
and :meth:`RedisPresence.add_event_handler` and so shares this connection.

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
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from nova_streaming.presence import PresenceUnavailable
from nova_streaming.service_metrics import ServiceMetrics
from nova_streaming.settings import Settings

__all__ = ["RedisPresence"]

log = logging.getLogger(__name__)

_BATCH = 500
_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

_WRITE = """
local replica = ARGV[1]
local expire = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[i + 2])
  if n > 0 then
    redis.call('HSET', key, replica, n)
    redis.call('PEXPIRE', key, expire)
  else
    redis.call('HDEL', key, replica)
  end
end
return #KEYS
"""

# Sum of the other live replicas' counts per stream; fields of dead replicas go.
_READ_OTHERS = """
local me = ARGV[1]
local hb = ARGV[2]
local out = {}
for i, key in ipairs(KEYS) do
  local flat = redis.call('HGETALL', key)
  local sum = 0
  for j = 1, #flat, 2 do
    local r = flat[j]
    if r ~= me then
      if redis.call('EXISTS', hb .. r) == 1 then
        sum = sum + tonumber(flat[j + 1])
      else
        redis.call('HDEL', key, r)
      end
    end
  end
  out[i] = sum
end
return out
"""


class RedisPresence:
    """Presence shared by replicas through one Redis; see the module docstring."""

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
        self._metrics = service_metrics
        self._clock = clock
        self._replica = settings.replica_id
        self._prefix = settings.redis_prefix
        self._ttl_ms = max(1, int(settings.presence_ttl * 1000))
        self._interval = settings.presence_sync_interval
        self._local: dict[str, int] = {}
        self._others: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._watched: dict[str, int] = {}
        self._ready = False
        self._resync = True
        self._last_full = float("-inf")
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._handlers: list[Callable[[str], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._synced = asyncio.Event()

    # --- keys and the facade the registry store uses ---

    @property
    def replica_id(self) -> str:
        """This replica's id, the field name of its counts."""
        return self._replica

    def key(self, *parts: str) -> str:
        """A key under this deployment's prefix: ``key("stream", id)``."""
        return ":".join((self._prefix, *parts))

    def heartbeat_key(self, replica_id: str) -> str:
        """The heartbeat key of ``replica_id`` (exists while that replica is alive)."""
        return self.key("replica", replica_id)

    @property
    def events_channel(self) -> str:
        """The pub/sub channel every replica listens on."""
        return self.key("events")

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            timeout = max(0.2, min(2.0, self._settings.presence_ttl / 3.0))
            self._client = aioredis.Redis.from_url(
                self._settings.redis_url,
                decode_responses=True,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # One immediate retry hides a pooled connection that a Redis restart
                # broke; longer outages surface and are counted by our own loop.
                retry=Retry(NoBackoff(), 1),
            )
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
        """Run a Lua script (cached by source); failures are counted and raised as
        :class:`PresenceUnavailable`."""
        runner = self._scripts.get(source)
        if runner is None:
            runner = self._redis().register_script(source)
            self._scripts[source] = runner
        try:
            return await runner(keys=list(keys), args=list(args))
        except _ERRORS as exc:
            raise self._fail(operation, exc) from exc

    async def publish(self, message: str) -> None:
        """Publish ``message`` to every replica (including this one's subscriber)."""
        try:
            await self._redis().publish(self.events_channel, message)
        except _ERRORS as exc:
            raise self._fail("events", exc) from exc

    def add_event_handler(self, handler: Callable[[str], None]) -> None:
        """Call ``handler(message)`` for every message on the events channel."""
        self._handlers.append(handler)

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
        """Start syncing and listening; waits briefly for a first sync (not fatal)."""
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._sync_loop(), name="presence-sync"),
            asyncio.create_task(self._events_loop(), name="presence-events"),
        ]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout=self._settings.presence_ttl)

    async def stop(self) -> None:
        """Withdraw this replica's counts and heartbeat, then close the connection."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._client is not None:
            with contextlib.suppress(*_ERRORS):
                streams = list(self._local)
                for i in range(0, len(streams), _BATCH):
                    chunk = streams[i : i + _BATCH]
                    await self.script(
                        _WRITE,
                        [self.key("presence", s) for s in chunk],
                        [self._replica, self._ttl_ms * 4, *([0] * len(chunk))],
                        operation="sync",
                    )
                await self._client.delete(self.heartbeat_key(self._replica))
            with contextlib.suppress(*_ERRORS):
                await self._client.aclose()
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
        """Read the other replicas' counts now; returns local + others per stream."""
        ids = list(dict.fromkeys(stream_ids))
        others = await self._read_others(ids, operation="read")
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
                await self._redis().delete(self.key("presence", stream_id))
            except _ERRORS as exc:
                # The hash expires on its own (4 x TTL); nothing reads it once ended.
                self._fail("sync", exc)

    # --- background work ---

    async def _read_others(self, ids: list[str], *, operation: str) -> dict[str, int]:
        result: dict[str, int] = {}
        hb_prefix = self.heartbeat_key("")
        for i in range(0, len(ids), _BATCH):
            chunk = ids[i : i + _BATCH]
            sums = await self.script(
                _READ_OTHERS,
                [self.key("presence", s) for s in chunk],
                [self._replica, hb_prefix],
                operation=operation,
            )
            for s, n in zip(chunk, sums, strict=True):
                result[s] = int(n)
        return result

    async def _sync_once(self) -> None:
        client = self._redis()
        try:
            previous = await client.set(
                self.heartbeat_key(self._replica), "1", px=self._ttl_ms, get=True
            )
        except _ERRORS as exc:
            raise self._fail("heartbeat", exc) from exc
        now = self._clock()
        full = (
            self._resync or previous is None or now - self._last_full >= self._settings.presence_ttl
        )
        streams = list(set(self._local) | self._dirty) if full else list(self._dirty)
        self._dirty.clear()
        try:
            for i in range(0, len(streams), _BATCH):
                chunk = streams[i : i + _BATCH]
                await self.script(
                    _WRITE,
                    [self.key("presence", s) for s in chunk],
                    [self._replica, self._ttl_ms * 4, *(self._local.get(s, 0) for s in chunk)],
                    operation="sync",
                )
        except PresenceUnavailable:
            self._dirty.update(streams)
            raise
        if full:
            self._last_full = now
            self._resync = False
        interest = list(set(self._local) | set(self._watched))
        others = await self._read_others(interest, operation="sync")
        self._others = others

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
                delay = backoff
                # Retry soon enough that counts converge within the TTL once Redis returns.
                backoff = min(backoff * 2, max(self._interval, self._settings.presence_ttl / 4))
            except Exception:  # a bug must not stop syncing forever
                log.exception("presence: sync failed unexpectedly")
                self._resync = True
                delay = backoff
            else:
                self._set_ready(True)
                self._synced.set()
                backoff = self._interval
                delay = self._interval
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _events_loop(self) -> None:
        backoff = self._interval
        while not self._stopping.is_set():
            pubsub = self._redis().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.events_channel)
                backoff = self._interval
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message.get("data")
                    if not isinstance(data, str):
                        continue
                    for handler in self._handlers:
                        try:
                            handler(data)
                        except Exception:
                            log.exception("presence: event handler failed")
            except _ERRORS as exc:
                self._fail("events", exc)
            finally:
                with contextlib.suppress(*_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, max(self._interval, self._settings.presence_ttl / 4))
