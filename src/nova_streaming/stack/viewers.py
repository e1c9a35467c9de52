"""Simulated viewers: real WebSocket clients joining and leaving streams, with churn.

For each stream that should have ``n`` viewers the swarm keeps ``n`` viewer slots. Slot
0 is an anchor that stays connected while the stream lives (so a watched stream never
looks unwatched); the others watch for a random while, leave, pause, and come back,
each time through the next replica, so viewers spread over every replica. A refused
connection (4404: the stream is not active yet or any more) is retried a little later.

Example::

    >>> swarm = ViewerSwarm(["ws://127.0.0.1:8080"], lambda: [("<uuid>", 3)])
    >>> swarm.start(); ...; swarm.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

logger = logging.getLogger("nova_streaming.stack.viewers")

StreamsFn = Callable[[], Sequence[tuple[str, int]]]


class ViewerSwarm:
    """WebSocket viewers over ``ws_bases`` (one base URL per replica) on their own thread.

    ``streams`` is polled every second for ``(stream_id, viewers)`` pairs. ``session``
    and ``pause`` are the (min, max) seconds a churning viewer stays and stays away.
    """

    def __init__(
        self,
        ws_bases: Sequence[str],
        streams: StreamsFn,
        *,
        session: tuple[float, float] = (5.0, 25.0),
        pause: tuple[float, float] = (1.0, 5.0),
        seed: int | None = None,
    ) -> None:
        if not ws_bases:
            raise ValueError("viewers: at least one replica URL is needed")
        self._bases = [base.rstrip("/") for base in ws_bases]
        self._streams = streams
        self._session = session
        self._pause = pause
        self._random = random.Random(seed)
        self._replica = itertools.cycle(range(len(self._bases)))
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._lock = threading.Lock()
        self.connected: Counter[str] = Counter()
        self.per_replica: Counter[int] = Counter()
        self.events: Counter[str] = Counter()

    def start(self) -> None:
        """Start the swarm's thread and event loop."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._stopping = asyncio.Event()
            ready.set()
            try:
                loop.run_until_complete(self._main())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="viewers", daemon=True)
        self._thread.start()
        ready.wait(5)

    def stop(self) -> None:
        """Close every viewer connection and stop the thread."""
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout=15)

    def total_connected(self) -> int:
        """Viewers connected right now, over every stream."""
        with self._lock:
            return sum(self.connected.values())

    async def _main(self) -> None:
        assert self._stopping is not None
        slots: dict[tuple[str, int], asyncio.Task[None]] = {}
        try:
            while not self._stopping.is_set():
                wanted = {(sid, k) for sid, count in self._streams() for k in range(max(0, count))}
                for key in list(slots):
                    if key not in wanted or slots[key].done():
                        slots.pop(key).cancel()
                for key in wanted - set(slots):
                    slots[key] = asyncio.create_task(self._slot(*key))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
        finally:
            for task in slots.values():
                task.cancel()
            await asyncio.gather(*slots.values(), return_exceptions=True)

    async def _slot(self, stream_id: str, index: int) -> None:
        anchor = index == 0
        while True:
            replica = next(self._replica)
            url = f"{self._bases[replica]}/ws/streams/{stream_id}"
            stay = None if anchor else self._random.uniform(*self._session)
            code = await self._watch(url, stream_id, replica, stay)
            if code == 4404 or code is None:
                await asyncio.sleep(self._random.uniform(1.0, 2.0))
            elif not anchor:
                await asyncio.sleep(self._random.uniform(*self._pause))
            else:
                await asyncio.sleep(0.5)

    async def _watch(
        self, url: str, stream_id: str, replica: int, stay: float | None
    ) -> int | None:
        """Watch until ``stay`` passes or the server closes; the close code (None: no connect)."""
        try:
            async with connect(url, open_timeout=5, close_timeout=2) as ws:
                self._count(stream_id, replica, +1)
                try:
                    async with asyncio.timeout(stay):
                        async for _message in ws:
                            pass
                    return ws.close_code
                except TimeoutError:
                    self.events["left"] += 1
                    return 1000
                except ConnectionClosed as exc:
                    return exc.rcvd.code if exc.rcvd else None
                finally:
                    self._count(stream_id, replica, -1)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            self.events["connect_failed"] += 1
            logger.debug("viewer %s: %s", url, exc)
            return None
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    def _count(self, stream_id: str, replica: int, delta: int) -> None:
        with self._lock:
            self.connected[stream_id] += delta
            self.per_replica[replica] += delta
            self.events["joined" if delta > 0 else "closed"] += 1
