"""One scenario's world: real processes on loopback, every port free-picked, all stopped.

- Redis: one ``redis-server`` (:class:`nova_testing.redis_server.RedisServer`) or a
  Redis Cluster of 3 masters + 3 replicas (:mod:`nova_testing.redis_cluster`);
- replica *slots*: ``nova-streaming serve`` processes with fixed ports per slot (a pod's
  address), restartable under a new or the same replica id;
- two :class:`~chaos._balancer.Balancer` s in front of the replicas (the Service:
  nginx pushes to one, calls its callbacks on the other);
- nginx-rtmp pushing every stream through the ingest balancer;
- ffmpeg broadcasters (the stack's :func:`~nova_streaming.stack.broadcasters.ffmpeg_argv`);
- the viewer fleet (:mod:`chaos._viewer_fleet`) and the stall probe (:mod:`chaos._probe`),
  child processes;
- the :class:`~chaos._ledger.Ledger` scraping every incarnation.

Processes run under the stack's :class:`~nova_streaming.stack.supervisor.Supervisor`
(own process group, log file, stopped by recorded pid), so nothing else on the machine
is ever signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench._procs import Child as JsonChild
from bench._procs import rss_bytes

from chaos._balancer import Balancer
from chaos._ledger import Ledger
from nova_streaming.ingest.nginx_conf import NginxRtmpConfig, write_nginx_config
from nova_streaming.stack.broadcasters import BroadcasterSpec, ffmpeg_argv, publish_url
from nova_streaming.stack.supervisor import Child, ProcessStartError, Supervisor, http_ready
from nova_streaming.tokens import publish_token
from nova_testing.nginx import NginxProcess, run_nginx
from nova_testing.ports import free_port
from nova_testing.redis_cluster import RedisClusterServer
from nova_testing.redis_server import RedisServer
from streaming_metrics import definitions as d

SECRET = "chaos-publish-secret"
REGION = "chaos-1"
VENV_BIN = Path(sys.executable).parent
DURATION = d.STREAM_DURATION_SECONDS.name
FINAL_VIEWERS = d.VIEWERS_TOTAL.name
ACTIVE = d.ACTIVE_STREAMS.name
INFO = d.STREAM_INFO.name
# A tiny picture: the broadcasters are load on a 2-core machine, not what is measured.
PORT_ATTEMPTS = 4
SPEC = BroadcasterSpec("chaos", 160, 96, fps=10, video_kbps=100, viewers=0)


@dataclass(frozen=True)
class Timings:
    """Short service timings so that every fault resolves in seconds (same for all)."""

    presence_ttl: float = 2.0
    stream_grace: float = 3.0
    ingest_timeout: float = 10.0
    ws_ping: float = 2.0
    viewer_update: float = 1.0
    shutdown_grace: float = 5.0
    push_reconnect: str = "1s"


@dataclass
class Slot:
    """A replica's place: fixed ports (like a pod IP), successive processes."""

    index: int
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    ingest_port: int = field(default_factory=free_port)
    replica_id: str = ""
    child: Child | None = None
    incarnation: int = 0

    @property
    def key(self) -> str:
        """The ledger key of the current incarnation."""
        return f"r{self.index}#{self.incarnation}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.alive()

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid


@dataclass
class Broadcast:
    """One ffmpeg broadcaster and its stream, with the harness's own clock of it."""

    stream_id: str
    child: Child
    visible_at: float = 0.0
    stopped_at: float = 0.0


class World:
    """Everything one scenario starts; use as ``async with World(...) as world``."""

    def __init__(
        self,
        name: str,
        *,
        replicas: int = 2,
        redis: str = "single",
        timings: Timings | None = None,
        run_root: Path | None = None,
        trusted_peers: str = "127.0.0.1/32,::1/128",
        start: bool = True,
    ) -> None:
        self.name = name
        self.timings = timings or Timings()
        root = run_root or Path(tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-", dir=root))
        self.supervisor = Supervisor(self.run_dir)
        self.redis_kind = redis
        self.redis: RedisServer | None = None
        self.cluster: RedisClusterServer | None = None
        self.slots = [Slot(i) for i in range(replicas)]
        self.trusted_peers = trusted_peers
        self._start_replicas = start
        self.ingest_lb = Balancer("ingest")
        self.http_lb = Balancer("callbacks")
        self.ledger = Ledger()
        self.fleet: JsonChild | None = None
        self.probe: JsonChild | None = None
        self.nginx: NginxProcess | None = None
        self._nginx_stack = contextlib.ExitStack()
        self._http = httpx.AsyncClient(timeout=5)
        self.rss_peak: dict[str, int] = {}
        self._rss_task: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> World:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _start(self) -> None:
        await asyncio.to_thread(self._start_redis)
        await self.ingest_lb.start()
        await self.http_lb.start()
        self.fleet = await asyncio.to_thread(JsonChild, "chaos._viewer_fleet", "127.0.0.1")
        await asyncio.to_thread(self.fleet.reply, 30)
        self.probe = await asyncio.to_thread(JsonChild, "chaos._probe", "127.0.0.1")
        await asyncio.to_thread(self.probe.reply, 30)
        if self._start_replicas:
            await asyncio.gather(*(self.start_replica(slot) for slot in self.slots))
            await self.start_rest()

    async def start_rest(self) -> None:
        """What follows the replicas: background scrapes, RSS watch, nginx. Called by
        the world itself unless it was made with ``start=False`` (the scenario then
        starts its replicas its own way, then calls this)."""
        self.ledger.start()
        self._rss_task = asyncio.create_task(self._watch_rss())
        await asyncio.to_thread(self.start_nginx)

    def _start_redis(self) -> None:
        if self.redis_kind == "cluster":
            self.cluster = RedisClusterServer(masters=3, replicas=1)
            self.cluster.start()
        else:
            self.redis = RedisServer()
            self.redis.start()

    @property
    def redis_url(self) -> str:
        if self.cluster is not None:
            return self.cluster.url
        assert self.redis is not None
        return self.redis.url

    async def close(self) -> None:
        """Stop everything this world started (idempotent)."""
        if self._rss_task is not None:
            self._rss_task.cancel()
        for child in (self.fleet, self.probe):
            if child is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(child.stop)
        self.fleet = self.probe = None
        self._nginx_stack.close()
        await asyncio.to_thread(self.supervisor.stop_all)
        await self.ledger.close()
        await self.ingest_lb.stop()
        await self.http_lb.stop()
        await self._http.aclose()
        if self.redis is not None:
            self.redis.stop()
            self.redis.cleanup()
            self.redis = None
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
        with contextlib.suppress(Exception):
            self.supervisor.close()
        if os.environ.get("NOVA_CHAOS_KEEP_LOGS") != "1":
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # --- replicas ---------------------------------------------------------------------

    def replica_env(self, slot: Slot) -> dict[str, str]:
        t = self.timings
        return {
            "NOVA_REGION": REGION,
            "NOVA_PRESENCE": "redis",
            "NOVA_REDIS_URL": self.redis_url,
            "NOVA_PUBLISH_SECRET": SECRET,
            "NOVA_HOST": "127.0.0.1",
            "NOVA_PORT": str(slot.port),
            "NOVA_METRICS_HOST": "127.0.0.1",
            "NOVA_METRICS_PORT": str(slot.metrics_port),
            "NOVA_INGEST_PORT": str(slot.ingest_port),
            "NOVA_TRUSTED_PEERS": self.trusted_peers,
            "NOVA_PRESENCE_TTL": f"{t.presence_ttl:g}",
            "NOVA_STREAM_GRACE": f"{t.stream_grace:g}",
            "NOVA_INGEST_TIMEOUT": f"{t.ingest_timeout:g}",
            "NOVA_WS_PING_INTERVAL": f"{t.ws_ping:g}",
            "NOVA_WS_PING_TIMEOUT": f"{t.ws_ping:g}",
            "NOVA_VIEWER_UPDATE_INTERVAL": f"{t.viewer_update:g}",
            "NOVA_SHUTDOWN_GRACE": f"{t.shutdown_grace:g}",
            "NOVA_SERIES_LINGER": "30",
        }

    async def start_replica(self, slot: Slot, *, replica_id: str | None = None) -> None:
        """Start a new process in ``slot`` and put it behind the balancers once ready.

        ``replica_id``: an explicit ``NOVA_REPLICA_ID`` (the same as an earlier
        incarnation's to test that case); by default none is given (the service picks).
        """
        slot.replica_id = replica_id or ""
        slot.incarnation += 1
        argv = [str(VENV_BIN / "nova-streaming"), "serve", "--log-level=warning"]
        for attempt in range(PORT_ATTEMPTS):
            env = self.replica_env(slot)
            if replica_id is not None:
                env["NOVA_REPLICA_ID"] = replica_id
            try:
                slot.child = await asyncio.to_thread(
                    self.supervisor.start,
                    f"replica-{slot.key}",
                    argv,
                    env=env,
                    ready=http_ready(f"{slot.http}/readyz"),
                    ready_timeout=60,
                    log_name=f"replica-{slot.key}-{attempt}",
                )
                break
            except ProcessStartError as exc:
                # A free-picked port can be taken between the pick and the bind (by any
                # outgoing connection on the machine: same ephemeral range). A first
                # start moves to new ports; a restart waits for its own to free up.
                if "in use" not in str(exc) or attempt == PORT_ATTEMPTS - 1:
                    raise
                if slot.incarnation == 1:
                    slot.port, slot.metrics_port = free_port(), free_port()
                    slot.ingest_port = free_port()
                await asyncio.sleep(0.5)
        self.ledger.add(slot.key, slot.metrics_port)
        await self.ledger.scrape(slot.key)
        self._refresh_targets()
        await self._sync_children()

    def live_slots(self) -> list[Slot]:
        return [s for s in self.slots if s.alive]

    def _refresh_targets(self, leaving: Slot | None = None) -> None:
        live = [s for s in self.live_slots() if s is not leaving]
        self.ingest_lb.backends = [s.ingest_port for s in live]
        self.http_lb.backends = [s.port for s in live]

    async def _sync_children(self, leaving: Slot | None = None) -> None:
        ports = [s.port for s in self.live_slots() if s is not leaving]
        if self.fleet is not None:
            await asyncio.to_thread(self.fleet.request, {"cmd": "ports", "ports": ports})
        if self.probe is not None:
            await asyncio.to_thread(self.probe.request, {"cmd": "ports", "ports": ports})

    async def kill_replica(self, slot: Slot) -> None:
        """SIGKILL the slot's process (a crash): nothing of it runs any cleanup."""
        await self.ledger.scrape(slot.key)
        assert slot.child is not None
        os.kill(slot.pid, signal.SIGKILL)
        await asyncio.to_thread(self.supervisor.stop, slot.child, 5.0)
        self.ledger.retire(slot.key)
        self._refresh_targets()
        await self._sync_children()

    async def terminate_replica(self, slot: Slot, within: float = 30.0) -> float:
        """A rolling-update stop: out of the balancers (readiness), SIGTERM, scrape while
        it drains, wait for its exit; returns the seconds it took to exit."""
        assert slot.child is not None
        self._refresh_targets(leaving=slot)
        await self._sync_children(leaving=slot)
        t0 = time.monotonic()
        os.kill(slot.pid, signal.SIGTERM)
        popen = slot.child.popen
        assert popen is not None
        while popen.poll() is None and time.monotonic() - t0 < within:
            await self.ledger.scrape(slot.key)
            await asyncio.sleep(0.1)
        seconds = time.monotonic() - t0
        await asyncio.to_thread(self.supervisor.stop, slot.child, 5.0)
        self.ledger.retire(slot.key)
        return seconds

    async def _watch_rss(self) -> None:
        while True:
            for slot in self.live_slots():
                with contextlib.suppress(OSError, RuntimeError):
                    rss = rss_bytes(slot.pid)
                    self.rss_peak[slot.key] = max(self.rss_peak.get(slot.key, 0), rss)
            await asyncio.sleep(0.5)

    def rss_max(self) -> int:
        """The largest RSS any replica process reached so far (bytes)."""
        return max(self.rss_peak.values(), default=0)

    # --- nginx and broadcasters -------------------------------------------------------

    def start_nginx(self) -> None:
        """nginx-rtmp pushing to the ingest balancer, calling back through the other."""
        prefix = self.run_dir / "nginx"
        rtmp_port, stat_port = free_port(), free_port()
        config = NginxRtmpConfig(
            prefix=prefix,
            rtmp_port=rtmp_port,
            rtmp_listen="127.0.0.1",
            stat_port=stat_port,
            callback_base=f"http://127.0.0.1:{self.http_lb.port}",
            push_urls=(f"rtmp://127.0.0.1:{self.ingest_lb.port}/live",),
            push_reconnect=self.timings.push_reconnect,
            drop_idle_publisher="30s",
        )
        conf = write_nginx_config(config)
        self.nginx = self._nginx_stack.enter_context(run_nginx(prefix, conf, rtmp_port, stat_port))

    def stop_nginx(self) -> None:
        """Stop nginx (its whole process group): every publisher and push drops."""
        self._nginx_stack.close()
        self._nginx_stack = contextlib.ExitStack()
        self.nginx = None

    def restart_nginx_same_port(self) -> None:
        """nginx stopped and started again on the same RTMP port (a pod restart)."""
        assert self.nginx is not None
        prefix, rtmp_port, stat_port = self.nginx.prefix, self.nginx.rtmp_port, self.nginx.stat_port
        self.stop_nginx()
        conf = prefix / "conf" / "nginx.conf"
        if not conf.exists():
            conf = next(prefix.rglob("nginx.conf"))
        self.nginx = self._nginx_stack.enter_context(run_nginx(prefix, conf, rtmp_port, stat_port))

    @property
    def rtmp_base(self) -> str:
        assert self.nginx is not None
        return f"rtmp://127.0.0.1:{self.nginx.rtmp_port}/live"

    async def broadcast(self, stream_id: str | None = None, *, restart: bool = False) -> Broadcast:
        """Start an ffmpeg broadcaster; returns once the stream is active (API)."""
        sid = stream_id or str(uuid.uuid4())
        url = publish_url(self.rtmp_base, sid, publish_token(SECRET, sid))
        child = await asyncio.to_thread(
            self.supervisor.start, f"ffmpeg-{sid[:8]}", ffmpeg_argv(SPEC, url)
        )
        b = Broadcast(sid, child)
        await self.wait(lambda: self.stream_active(sid), within=30, what=f"stream {sid} active")
        b.visible_at = time.monotonic()
        # Viewers join once every replica knows the stream (a replica may answer from a
        # listing snapshot up to a second old).
        await self.wait(
            lambda: self.stream_active(sid, everywhere=True), within=30, what=f"{sid} everywhere"
        )
        return b

    async def restart_broadcaster(self, b: Broadcast) -> None:
        """Start the same stream's ffmpeg again (it died with nginx); same stream id."""
        url = publish_url(self.rtmp_base, b.stream_id, publish_token(SECRET, b.stream_id))
        b.child = await asyncio.to_thread(
            self.supervisor.start, f"ffmpeg-{b.stream_id[:8]}-again", ffmpeg_argv(SPEC, url)
        )

    async def stop_broadcast(self, b: Broadcast) -> None:
        """Stop ffmpeg as a broadcaster quits (SIGINT: it closes its RTMP connection)."""
        b.stopped_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(b.child.pid, signal.SIGINT)
        popen = b.child.popen
        assert popen is not None
        await self.wait(lambda: popen.poll() is not None, within=15, what="ffmpeg exit")
        await asyncio.to_thread(self.supervisor.stop, b.child, 5.0)

    # --- what the service says --------------------------------------------------------

    async def _get(self, url: str) -> httpx.Response | None:
        try:
            return await self._http.get(url)
        except httpx.HTTPError:
            return None

    async def stream_active(self, sid: str, *, everywhere: bool = False) -> bool:
        """Whether any (or every) live replica's API lists the stream as active."""
        found = []
        for slot in self.live_slots():
            response = await self._get(f"{slot.http}/api/v1/streams/{sid}")
            found.append(response is not None and response.status_code == 200)
        return all(found) if everywhere else any(found)

    async def stream_states(self, sid: str) -> set[str]:
        """The stream's ``state`` (active, interrupted) as the live replicas report it."""
        states = set()
        for slot in self.live_slots():
            response = await self._get(f"{slot.http}/api/v1/streams/{sid}")
            if response is not None and response.status_code == 200:
                states.add(str(response.json().get("state")))
            else:
                states.add("absent" if response is not None else "unreachable")
        return states

    async def api_viewers(self, sid: str) -> dict[str, int | None]:
        """The global viewer count of ``sid`` as each live replica's API reports it."""
        out: dict[str, int | None] = {}
        for slot in self.live_slots():
            response = await self._get(f"{slot.http}/api/v1/streams/{sid}")
            ok = response is not None and response.status_code == 200
            out[slot.key] = int(response.json()["viewers"]) if ok and response else None
        return out

    # --- viewers ----------------------------------------------------------------------

    async def fleet_cmd(self, command: Mapping[str, Any], wait: float = 120.0) -> dict[str, Any]:
        """Send one command to the viewer fleet and wait (at most ``wait`` s) for its reply."""
        assert self.fleet is not None
        return await asyncio.to_thread(self.fleet.request, dict(command), wait)

    async def probe_read(self, reset: bool = True) -> float:
        """Worst /healthz answer time (ms) over all replicas since the last reset."""
        assert self.probe is not None
        data = await asyncio.to_thread(self.probe.request, {"cmd": "read", "reset": reset})
        return max(data["worst_ms"].values(), default=0.0)

    async def converge(self, streams: list[str], within: float) -> tuple[bool, float, str]:
        """Wait until every live replica reports, for every stream, the number of viewers
        the fleet holds open (fleet settled). Returns (ok, seconds, last comparison)."""
        t0 = time.monotonic()
        last = ""
        while True:
            count = await self.fleet_cmd({"cmd": "count"})
            truth = {s: int(count["open"].get(s, 0)) for s in streams}
            seen = {s: await self.api_viewers(s) for s in streams}
            last = ", ".join(
                f"{s[:8]}: clients {truth[s]}, replicas {sorted(set(seen[s].values()), key=str)}"
                for s in streams
            )
            settled = count["pending"] == 0
            if settled and all(
                seen[s] and all(v == truth[s] for v in seen[s].values()) for s in streams
            ):
                return True, time.monotonic() - t0, last
            if time.monotonic() - t0 > within:
                return False, time.monotonic() - t0, last
            await asyncio.sleep(0.1)

    # --- waiting ----------------------------------------------------------------------

    @staticmethod
    async def wait(
        condition: Callable[[], Any | Awaitable[Any]], *, within: float, what: str
    ) -> Any:
        """Poll ``condition`` until truthy; ``TimeoutError`` naming ``what``."""
        deadline = time.monotonic() + within
        while True:
            result = condition()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"chaos: timed out after {within:g} s waiting for {what}")
            await asyncio.sleep(0.05)
