"""The stream registry: which streams are active, who owns them, and their end.

The ingest calls :meth:`StreamRegistry.start` when a relay publishes and
:meth:`StreamRegistry.end` when the broadcaster stops; the viewer hub asks
:meth:`StreamRegistry.is_active` before counting a viewer and listens for ends.
The registry keeps the metrics of design section 3: the owner records the start,
the peak from the global count, and exactly one replica cluster-wide records the end
with the real duration and the final global viewer count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from nova_streaming.presence import PresenceEngine, PresenceUnavailable
from nova_streaming.registry.locks import StreamLocks
from nova_streaming.registry.model import (
    INTERRUPTED,
    RegistryEvent,
    StreamEnded,
    StreamRecord,
    StreamStatus,
    normalize_stream_id,
    validate_stream_type,
)
from nova_streaming.registry.store import RegistryStore
from nova_streaming.settings import Settings
from streaming_metrics import StreamingMetrics
from streaming_metrics.definitions import LABEL_VALUE_PATTERN

__all__ = ["EndCheck", "EndListener", "StreamRegistry"]

log = logging.getLogger(__name__)

EndListener = Callable[[StreamEnded], None]
EndCheck = Callable[[str, str], bool]
"""``check(stream_id, source) -> bool``: may an end asked for by ``source`` go ahead?"""

# Reasons the registry itself gives to ends it decides.
REASON_OWNER_LOST = "owner_lost"
REASON_GONE = "gone"
_ENDED_MEMORY = 10_000


class StreamRegistry:
    """Active streams across replicas; see the module docstring.

    Example::

        registry = StreamRegistry(settings, metrics, presence, MemoryStore(settings.replica_id))
        await registry.open()
        record = await registry.start(stream_id, "eu-west-1", "live")
        ...
        await registry.end(stream_id, reason="publish_done")   # True: ended exactly once
        await registry.close()
    """

    def __init__(
        self,
        settings: Settings,
        metrics: StreamingMetrics,
        presence: PresenceEngine,
        store: RegistryStore,
        *,
        wall_clock: Callable[[], float] = time.time,
        route_timeout: float = 2.0,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._presence = presence
        self._store = store
        self._wall = wall_clock
        self._route_timeout = route_timeout
        self._me = settings.replica_id
        self._owned: dict[str, StreamRecord] = {}
        self._known: dict[str, StreamRecord] = {}
        self._ended_gen: OrderedDict[str, int] = OrderedDict()
        self._listeners: list[EndListener] = []
        # Routed ends waiting for the owner: (source, future of "it ended").
        self._waiters: dict[str, list[tuple[str | None, asyncio.Future[bool]]]] = {}
        self._end_check: EndCheck | None = None
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._interest: Callable[[], Iterable[str]] = tuple
        self._loop_task: asyncio.Task[None] | None = None
        self._peaks: dict[str, int] = {}
        # Streams this replica is ending right now: the maintenance loop must not
        # mistake them for streams another replica ended.
        self._ending: set[str] = set()
        self._unknown_since: dict[str, float] = {}
        # Ended streams the maintenance check saw before their "ended" event: delivered
        # ("gone") only if the event has not come by the next round; a late event for
        # one delivered that way is not delivered again.
        self._ended_seen: set[str] = set()
        self._delivered_gone: OrderedDict[str, None] = OrderedDict()
        # One start/end/grace step at a time per stream (see registry/locks.py).
        self._locks = StreamLocks()
        self._changes = 0
        store.add_event_handler(self._on_message)

    # --- lifecycle ---

    @property
    def replica_id(self) -> str:
        """This replica's id (the owner field of streams it starts)."""
        return self._me

    @property
    def store(self) -> RegistryStore:
        """The shared store (its publish/subscribe channel carries other replicas'
        messages too, e.g. :mod:`nova_streaming.stream_signals`)."""
        return self._store

    @property
    def changes(self) -> int:
        """Grows whenever this replica starts, takes over or learns the end of a stream
        (the listing snapshot is rebuilt when it moves)."""
        return self._changes

    async def open(self) -> None:
        """Start the maintenance loop (peaks, dead-owner reaping, missed-end detection)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._maintain(), name="registry-maintain")

    async def close(self) -> None:
        """Stop background work. Streams stay registered: a re-push takes them over.

        An end already under way (a grace that ran out) is given a moment to finish, so
        that a removal from the store is not left unrecorded."""
        ending = [t for t in self._background if t.get_name().startswith("grace-end-")]
        if ending:
            await asyncio.wait(ending, timeout=self._route_timeout)
        tasks = [t for t in (self._loop_task, *self._timers.values(), *self._background) if t]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a step stuck on the backend must not hold the shutdown forever.
            done, _ = await asyncio.wait(tasks, timeout=2 * self._route_timeout)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("registry: %s failed", task.get_name(), exc_info=task.exception())
        self._loop_task = None
        self._timers.clear()
        self._background.clear()

    def add_end_listener(self, listener: EndListener) -> None:
        """Call ``listener(StreamEnded)`` once per ended stream on this replica."""
        self._listeners.append(listener)

    def set_end_check(self, check: EndCheck | None) -> None:
        """Consult ``check(stream_id, source)`` before an end that names its ``source``
        (see :meth:`end`), on the replica that carries the end out (the owner when it
        answers); False keeps the stream going. The ingest uses it for renditions:
        ``<uuid>_720p`` finishing while ``<uuid>_1080p`` still publishes."""
        self._end_check = check

    def set_interest(self, provider: Callable[[], Iterable[str]]) -> None:
        """Streams this replica needs to hear about (the hub's streams with viewers);
        checked every sync so that an end missed during an outage is still seen."""
        self._interest = provider

    # --- the seam the ingest calls ---

    async def start(
        self, stream_id: str, region: str | None = None, stream_type: str = "live"
    ) -> StreamRecord:
        """Register ``stream_id`` as active and owned by this replica.

        A stream already registered (its owner died, or it is interrupted and waiting
        for a re-push, on this replica or another) is taken over keeping its original
        start time and type. ``record_stream_started`` runs once per owner.
        Raises ``ValueError`` for a bad ID, type or region and
        :class:`~nova_streaming.presence.PresenceUnavailable` if Redis is down.
        """
        sid = normalize_stream_id(stream_id)
        kind = validate_stream_type(stream_type)
        where = self._settings.region if region is None else region
        if not LABEL_VALUE_PATTERN.fullmatch(where):
            raise ValueError(f"region must match {LABEL_VALUE_PATTERN.pattern}, got {where!r}")
        async with self._locks.hold(sid):
            # Under the stream's lock, a grace timer is either still sleeping (safe to
            # cancel) or has finished its end: it never dies halfway through one.
            record, previous = await self._store.claim(sid, where, kind, self._me, self._wall())
            self._known[sid] = record
            self._ended_gen.pop(sid, None)
            self._delivered_gone.pop(sid, None)
            timer = self._timers.pop(sid, None)
            if timer is not None:
                timer.cancel()
            if sid not in self._owned:
                self._metrics.record_stream_started(sid, record.region, record.stream_type)
                self._presence.watch(sid)
            self._owned[sid] = record
            self._changes += 1
            self._record_peak(sid, record.region)
        if previous is not None and previous != self._me:
            log.info("registry: took over stream %s from %s", sid, previous)
            with contextlib.suppress(PresenceUnavailable):
                await self._store.publish(
                    RegistryEvent("takeover", sid, origin=self._me, target=previous).encode()
                )
        return record

    async def end(
        self, stream_id: str, reason: str | None = None, *, source: str | None = None
    ) -> bool:
        """End ``stream_id`` exactly once cluster-wide; True if this call ended it.

        When another live replica owns the stream the end is routed to it (so its
        ``active_streams`` gauge goes down there); if it does not answer within the
        route timeout, this replica ends it itself. Ending an unknown stream is False.
        With ``source`` (what asked, e.g. the rendition whose publish is done), the
        replica carrying the end out consults its end check first
        (:meth:`set_end_check`); a declined end is False and the stream goes on.
        """
        sid = normalize_stream_id(stream_id)
        record = await self._store.get(sid)
        if record is None:
            return False
        if record.instance != self._store.instance_id and await self._store.owner_alive(
            record.instance or record.owner
        ):
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            waiter = (source, future)
            self._waiters.setdefault(sid, []).append(waiter)
            try:
                await self._store.publish(
                    RegistryEvent(
                        "end_request",
                        sid,
                        origin=self._me,
                        target=record.owner,
                        reason=reason,
                        source=source,
                    ).encode()
                )
                return await asyncio.wait_for(asyncio.shield(future), timeout=self._route_timeout)
            except TimeoutError:
                log.warning("registry: owner %s did not end %s; ending here", record.owner, sid)
            finally:
                waiters = self._waiters.get(sid, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(sid, None)
        if not self._may_end(sid, source):
            return False
        return await self._end_here(sid, reason)

    def _may_end(self, sid: str, source: str | None) -> bool:
        if source is None or self._end_check is None:
            return True
        try:
            return self._end_check(sid, source)
        except Exception:
            log.exception("registry: end check failed; ending %s", sid)
            return True

    async def interrupt(
        self, stream_id: str, grace_seconds: float, reason: str = "interrupted"
    ) -> bool:
        """The relay of an owned stream dropped: keep the stream active for
        ``grace_seconds`` waiting for a re-push (:meth:`start` on any replica), then end
        it with ``reason``. False if this replica does not own the stream."""
        sid = normalize_stream_id(stream_id)
        if not grace_seconds >= 0:
            raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds!r}")
        async with self._locks.hold(sid):
            now = self._wall()
            if not await self._store.interrupt(
                sid, self._me, now + grace_seconds, reason, interrupted_at=now
            ):
                return False
            old = self._timers.pop(sid, None)
            if old is not None:
                old.cancel()
            self._timers[sid] = asyncio.create_task(
                self._grace_timer(sid, grace_seconds, reason), name=f"grace-{sid}"
            )
        return True

    async def authorize(self, stream_id: str, stream_type: str, ttl: float) -> None:
        """Remember, cluster-wide for ``ttl`` seconds, that ``on_publish`` accepted
        ``stream_id`` as ``stream_type`` (the relay's receiver may be another replica)."""
        sid = normalize_stream_id(stream_id)
        await self._store.authorize(sid, validate_stream_type(stream_type), ttl)

    async def authorization(self, stream_id: str) -> str | None:
        """The stream type :meth:`authorize` recorded for ``stream_id``, if not expired."""
        return await self._store.authorization(normalize_stream_id(stream_id))

    # --- queries ---

    async def get(self, stream_id: str) -> StreamRecord | None:
        """The record of an active stream, or None."""
        sid = normalize_stream_id(stream_id)
        record = await self._store.get(sid)
        if record is not None:
            self._known[sid] = record
        return record

    async def list_active(self) -> list[StreamRecord]:
        """Every active stream, oldest first."""
        records = await self._store.list_active()
        return sorted(records, key=lambda r: (r.started_at, r.stream_id))

    async def is_active(self, stream_id: str) -> bool:
        """Whether the stream is active; while the backend is down, what this replica
        last knew (so connected and returning viewers of known streams keep working)."""
        sid = normalize_stream_id(stream_id)
        try:
            found = await self._store.existing([sid])
        except PresenceUnavailable:
            return sid in self._known or sid in self._owned
        if sid not in found:
            return False
        self._known.setdefault(sid, StreamRecord(sid, "", "live", 0.0, ""))
        return True

    def owned(self) -> Mapping[str, StreamRecord]:
        """Streams this replica owns now (read-only view)."""
        return MappingProxyType(self._owned)

    def end_generation(self, stream_id: str) -> int:
        """Changes each time an end of ``stream_id`` is delivered here; the hub compares
        it around its checks so a viewer cannot slip in after the end."""
        return self._ended_gen.get(stream_id, 0)

    # --- internals ---

    def _record_peak(self, sid: str, region: str) -> None:
        count = self._presence.global_count(sid)
        if self._peaks.get(sid) != count:
            self._peaks[sid] = count
            self._metrics.record_viewer_count_change(sid, count, region)

    def viewers_changed(self, stream_id: str) -> None:
        """The hub's local count of ``stream_id`` changed: the owner updates the peak."""
        record = self._owned.get(stream_id)
        if record is not None:
            self._record_peak(stream_id, record.region)

    async def _end_here(
        self, sid: str, reason: str | None, *, if_interrupted: bool = False
    ) -> bool:
        # The lock spans the removal and the bookkeeping: a start() of the same stream
        # waits, so it can neither cancel this end halfway nor have its fresh record
        # popped by it.
        async with self._locks.hold(sid):
            record = await self._store.remove(
                sid, if_interrupted_by=self._me if if_interrupted else None
            )
            if record is None:
                return False
            await self._finish_locked(record, reason, grace_ran_out=if_interrupted)
        return True

    async def _finish_locked(
        self, record: StreamRecord, reason: str | None, *, grace_ran_out: bool = False
    ) -> None:
        sid = record.stream_id
        self._ending.add(sid)
        try:
            await self._finish_end(record, reason, grace_ran_out=grace_ran_out)
        finally:
            self._ending.discard(sid)

    async def _finish_end(
        self, record: StreamRecord, reason: str | None, *, grace_ran_out: bool = False
    ) -> None:
        sid = record.stream_id
        try:
            final = (await self._presence.refresh([sid]))[sid]
        except PresenceUnavailable:
            final = self._presence.global_count(sid)
        end = self._end_time(record) if grace_ran_out else self._wall()
        duration = max(0.0, end - record.started_at)
        owned = self._owned.get(sid)
        if owned is not None and owned.started_at != record.started_at:
            # Another broadcast of this id is ours now: its metrics are not this end's.
            log.warning("registry: %s ended while a newer start of it runs here", sid)
            owned = None
        else:
            self._owned.pop(sid, None)
        if owned is None:
            # The owner is gone or silent: this replica reports the end, once, so the
            # duration and final count are still observed (its own active gauge nets 0).
            self._metrics.record_stream_started(sid, record.region, record.stream_type)
        else:
            self._presence.unwatch(sid)
            self._metrics.record_viewer_count_change(sid, final, record.region)
        self._metrics.record_stream_ended(sid, record.region, duration, final, record.stream_type)
        self._peaks.pop(sid, None)
        ended = StreamEnded(sid, reason, final, duration)
        self._deliver(ended)
        with contextlib.suppress(PresenceUnavailable):
            await self._presence.drop(sid, shared=True)
        try:
            await self._store.publish(
                RegistryEvent(
                    "ended",
                    sid,
                    origin=self._me,
                    reason=reason,
                    final_viewers=final,
                    duration_seconds=duration,
                    started_at=record.started_at,
                ).encode()
            )
        except PresenceUnavailable:
            # Other replicas notice through their periodic existence check.
            log.warning("registry: could not announce the end of %s", sid)

    def _end_time(self, record: StreamRecord) -> float:
        """When a stream whose grace ran out with no re-push really ended: when its
        media stopped (the relay's drop, or a dead owner's last heartbeat), not when the
        grace expired. (An end asked for explicitly, e.g. ``on_publish_done``, ends
        now: the broadcaster stopped then, and an owner only taken for dead during an
        outage may not have re-asserted its stream yet.)"""
        if record.state == INTERRUPTED and record.interrupted_at is not None:
            return min(self._wall(), record.interrupted_at)
        return self._wall()

    def _deliver(self, ended: StreamEnded) -> None:
        """Local effects of an end, whoever decided it."""
        sid = ended.stream_id
        self._changes += 1
        self._known.pop(sid, None)
        self._ended_gen[sid] = self._ended_gen.get(sid, 0) + 1
        self._ended_gen.move_to_end(sid)
        while len(self._ended_gen) > _ENDED_MEMORY:
            self._ended_gen.popitem(last=False)
        timer = self._timers.pop(sid, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        for listener in self._listeners:
            try:
                listener(ended)
            except Exception:
                log.exception("registry: end listener failed")
        for _source, future in self._waiters.pop(sid, []):
            if not future.done():
                future.set_result(True)

    def _gone(self, ended: StreamEnded, started_at: float = 0.0) -> None:
        """Another replica ended the stream (or it vanished): release it here.

        ``started_at`` (when known) names the broadcast that ended: a newer start of
        the same id on this replica is left alone."""
        sid = ended.stream_id
        mine = self._owned.get(sid)
        if started_at and mine is not None and mine.started_at != started_at:
            return
        owned = self._owned.pop(sid, None)
        if owned is not None:
            self._presence.unwatch(sid)
        self._peaks.pop(sid, None)
        self._deliver(ended)
        # After the hub closed its viewers: a non-owner's connection series linger and
        # go; an owner hands over (active -1, no observation: the ender observed).
        self._metrics.forget_stream(sid)

    def _on_message(self, text: str) -> None:
        event = RegistryEvent.decode(text)
        if event is None or event.origin == self._me:
            return
        sid = event.stream_id
        if event.kind == "ended":
            self._ended_seen.discard(sid)
            if sid in self._delivered_gone:
                del self._delivered_gone[sid]  # the maintenance check delivered it already
                return
            self._gone(
                StreamEnded(sid, event.reason, event.final_viewers, event.duration_seconds),
                event.started_at,
            )
        elif event.kind == "end_request" and event.target == self._me:
            self._spawn(self._end_requested(sid, event.reason, event.source, event.origin))
        elif event.kind == "end_declined" and event.target == self._me:
            for source, future in self._waiters.get(sid, []):
                if source == event.source and not future.done():
                    future.set_result(False)
        elif event.kind == "takeover" and event.target == self._me and sid in self._owned:
            self._release(sid, event.origin)

    def _release(self, sid: str, new_owner: str) -> None:
        """Another replica owns ``sid`` now: stop exporting its owner series here (no
        observation: the stream goes on)."""
        if self._owned.pop(sid, None) is None:
            return
        self._presence.unwatch(sid)
        self._peaks.pop(sid, None)
        timer = self._timers.pop(sid, None)
        if timer is not None:
            timer.cancel()
        self._metrics.forget_stream(sid)
        log.info("registry: stream %s taken over by %s", sid, new_owner)

    async def _end_requested(
        self, sid: str, reason: str | None, source: str | None, origin: str
    ) -> None:
        try:
            if not self._may_end(sid, source):
                await self._store.publish(
                    RegistryEvent(
                        "end_declined", sid, origin=self._me, target=origin, source=source
                    ).encode()
                )
                return
            await self._end_here(sid, reason)
        except PresenceUnavailable:
            log.warning("registry: could not end %s on request", sid)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _grace_timer(self, sid: str, grace: float, reason: str) -> None:
        await asyncio.sleep(grace)
        # From here the end runs in its own task: cancelling this timer (a start() or
        # an end delivered meanwhile) cannot stop it between the store's removal and
        # the recording of the end.
        ending = asyncio.create_task(self._grace_end(sid, reason), name=f"grace-end-{sid}")
        self._background.add(ending)
        ending.add_done_callback(self._background.discard)
        await asyncio.shield(ending)
        if self._timers.get(sid) is asyncio.current_task():
            del self._timers[sid]

    async def _grace_end(self, sid: str, reason: str) -> None:
        delay = self._settings.presence_sync_interval
        while True:
            try:
                await self._end_here(sid, reason, if_interrupted=True)
                break
            except PresenceUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.presence_ttl)
                if sid not in self._timers:
                    return  # taken over (or ended) meanwhile

    async def _maintain(self) -> None:
        interval = self._settings.presence_sync_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self._maintain_once()
            except PresenceUnavailable:
                pass  # counted by the engine; next round retries
            except Exception:
                log.exception("registry: maintenance failed")

    async def _sweep(self) -> None:
        """End the interrupted streams whose grace ran out with no re-push (their owner
        died, or its own timer did not run): each ends on exactly one replica."""
        for sid in await self._store.expired(self._wall()):
            async with self._locks.hold(sid):
                swept = await self._store.sweep(sid, self._wall())
                if swept is None:
                    continue
                record, reason = swept
                log.warning(
                    "registry: %s of %s ran out of grace (%s); ending it",
                    record.owner,
                    record.stream_id,
                    reason,
                )
                await self._finish_locked(record, reason or REASON_OWNER_LOST, grace_ran_out=True)

    async def _reconcile(self, sid: str, status: StreamStatus) -> None:
        """Ownership from the store wins over what this replica believes: a missed
        ``takeover`` message would otherwise leave two owners exporting the stream."""
        record = status.record
        if record is None:
            return
        mine = self._store.instance_id
        if record.instance == mine and not record.orphaned:
            return
        async with self._locks.hold(sid):
            # Re-read under the lock: a start() of ours may have claimed it meanwhile.
            fresh = (await self._store.status([sid])).get(sid)
            record = fresh.record if fresh is not None else None
            if record is None or sid not in self._owned:
                return
            if record.instance != mine:
                self._release(sid, record.owner)
            elif record.orphaned and await self._store.reassert(
                record, interrupted=sid in self._timers
            ):
                log.warning("registry: %s was taken for dead; kept stream %s", self._me, sid)

    async def _maintain_once(self) -> None:
        for sid, record in list(self._owned.items()):
            self._record_peak(sid, record.region)
        await self._sweep()
        watched = (set(self._interest()) | set(self._owned)) - self._ending
        for sid in [s for s in self._unknown_since if s not in watched]:
            del self._unknown_since[sid]
        self._ended_seen &= watched
        if not watched:
            return
        now = time.monotonic()
        for sid, status in (await self._store.status(watched)).items():
            if sid in self._ending:
                continue
            state = status.state
            if state == "active":
                self._unknown_since.pop(sid, None)
                if sid in self._owned:
                    await self._reconcile(sid, status)
            elif state == "ended":
                self._unknown_since.pop(sid, None)
                if sid in self._ended_gen and sid not in self._known and sid not in self._owned:
                    continue  # its end was delivered here already
                if sid not in self._ended_seen:
                    # The "ended" event (with the real reason) is normally on its way.
                    self._ended_seen.add(sid)
                    continue
                self._ended_seen.discard(sid)
                self._delivered_gone[sid] = None
                while len(self._delivered_gone) > _ENDED_MEMORY:
                    self._delivered_gone.popitem(last=False)
                self._gone(StreamEnded(sid, REASON_GONE, self._presence.global_count(sid), 0.0))
            elif sid in self._owned:
                # The backend lost the record (Redis restarted without persistence):
                # the owner puts it back, original start time included.
                if await self._store.restore(self._owned[sid]):
                    log.warning("registry: restored stream %s lost by the backend", sid)
            else:
                # Lost, and no owner has restored it yet: give the owner time to.
                since = self._unknown_since.setdefault(sid, now)
                if now - since > self._settings.presence_ttl + self._settings.stream_grace:
                    self._unknown_since.pop(sid, None)
                    self._gone(StreamEnded(sid, REASON_GONE, self._presence.global_count(sid), 0.0))
