"""Worst streams now, across replicas: each owner's per-stream lag and drops, shared.

Only a stream's owner (the replica its relay reaches) measures its ingest lag and frame
drops (:meth:`StreamingMetrics.stream_signals`). So that ``GET /api/v1/streams?sort=lag``
answers the same on every replica, each replica publishes what it owns once a second
on the registry store's publish/subscribe channel (the one registry events use; Redis
pub/sub with the redis engine, in-process with memory) in a message of its own kind,
and keeps the latest message of every other replica for a few intervals. A message the
registry does not know is ignored by it (it has no ``stream_id``), and this module
ignores everything but its own kind, so the two share the channel without touching
each other's data.

Wire format (JSON)::

    {"kind": "stream_signals", "origin": "<replica id>",
     "streams": {"<stream id>": [<lag seconds or null>, <drops>, ["720p", ...]]}}

Example::

    signals = StreamSignals(interval=1.0)
    app = create_app(settings, metrics=metrics, components=[signals])
    signals.current()   # {stream_id: StreamSignal(...)}, this replica's and the others'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from nova_streaming.presence import PresenceUnavailable
from nova_streaming.registry import normalize_stream_id
from nova_streaming.service import Service

__all__ = ["KIND", "StreamSignal", "StreamSignals", "find_stream_signals"]

log = logging.getLogger(__name__)

KIND: Final = "stream_signals"
DEFAULT_INTERVAL: Final = 1.0
# Another replica's message is used for this many intervals (it may miss one or two).
_STALE_INTERVALS: Final = 5
# At most this many streams read from one message: a bound on what a peer can make us hold.
_MAX_STREAMS_PER_MESSAGE: Final = 100_000


@dataclass(frozen=True, slots=True)
class StreamSignal:
    """What the owner measures of one stream now."""

    stream_id: str
    owner: str
    lag_seconds: float | None
    frame_drops: int
    qualities: tuple[str, ...]


class StreamSignals:
    """A service component: publish this replica's stream signals, collect the others'.

    ``clock`` is monotonic (staleness of received messages).
    """

    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"stream signals: interval must be > 0, got {interval!r}")
        self.interval = interval
        self._clock = clock
        self._service: Service | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._running = False
        # Other replicas' latest signals: origin -> (received at, signals).
        self._remote: dict[str, tuple[float, dict[str, StreamSignal]]] = {}

    async def start(self, service: Service) -> None:
        """Subscribe to the others and publish this replica's signals every interval."""
        self._service = service
        self._running = True
        if not self._listening:
            service.registry.store.add_event_handler(self._on_message)
            self._listening = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._publish_loop(), name="stream-signals"
            )

    async def stop(self) -> None:
        """Stop publishing and forget what was received (idempotent)."""
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._remote.clear()

    def local(self) -> dict[str, StreamSignal]:
        """This replica's own streams, read from its metrics now."""
        if self._service is None:
            return {}
        me = self._service.registry.replica_id
        return {
            sid: StreamSignal(sid, me, lag, drops, qualities)
            for sid, (lag, drops, qualities) in self._service.metrics.stream_signals().items()
        }

    def current(self) -> dict[str, StreamSignal]:
        """Every replica's signals: fresh messages of the others, then this one's own
        (an owner's own reading wins during a hand-over)."""
        now = self._clock()
        horizon = self.interval * _STALE_INTERVALS
        merged: dict[str, StreamSignal] = {}
        for origin, (received, signals) in list(self._remote.items()):
            if now - received > horizon:
                self._remote.pop(origin, None)
                continue
            merged.update(signals)
        merged.update(self.local())
        return merged

    async def _publish_loop(self) -> None:
        while self._running:
            await self.publish_once()
            await asyncio.sleep(self.interval)

    async def publish_once(self) -> None:
        """Publish this replica's signals now (empty too: the others then drop ours)."""
        if self._service is None:
            return
        streams = {
            s.stream_id: [s.lag_seconds, s.frame_drops, list(s.qualities)]
            for s in self.local().values()
        }
        message = json.dumps(
            {"kind": KIND, "origin": self._service.registry.replica_id, "streams": streams}
        )
        try:
            await self._service.registry.store.publish(message)
        except PresenceUnavailable:
            log.debug("stream signals: store unavailable, not published this round")

    def _on_message(self, text: str) -> None:
        if not self._running or self._service is None or f'"{KIND}"' not in text:
            return
        try:
            data = json.loads(text)
            if data.get("kind") != KIND:
                return
            origin = str(data["origin"])
            if origin == self._service.registry.replica_id:
                return
            signals = _parse_streams(origin, data["streams"])
        except (ValueError, KeyError, TypeError, AttributeError):
            log.debug("stream signals: malformed message ignored")
            return
        self._remote[origin] = (self._clock(), signals)


def _parse_streams(origin: str, raw: Any) -> dict[str, StreamSignal]:
    if not isinstance(raw, dict) or len(raw) > _MAX_STREAMS_PER_MESSAGE:
        raise ValueError("streams must be an object of bounded size")
    signals: dict[str, StreamSignal] = {}
    for key, value in raw.items():
        sid = normalize_stream_id(key)
        lag_raw, drops_raw, qualities_raw = value
        lag = None if lag_raw is None else float(lag_raw)
        if lag is not None and not (math.isfinite(lag) and lag >= 0):
            raise ValueError("lag must be finite and >= 0")
        drops = int(drops_raw)
        qualities = tuple(str(q) for q in qualities_raw)[:16]
        signals[sid] = StreamSignal(sid, origin, lag, max(0, drops), qualities)
    return signals


def find_stream_signals(service: Service) -> StreamSignals | None:
    """The app's :class:`StreamSignals` component, if it has one."""
    for component in service.components:
        if isinstance(component, StreamSignals):
            return component
    return None
