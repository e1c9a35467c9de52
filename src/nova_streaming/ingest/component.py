"""The ingest wired into the service: the RTMP receiver as an app component, and the
sink that turns what it sees into stream-registry calls and metrics.

Lifecycle of one relayed publish (design sections 3 and 5):

- **admission** (``on_publish_start``): the publish is accepted provisionally and
  checked on the loop: the registry's record of the stream (a re-push of a stream it
  holds, active or interrupted: its type is kept) or else the authorization nginx's
  ``on_publish`` left (:data:`AUTHORIZATION_TTL`). Neither: refused, counted
  ``auth_rejected``. Otherwise ``registry.start`` (owner = this replica). A re-push of a
  stream that ended (it timed out, its relay never came back, or the broadcaster
  stopped) is *dormant*: it starts only when video flows again, so nginx re-pushing a
  silent broadcaster every ``push_reconnect`` neither restarts the stream nor counts the
  same timeout again.
- **media**: every video frame's lag goes to the latency histogram (the hot path:
  one dict check and the metrics call); ``frame_drop``, ``protocol_error``,
  ``rtmp_connection_failed`` and ``timeout`` come from the receiver's ``on_error``, the
  only place errors are counted, each report one counter increment by its count
  (O(1) whatever a peer sends); a timestamp discontinuity counts
  ``nova_streaming_ingest_discontinuities_total``; a connection from an untrusted
  address only ``nova_streaming_untrusted_requests_total{endpoint="ingest"}``; the
  bitrate goes to the owner's per-stream gauge.
- **stop**: ``TIMEOUT`` ends the stream (``timeout``, counted once by ``on_error``);
  any other stop (TCP close, protocol error, our shutdown) is an interruption: the
  stream stays active for ``stream_grace`` seconds waiting for a re-push (here or on
  another replica); if none comes the registry ends it and it is counted
  ``rtmp_connection_failed``. ``on_publish_done`` (the broadcaster really stopped) ends
  it through the registry, routed to the owner.

The sink is synchronous (the receiver calls it on the loop); registry calls run as
tasks chained per stream, so a stream's start always precedes its stop and end, and a
step that finds the shared backend down is retried until it succeeds (an end is never
lost while the process runs).

Example::

    component = IngestComponent(settings)
    app = create_app(settings, metrics=metrics, components=[component])
    # in the lifespan: await component.start(service) ... await component.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from nova_streaming.ingest.errors import CONNECTION_FAILED, FRAME_DROP, TIMEOUT
from nova_streaming.ingest.limits import IngestLimits
from nova_streaming.ingest.peers import TrustedPeers
from nova_streaming.ingest.receiver import IngestReceiver, IngestSession, StopReason, VideoFrame
from nova_streaming.presence import PresenceUnavailable
from nova_streaming.registry import StreamEnded, StreamRegistry
from nova_streaming.service import Service
from nova_streaming.settings import Settings
from streaming_metrics import StreamingMetrics

__all__ = [
    "AUTHORIZATION_TTL",
    "AUTH_REJECTED",
    "REASON_PUBLISH_DONE",
    "IngestComponent",
]

log = logging.getLogger(__name__)

AUTH_REJECTED: Final = "auth_rejected"
REASON_PUBLISH_DONE: Final = "publish_done"

AUTHORIZATION_TTL: Final = 86400.0
"""Seconds an ``on_publish`` authorization lasts: the whole broadcast (the duration
histogram's top bucket), because nginx re-pushes a relay at any time mid-broadcast and
the broadcaster never learns that the relay was refused. A re-push of a stream the
registry still holds is admitted by the record, whatever the authorization's age."""

_ENDED_MEMORY: Final = 10_000
_STOP_WAIT_SECONDS: Final = 5.0
_DORMANT: Final = "dormant"
_REFUSED: Final = "refused"


class IngestComponent:
    """The RTMP receiver component and its :class:`~nova_streaming.ingest.IngestSink`.

    ``host``/``port``/``trusted``/``ingest_timeout`` default to the settings
    (``host``, ``ingest_port``, ``trusted_peers``, ``ingest_timeout``). The callback
    routes (:mod:`nova_streaming.ingest.callbacks`) share it: they call
    :meth:`note_authorized` and :meth:`publish_done`.

    Example::

        component = IngestComponent(settings)
        await component.start(service)      # the app's lifespan does this
        component.receiver.port             # 1936 by default
        await component.stop()
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
        trusted: TrustedPeers | None = None,
        ingest_timeout: float | None = None,
        limits: IngestLimits | None = None,
    ) -> None:
        self.settings = settings
        self.trusted = trusted or TrustedPeers(tuple(settings.trusted_peers))
        self.host = settings.host if host is None else host
        self.port = settings.ingest_port if port is None else port
        self.ingest_timeout = settings.ingest_timeout if ingest_timeout is None else ingest_timeout
        self.limits = limits
        self.receiver: IngestReceiver | None = None
        self._service: Service | None = None
        self._listening = False
        self._closing = False
        # Connection id -> session, while the receiver reports it publishing.
        self._sessions: dict[int, IngestSession] = {}
        # Connections whose registry start succeeded.
        self._started: set[int] = set()
        # Connections not counted as live: dormant (waiting for video) or refused.
        self._gate: dict[int, str] = {}
        self._dormant_types: dict[int, str] = {}
        # Streams this replica interrupted and that have not restarted or ended since.
        self._interrupted: set[str] = set()
        # Per stream, renditions whose on_publish_done came while another still publishes.
        self._finished: dict[str, set[str]] = {}
        # Streams that ended (anywhere): a later re-push of one is dormant.
        self._ended: OrderedDict[str, float] = OrderedDict()
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._latency: Callable[[str, float, str], None] = _not_started
        self._error: Callable[[str], None] = _not_started_error
        self._discontinuity: Callable[[], None] = _not_started_discontinuity

    # --- component ------------------------------------------------------------------

    @property
    def service(self) -> Service:
        """The running service (after :meth:`start`)."""
        if self._service is None:
            raise RuntimeError("ingest: component not started")
        return self._service

    @property
    def registry(self) -> StreamRegistry:
        """The service's stream registry."""
        return self.service.registry

    @property
    def metrics(self) -> StreamingMetrics:
        """The service's metrics."""
        return self.service.metrics

    async def start(self, service: Service) -> None:
        """Bind the receiver (``OSError`` if the port is taken) and start serving."""
        self._service = service
        self._closing = False
        self._latency = service.metrics.record_rtmp_frame_latency
        self._error = service.metrics.record_broadcast_error
        self._discontinuity = service.service_metrics.ingest_discontinuities.inc
        if not self._listening:
            service.registry.add_end_listener(self._on_end)
            service.registry.set_end_check(self._may_end)
            self._listening = True
        await self.start_receiver()

    async def stop(self) -> None:
        """Stop the receiver (its sessions become interruptions), then let the queued
        registry steps finish (up to 5 s). Idempotent."""
        await self.stop_receiver()
        self._closing = True
        late = await self._drain()
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if late:
            log.warning("ingest: %d registry step(s) cancelled at shutdown", len(late))

    async def start_receiver(self) -> None:
        """Start (or restart) the RTMP receiver on the configured port."""
        if self.receiver is not None:
            return
        receiver = IngestReceiver(
            self,
            host=self.host,
            port=self.port,
            trusted=self.trusted,
            ingest_timeout=self.ingest_timeout,
            limits=self.limits,
            on_untrusted=self._untrusted_connection,
        )
        await receiver.start()
        self.receiver = receiver

    async def stop_receiver(self) -> None:
        """Stop the receiver only (every publishing session stops as SERVER_STOPPED:
        an interruption, so a re-push within the grace period continues the stream);
        returns once those interruptions reached the registry (or after 5 s)."""
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            await receiver.stop()
            await self._drain()

    async def hand_over(self) -> set[str]:
        """Graceful shutdown: close every relay WITHOUT ending its stream. Each stream
        becomes interrupted (the registry's grace), nginx re-pushes it (behind a Service,
        to another replica) and the replica that receives it takes it over keeping its
        start time. Returns the streams interrupted here, waiting for that re-push; the
        receiver is closed, so no relay comes back to this replica."""
        publishing = {s.stream_id for key, s in self._sessions.items() if key in self._started}
        await self.stop_receiver()
        return publishing & self._interrupted

    async def _drain(self) -> set[asyncio.Task[None]]:
        """Wait (up to 5 s) for the queued registry steps; return those still running."""
        pending = [t for t in self._tasks if not t.done()]
        if not pending:
            return set()
        _done, late = await asyncio.wait(pending, timeout=_STOP_WAIT_SECONDS)
        return late

    # --- used by the callback routes --------------------------------------------------

    def note_authorized(self, stream_id: str) -> None:
        """``on_publish`` accepted ``stream_id`` here: a new broadcast, not a re-push."""
        self._ended.pop(stream_id, None)

    async def publish_done(self, stream_id: str, stream_name: str) -> bool:
        """``on_publish_done``: end the stream (queued after its pending start, if any);
        True if this call ended it. The end is decided where the relays are (the owner,
        through the registry's end check): another rendition of the same stream still
        publishing there keeps it going, wherever nginx's callback landed."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def settle(value: bool) -> None:
            if not future.done():
                future.set_result(value)

        async def step() -> None:
            try:
                ended = await self.registry.end(
                    stream_id, reason=REASON_PUBLISH_DONE, source=stream_name
                )
            except BaseException:
                settle(False)  # the step is retried (backend down); the caller moves on
                raise
            self._remember_ended(stream_id)
            settle(ended)

        self._enqueue(stream_id, step, "publish_done")
        try:
            return await asyncio.wait_for(asyncio.shield(future), _STOP_WAIT_SECONDS)
        except TimeoutError:
            return False

    def finished_renditions(self, stream_id: str) -> frozenset[str]:
        """Stream names of ``stream_id`` whose on_publish_done reached this replica (the
        owner) while another rendition kept the stream going."""
        return frozenset(self._finished.get(stream_id, ()))

    def _may_end(self, stream_id: str, source: str) -> bool:
        """The registry's end check: ``source`` (a stream name) finished; the stream
        ends unless another rendition still publishes here and has not finished too."""
        finished = self._finished.setdefault(stream_id, set())
        finished.add(source)
        live = {
            s.stream_name
            for s in self._sessions.values()
            if s.stream_id == stream_id and s.stream_name not in finished
        }
        if live:
            log.info("ingest: %s done; %s continue(s)", source, ", ".join(sorted(live)))
            return False
        self._finished.pop(stream_id, None)
        return True

    # --- IngestSink -------------------------------------------------------------------

    def on_publish_start(self, session: IngestSession) -> bool | None:
        """Accept provisionally; the admission runs as the stream's next step."""
        finished = self._finished.get(session.stream_id)
        if finished is not None:
            finished.discard(session.stream_name)  # that rendition publishes again
        self._sessions[session.connection_id] = session
        self._enqueue(session.stream_id, lambda: self._admit(session), "admit")
        return None

    def on_metadata(self, session: IngestSession, metadata: Mapping[str, object]) -> None:
        """Nothing to do: the receiver already derived the quality."""

    def on_video_frame(self, session: IngestSession, frame: VideoFrame) -> None:
        """Observe the frame's lag (the per-frame hot path), naming its stream: the
        metrics keep it as an exemplar of slow frames and in the owner's lag window."""
        gate = self._gate
        if gate and session.connection_id in gate and not self._ungate(session):
            return
        if frame.discontinuity:
            self._discontinuity()
        self._latency(frame.quality, frame.lag_seconds, session.stream_id)

    def on_bitrate(self, session: IngestSession, quality: str, kbps: float) -> None:
        """The owner's per-stream bitrate gauge (ignored by metrics for other streams)."""
        if session.connection_id in self._started:
            self.metrics.record_quality_bitrate(session.stream_id, quality, kbps)

    def on_publish_stop(self, session: IngestSession, reason: StopReason) -> None:
        """Queue the stream's end (timeout) or interruption (anything else)."""
        key = session.connection_id
        self._sessions.pop(key, None)
        self._dormant_types.pop(key, None)
        if self._gate.pop(key, None) == _REFUSED or reason is StopReason.REFUSED:
            return
        self._enqueue(session.stream_id, lambda: self._stopped(session, reason), "stop")

    def on_error(
        self, session: IngestSession | None, error_type: str, count: int, detail: str
    ) -> None:
        """Count ``count`` broadcast errors (the one counting path of the receiver), in
        one increment whatever the count."""
        if session is not None:
            gate = self._gate.get(session.connection_id)
            # A refused relay counts nothing more; a dormant one timing out is nginx
            # re-pushing a silent broadcaster whose timeout was already counted.
            if gate == _REFUSED or (gate == _DORMANT and error_type == TIMEOUT):
                log.debug("ingest: not counted (%s session): %s", gate, detail)
                return
        if error_type == FRAME_DROP and session is not None:
            # The owner's per-stream drop counter (worst streams now); a stream not
            # started here has none, and metrics ignore it.
            self.metrics.record_frame_drops(session.stream_id, count)
        log.info("ingest: %s x%d: %s", error_type, count, detail)
        self.metrics.record_broadcast_error(error_type, count)

    def _untrusted_connection(self, host: str) -> None:
        """The receiver refused a connection from an untrusted address: counted only
        in the service's own metric, so a port scan cannot move the error rate."""
        self.service.service_metrics.untrusted_requests.labels(endpoint="ingest").inc()

    # --- steps (run in order per stream) ----------------------------------------------

    async def _admit(self, session: IngestSession) -> None:
        key, sid = session.connection_id, session.stream_id
        if key not in self._sessions:
            return  # stopped before admission
        record = await self.registry.get(sid)
        stream_type = record.stream_type if record is not None else None
        if stream_type is None:
            stream_type = await self.registry.authorization(sid)
        if key not in self._sessions:
            return
        if stream_type is None:
            self._gate[key] = _REFUSED
            self._error(AUTH_REJECTED)
            log.warning(
                "ingest: refused relay of %s from %s: no on_publish authorization and not active",
                session.stream_name,
                session.peer_host,
            )
            if self.receiver is not None:
                self.receiver.refuse(session, "stream not authorized")
            return
        if record is None and sid in self._ended and session.frames == 0:
            self._gate[key] = _DORMANT
            self._dormant_types[key] = stream_type
            log.info("ingest: re-push of ended stream %s waits for video", sid)
            return
        await self._start(session, stream_type)

    async def _start(self, session: IngestSession, stream_type: str) -> None:
        key, sid = session.connection_id, session.stream_id
        if key not in self._sessions:
            return
        record = await self.registry.start(sid, self.settings.region, stream_type)
        self._started.add(key)
        self._interrupted.discard(sid)
        self._ended.pop(sid, None)
        log.info(
            "ingest: stream %s (%s, %s) publishing from %s",
            sid,
            record.stream_type,
            session.quality,
            session.peer_host,
        )

    async def _stopped(self, session: IngestSession, reason: StopReason) -> None:
        key, sid = session.connection_id, session.stream_id
        if key not in self._started:
            return  # never started (refused, dormant, or stopped before admission)
        self._started.discard(key)
        if any(s.stream_id == sid and k in self._started for k, s in self._sessions.items()):
            # Another rendition still publishes here: the stream goes on, and this
            # rendition's bitrate gauge says that it carries nothing now.
            self.metrics.record_quality_bitrate(sid, session.quality, 0.0)
            return
        if reason is StopReason.TIMEOUT:
            await self.registry.end(sid, reason=TIMEOUT)
            self._remember_ended(sid)
            return
        grace = self.settings.stream_grace
        if await self.registry.interrupt(sid, grace, reason=CONNECTION_FAILED):
            self._interrupted.add(sid)
            log.info("ingest: relay of %s %s; waiting %.1f s for a re-push", sid, reason, grace)

    # --- internals --------------------------------------------------------------------

    def _ungate(self, session: IngestSession) -> bool:
        """A gated connection sent video: a dormant one starts now (True: count it)."""
        key = session.connection_id
        if self._gate.get(key) != _DORMANT:
            return False
        del self._gate[key]
        stream_type = self._dormant_types.pop(key, "live")
        self._enqueue(session.stream_id, lambda: self._start(session, stream_type), "start")
        return True

    def _on_end(self, ended: StreamEnded) -> None:
        sid = ended.stream_id
        self._finished.pop(sid, None)
        self._remember_ended(sid)
        if sid in self._interrupted:
            self._interrupted.discard(sid)
            if ended.reason == CONNECTION_FAILED:
                # Only the replica that interrupted it counts: the relay never came back.
                self._error(CONNECTION_FAILED)

    def _remember_ended(self, sid: str) -> None:
        self._ended[sid] = time.monotonic()
        self._ended.move_to_end(sid)
        while len(self._ended) > _ENDED_MEMORY:
            self._ended.popitem(last=False)

    def _enqueue(self, sid: str, step: Callable[[], Awaitable[None]], what: str) -> None:
        previous = self._chains.get(sid)
        task = asyncio.get_running_loop().create_task(
            self._run_step(previous, step, what, sid), name=f"ingest-{what}-{sid}"
        )
        self._chains[sid] = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._step_done(sid, t))

    def _step_done(self, sid: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._chains.get(sid) is task:
            del self._chains[sid]

    async def _run_step(
        self,
        previous: asyncio.Task[None] | None,
        step: Callable[[], Awaitable[None]],
        what: str,
        sid: str,
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # never raises: the order is all we need
        delay = self.settings.presence_sync_interval
        while True:
            try:
                await step()
                return
            except PresenceUnavailable:
                if self._closing:
                    log.error("ingest: %s of %s lost at shutdown: backend down", what, sid)
                    return
                log.warning("ingest: %s of %s: backend unavailable, retrying", what, sid)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                log.exception("ingest: %s of %s failed", what, sid)
                return


def _not_started(quality: str, seconds: float, stream_id: str) -> None:
    raise RuntimeError("ingest: component not started")


def _not_started_error(error_type: str) -> None:
    raise RuntimeError("ingest: component not started")


def _not_started_discontinuity() -> None:
    raise RuntimeError("ingest: component not started")
