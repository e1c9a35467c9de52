"""Graceful shutdown (a rolling update): what one replica does between SIGTERM and exit.

In order, within ``NOVA_SHUTDOWN_GRACE`` seconds:

1. **Unready at once**: ``/readyz`` answers 503 (``Service.draining``) while everything
   keeps serving, so the load balancer (a Kubernetes Service) stops sending new viewers
   and new relays here.
2. **Viewers go away**: every WebSocket viewer is closed with 1001 (going away) and
   uncounted; a client reconnects, through the load balancer, to a replica that stays.
   Viewers arriving meanwhile are refused with 1001 too. This replica's presence counts
   drop to 0 at the next sync and are withdrawn at exit, so the global count stays
   exact once the viewers are counted elsewhere.
3. **Streams are handed over**: every component that implements
   :class:`StreamHandOver` (the RTMP ingest) closes its relays without ending the
   streams. They become interrupted (the registry's grace), nginx-rtmp re-pushes each
   one after ``push_reconnect``, the replica that receives it takes it over keeping its
   original start time, and this replica hears the ``takeover``. The drain waits until
   every handed-over stream is owned elsewhere (or ended), at most until the hand-over
   deadline; with the ``memory`` engine no other replica can take a stream over, so it
   does not wait.
4. The server then shuts down (uvicorn, then the app's lifespan: components, hub,
   registry, presence, which withdraws this replica's counts and heartbeat).

Example::

    drain = ShutdownDrain(app.state.service)
    drain.begin()                                   # from the signal handler: unready now
    report = await drain.run(deadline=loop.time() + 20.0)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from nova_streaming.service import Service

__all__ = ["DrainReport", "ShutdownDrain", "StreamHandOver", "shutdown_budget"]

log = logging.getLogger(__name__)

_POLL_SECONDS: Final = 0.05
_RESERVE_FRACTION: Final = 0.2
_RESERVE_MAX_SECONDS: Final = 5.0


@runtime_checkable
class StreamHandOver(Protocol):
    """A component that can give up the streams it carries without ending them."""

    async def hand_over(self) -> set[str]:
        """Stop carrying streams; return those left interrupted, awaiting a re-push."""
        ...


@dataclass(slots=True)
class DrainReport:
    """What a drain did: viewers closed, streams handed over and those still here."""

    viewers_closed: int = 0
    handed_over: set[str] = field(default_factory=set)
    not_taken_over: set[str] = field(default_factory=set)


def shutdown_budget(grace: float) -> tuple[float, float]:
    """Split ``grace`` seconds into (hand-over wait, reserve for the server's own
    shutdown): the reserve is a fifth of the grace, at most 5 s.

    >>> shutdown_budget(20.0)
    (16.0, 4.0)
    >>> shutdown_budget(30.0)
    (25.0, 5.0)
    >>> shutdown_budget(5.0)
    (4.0, 1.0)
    """
    reserve = min(_RESERVE_MAX_SECONDS, grace * _RESERVE_FRACTION)
    return grace - reserve, reserve


class ShutdownDrain:
    """Steps 1 to 3 of the module docstring for one app's :class:`Service`."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def begin(self) -> None:
        """Go unready now (safe from a signal handler: it only sets a flag)."""
        self.service.draining = True

    async def run(self, deadline: float) -> DrainReport:
        """Close the viewers, hand the streams over and wait for their take-over until
        ``deadline`` (the running loop's clock)."""
        self.begin()
        service = self.service
        report = DrainReport(viewers_closed=service.hub.total)
        log.info(
            "nova-streaming: draining replica %s: %d viewer(s) closed with 1001",
            service.settings.replica_id,
            report.viewers_closed,
        )
        await service.hub.close()
        for component in service.components:
            if isinstance(component, StreamHandOver):
                try:
                    report.handed_over |= await component.hand_over()
                except Exception:
                    log.exception("nova-streaming: %r failed to hand over", component)
        report.not_taken_over = await self._wait_taken_over(report.handed_over, deadline)
        if report.not_taken_over:
            log.warning(
                "nova-streaming: drain over with %d stream(s) not taken over yet (they stay "
                "interrupted: a re-push or the owner_lost reaper settles them): %s",
                len(report.not_taken_over),
                ", ".join(sorted(report.not_taken_over)),
            )
        else:
            log.info(
                "nova-streaming: drain done: %d stream(s) handed over",
                len(report.handed_over),
            )
        return report

    async def _wait_taken_over(self, streams: set[str], deadline: float) -> set[str]:
        service = self.service
        if not streams:
            return set()
        if service.settings.presence == "memory":
            # One process: no other replica shares the registry to take them over.
            return set(streams)
        loop = asyncio.get_running_loop()
        while True:
            # The registry forgets a stream here when another replica took it over (its
            # ``takeover`` event) or when it ended (grace over without a re-push).
            remaining = streams & set(service.registry.owned())
            if not remaining or loop.time() >= deadline:
                return remaining
            await asyncio.sleep(_POLL_SECONDS)
