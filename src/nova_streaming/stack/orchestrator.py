"""``stack up``: the whole Nova system on one machine, under a run directory of its own.

Start order (each part waits until ready before the next): Redis (with ``replicas >
1``), the service replicas, nginx-rtmp, the webhook receiver, Alertmanager, Prometheus,
the dashboard preview, then the synthetic broadcasters and viewers. Every port is
checked free first (a taken port fails before anything starts, naming the port).
:meth:`LocalStack.close` stops everything started, and nothing else.

Example::

    >>> stack = LocalStack(StackOptions(run_dir=Path("run"), scenario="degraded"))
    >>> stack.up()            # doctest: +SKIP
    >>> print(stack.summary())  # doctest: +SKIP
    >>> stack.close()         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nova_streaming.stack.alertmanager import (
    RouteTiming,
    alertmanager_argv,
    load_alertmanager_yaml,
    render_alertmanager_config,
)
from nova_streaming.stack.broadcasters import BroadcasterFleet, paste_command
from nova_streaming.stack.ports import check_ports_free
from nova_streaming.stack.preview import Preview, start_preview
from nova_streaming.stack.prometheus import (
    PrometheusConfig,
    prometheus_argv,
    render_prometheus_config,
)
from nova_streaming.stack.receiver import Receiver, start_receiver
from nova_streaming.stack.scenario import Scenario, scenario
from nova_streaming.stack.supervisor import (
    ProcessStartError,
    Supervisor,
    http_ready,
    read_state,
    start_ticks,
    tcp_ready,
)
from nova_streaming.stack.viewers import ViewerSwarm

NGINX_BIN = "/usr/sbin/nginx"
REDIS_BIN = "/usr/bin/redis-server"
SERVICE_SHUTDOWN_GRACE = 8.0
"""Seconds a replica of the local stack may drain (the supervisor SIGKILLs at 10)."""
RTMP_APP = "live"
REQUIRED_BINARIES = {
    "prometheus": ("/usr/bin/prometheus", "prometheus"),
    "alertmanager": ("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager"),
    "nginx": (NGINX_BIN, "nginx"),
    "nginx rtmp module": ("/usr/lib/nginx/modules/ngx_rtmp_module.so", "libnginx-mod-rtmp"),
    "ffmpeg": ("/usr/bin/ffmpeg", "ffmpeg"),
    "redis": (REDIS_BIN, "redis-server"),
}


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


@dataclass(frozen=True)
class StackPorts:
    """Every port of the stack (loopback). Replica ``i`` uses ``http/metrics/ingest + i*step``.

    Example::

        >>> StackPorts().replica(1)
        (8180, 8181, 2036)
    """

    rtmp: int = 1935
    nginx_stat: int = 8082
    http: int = 8080
    metrics: int = 8081
    ingest: int = 1936
    prometheus: int = 9090
    alertmanager: int = 9093
    receiver: int = 9095
    preview: int = 3000
    redis: int = 6379
    replica_step: int = 100

    def replica(self, index: int) -> tuple[int, int, int]:
        """(http, metrics, ingest) ports of replica ``index`` (0-based)."""
        offset = index * self.replica_step
        return self.http + offset, self.metrics + offset, self.ingest + offset

    def roles(self, replicas: int, *, redis: bool, preview: bool) -> dict[str, int]:
        """Every port the stack will listen on, by role (for the up-front check)."""
        roles = {"nginx rtmp": self.rtmp, "nginx stat": self.nginx_stat}
        for index in range(replicas):
            http, metrics, ingest = self.replica(index)
            roles[f"service {index} http"] = http
            roles[f"service {index} metrics"] = metrics
            roles[f"service {index} ingest"] = ingest
        roles["prometheus"] = self.prometheus
        roles["alertmanager"] = self.alertmanager
        roles["receiver"] = self.receiver
        if preview:
            roles["preview"] = self.preview
        if redis:
            roles["redis"] = self.redis
        return roles


@dataclass(frozen=True)
class Timing:
    """Intervals of one run: real (default) or compressed (``fast``, for CI)."""

    scrape_interval: float
    scrape_timeout: float
    eval_interval: str
    for_scale: float
    rate_window: str
    route: RouteTiming | None
    ingest_timeout: float | None
    series_linger: float | None
    preview_refresh: float
    viewer_session: tuple[float, float]
    viewer_pause: tuple[float, float]

    @classmethod
    def real(cls) -> Timing:
        """The generated rules as committed; short local scrapes."""
        return cls(
            scrape_interval=15.0,
            scrape_timeout=10.0,
            eval_interval="15s",
            for_scale=1.0,
            rate_window="5m",
            route=None,
            ingest_timeout=None,
            series_linger=None,
            preview_refresh=10.0,
            viewer_session=(10.0, 60.0),
            viewer_pause=(2.0, 10.0),
        )

    @classmethod
    def fast(cls) -> Timing:
        """Time compressed about 20x: ``for: 5m`` becomes 15 s, rate windows 30 s."""
        return cls(
            scrape_interval=2.0,
            scrape_timeout=2.0,
            eval_interval="2s",
            for_scale=0.05,
            rate_window="30s",
            route=RouteTiming(group_wait=1.0, group_interval=2.0, repeat_interval=60.0),
            ingest_timeout=2.0,
            series_linger=10.0,
            preview_refresh=3.0,
            viewer_session=(3.0, 10.0),
            viewer_pause=(0.5, 2.0),
        )


@dataclass(frozen=True)
class StackOptions:
    """What ``stack up`` runs.

    ``k8s_dir`` holds the generated monitoring files (alertmanager.yml, dashboard JSON);
    when a file is missing there it is rendered in memory from ``nova_monitoring``.
    """

    run_dir: Path = Path("run")
    scenario: str = "healthy"
    replicas: int = 1
    ports: StackPorts = field(default_factory=StackPorts)
    fast: bool = False
    k8s_dir: Path = Path("k8s/monitoring")
    region: str = "local"
    preview: bool = True
    broadcasters: bool = True
    viewers: bool = True
    python: str = sys.executable
    ready_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 8:
            raise StackError(f"stack: --replicas must be 1..8, got {self.replicas}")

    @property
    def timing(self) -> Timing:
        """The run's intervals."""
        return Timing.fast() if self.fast else Timing.real()


def missing_binaries() -> list[str]:
    """Debian packages whose binary the stack needs and cannot find."""
    return sorted({pkg for path, pkg in REQUIRED_BINARIES.values() if not Path(path).exists()})


class LocalStack:
    """The running stack; see the module docstring."""

    def __init__(self, options: StackOptions, *, say: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.say = say or (lambda message: print(f"[stack] {message}", flush=True))
        self.run_dir = options.run_dir.resolve()
        self.scenario: Scenario = scenario(options.scenario, fast=options.fast)
        self.secret = secrets.token_hex(16)
        self.supervisor: Supervisor | None = None
        self.receiver: Receiver | None = None
        self.preview: Preview | None = None
        self.fleet: BroadcasterFleet | None = None
        self.swarm: ViewerSwarm | None = None
        self._core: list[str] = []

    # --- URLs -------------------------------------------------------------------------

    @property
    def rtmp_base(self) -> str:
        """Where broadcasters publish (append ``/<stream id>?token=...``)."""
        return f"rtmp://127.0.0.1:{self.options.ports.rtmp}/{RTMP_APP}"

    def urls(self) -> dict[str, str]:
        """Every URL a user may open, by role."""
        p = self.options.ports
        urls = {
            "prometheus": f"http://127.0.0.1:{p.prometheus}",
            "alertmanager": f"http://127.0.0.1:{p.alertmanager}",
            "receiver": f"http://127.0.0.1:{p.receiver}",
            "rtmp": self.rtmp_base,
            "nginx_stat": f"http://127.0.0.1:{p.nginx_stat}/stat",
        }
        if self.options.preview:
            urls["preview"] = f"http://127.0.0.1:{p.preview}/"
        for index in range(self.options.replicas):
            http, metrics, _ingest = p.replica(index)
            urls[f"service_{index}"] = f"http://127.0.0.1:{http}"
            urls[f"metrics_{index}"] = f"http://127.0.0.1:{metrics}/metrics"
        return urls

    # --- up ---------------------------------------------------------------------------

    def up(self) -> None:
        """Start every part and wait until each is ready; on failure stop what started."""
        missing = missing_binaries()
        if missing:
            raise StackError(
                "stack: missing system packages: " + " ".join(missing) + ". Install them with "
                "`./scripts/setup` (or `sudo apt-get install " + " ".join(missing) + "`)."
            )
        self._refuse_running_stack()
        redis = self.options.replicas > 1
        check_ports_free(
            self.options.ports.roles(
                self.options.replicas, redis=redis, preview=self.options.preview
            )
        )
        self._fresh_run_dir()
        self.supervisor = Supervisor(
            self.run_dir,
            progress=self.say,
            extra_state={"scenario": self.options.scenario, "urls": self.urls()},
        )
        try:
            if redis:
                self._start_redis()
            for index in range(self.options.replicas):
                self._start_service(index)
            self._start_nginx()
            self._start_receiver()
            self._start_alertmanager()
            self._start_prometheus()
            if self.options.preview:
                self._start_preview()
            if self.options.broadcasters:
                self._start_broadcasters()
            if self.options.viewers and self.fleet is not None:
                self._start_viewers()
        except BaseException:
            self.close()
            raise

    def _refuse_running_stack(self) -> None:
        state = read_state(self.run_dir)
        if not state:
            return
        orchestrator = state.get("orchestrator") or {}
        pid, ticks = orchestrator.get("pid"), orchestrator.get("ticks")
        if isinstance(pid, int) and ticks is not None and start_ticks(pid) == ticks:
            raise StackError(
                f"stack: a stack (pid {pid}) already runs from {self.run_dir}; stop it with "
                f"`{cli_command(self.options.python)} stack down --run-dir {self.options.run_dir}`"
            )

    def _fresh_run_dir(self) -> None:
        # Old TSDB/silences would show a previous run's data; logs are kept (appended).
        for name in ("prometheus", "alertmanager", "nginx", "redis"):
            shutil.rmtree(self.run_dir / name, ignore_errors=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "README").write_text(
            "Run directory of `nova-streaming stack up`: configs, data and logs/.\n"
            "Safe to delete when no stack runs (`nova-streaming stack down`).\n"
        )

    def _start(self, name: str, argv: list[str], ready: Callable[[], bool], **kw: Any) -> None:
        assert self.supervisor is not None
        started = time.monotonic()
        self.say(f"starting {name} ...")
        self.supervisor.start(
            name, argv, ready=ready, ready_timeout=self.options.ready_timeout, **kw
        )
        self._core.append(name)
        self.say(f"{name} ready ({time.monotonic() - started:.1f}s)")

    def _start_redis(self) -> None:
        data = self.run_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        port = self.options.ports.redis
        argv = [REDIS_BIN, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(data), "--daemonize", "no"]  # fmt: skip
        self._start("redis", argv, tcp_ready(port))

    def _start_service(self, index: int) -> None:
        http, metrics, ingest = self.options.ports.replica(index)
        timing = self.options.timing
        argv = [
            self.options.python, "-m", "nova_streaming.cli", "serve",
            "--host", "127.0.0.1", "--port", str(http),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics),
            "--ingest-port", str(ingest),
            "--region", self.options.region,
            "--replica-id", f"replica-{index}",
            # Stopped with SIGTERM (the supervisor), it drains: keep that below the
            # supervisor's SIGKILL timeout.
            "--shutdown-grace", f"{SERVICE_SHUTDOWN_GRACE:g}",
        ]  # fmt: skip
        if self.options.replicas > 1:
            argv += ["--presence", "redis",
                     "--redis-url", f"redis://127.0.0.1:{self.options.ports.redis}/0"]  # fmt: skip
        if timing.ingest_timeout is not None:
            argv += ["--ingest-timeout", f"{timing.ingest_timeout:g}"]
        if timing.series_linger is not None:
            argv += ["--series-linger", f"{timing.series_linger:g}"]
        self._start(
            f"service-{index}",
            argv,
            lambda: (
                http_ready(f"http://127.0.0.1:{http}/readyz")()
                and http_ready(f"http://127.0.0.1:{metrics}/metrics")()
            ),
            env={"NOVA_PUBLISH_SECRET": self.secret},
        )

    def _start_nginx(self) -> None:
        from nova_streaming.ingest.nginx_conf import NginxRtmpConfig, write_nginx_config

        prefix = self.run_dir / "nginx"
        p = self.options.ports
        http, _metrics, _ingest = p.replica(0)
        config = NginxRtmpConfig(
            prefix=prefix,
            rtmp_port=p.rtmp,
            rtmp_listen="127.0.0.1",
            app=RTMP_APP,
            callback_base=f"http://127.0.0.1:{http}",
            # One relay per stream = one owner (design section 3). With several replicas
            # the callbacks go to the first and the relay to the last, so the on_publish
            # authorization and the on_publish_done end cross replicas via the registry.
            push_urls=(f"rtmp://127.0.0.1:{p.replica(self.options.replicas - 1)[2]}/{RTMP_APP}",),
            stat_port=p.nginx_stat,
            # Longer than the ingest timeout: a silent publisher must time out in the
            # service (counted), not be dropped by nginx first.
            drop_idle_publisher="60s",
            daemon=False,
        )
        conf = write_nginx_config(config)
        argv = [NGINX_BIN, "-p", str(prefix), "-c", str(conf), "-e",
                str(prefix / "logs" / "error.log")]  # fmt: skip
        self._start("nginx", argv, tcp_ready(p.rtmp))

    def _start_receiver(self) -> None:
        self.say("starting receiver ...")
        self.receiver = start_receiver(self.options.ports.receiver)
        self.say(f"receiver ready ({self.receiver.url}/alerts)")

    def _generated(self, name: str) -> Path | None:
        path = self.options.k8s_dir / name
        return path if path.exists() else None

    def _start_alertmanager(self) -> None:
        assert self.receiver is not None
        directory = self.run_dir / "alertmanager"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        source = self._generated("alertmanager.yml")
        if source is not None:
            generated = load_alertmanager_yaml(source)
        else:
            from nova_monitoring.alertmanager import alertmanager_config
            from nova_monitoring.options import RenderOptions

            generated = alertmanager_config(RenderOptions())
        config = directory / "alertmanager.yml"
        config.write_text(
            render_alertmanager_config(
                generated, self.receiver.webhook_url, self.options.timing.route
            )
        )
        port = self.options.ports.alertmanager
        self._start(
            "alertmanager",
            alertmanager_argv(config, directory / "data", port),
            http_ready(f"http://127.0.0.1:{port}/-/ready"),
        )

    def rules_path(self) -> Path:
        """Where this run's rules file is rendered."""
        return self.run_dir / "prometheus" / "rules.yml"

    def _start_prometheus(self) -> None:
        from nova_monitoring.options import RenderOptions
        from nova_monitoring.render import render_rules_file
        from nova_streaming.stack._durations import duration

        timing = self.options.timing
        directory = self.run_dir / "prometheus"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        render_rules_file(
            self.rules_path(),
            RenderOptions(
                eval_interval=timing.eval_interval,
                for_scale=timing.for_scale,
                rate_window=timing.rate_window,
                scrape_interval=duration(timing.scrape_interval),
                scrape_timeout=duration(timing.scrape_timeout),
            ),
        )
        p = self.options.ports
        config = directory / "prometheus.yml"
        config.write_text(
            render_prometheus_config(
                PrometheusConfig(
                    metrics_targets=[
                        f"127.0.0.1:{p.replica(i)[1]}" for i in range(self.options.replicas)
                    ],
                    rule_files=[self.rules_path()],
                    alertmanager=f"127.0.0.1:{p.alertmanager}",
                    self_target=f"127.0.0.1:{p.prometheus}",
                    alertmanager_target=f"127.0.0.1:{p.alertmanager}",
                    scrape_interval=timing.scrape_interval,
                    scrape_timeout=timing.scrape_timeout,
                    evaluation_interval=timing.scrape_interval,
                )
            )
        )
        self._start(
            "prometheus",
            prometheus_argv(config, directory / "data", p.prometheus),
            http_ready(f"http://127.0.0.1:{p.prometheus}/-/ready"),
        )

    def dashboard_path(self) -> Path:
        """The dashboard JSON the preview reads (the generated file, else rendered)."""
        source = self._generated("grafana-streaming-dashboard.json")
        if source is not None:
            return source.resolve()
        from nova_monitoring.dashboard import dashboard_json

        path = self.run_dir / "grafana-streaming-dashboard.json"
        path.write_text(dashboard_json())
        return path

    def _start_preview(self) -> None:
        assert self.receiver is not None
        self.say("starting preview ...")
        self.preview = start_preview(
            self.options.ports.preview,
            dashboard_path=self.dashboard_path(),
            prometheus_url=f"http://127.0.0.1:{self.options.ports.prometheus}",
            receiver_url=self.receiver.url,
            refresh_seconds=self.options.timing.preview_refresh,
            rate_interval=self.options.timing.rate_window,
        )
        self.say(f"preview ready ({self.preview.url})")

    def _start_broadcasters(self) -> None:
        assert self.supervisor is not None
        self.fleet = BroadcasterFleet(
            self.supervisor,
            list(self.scenario.broadcasters),
            rtmp_base=self.rtmp_base,
            secret=self.secret,
        )
        self.fleet.start()
        names = ", ".join(spec.name for spec in self.scenario.broadcasters)
        self.say(f"broadcasters started ({self.options.scenario}): {names}")

    def _start_viewers(self) -> None:
        fleet = self.fleet
        assert fleet is not None
        bases = [
            f"ws://127.0.0.1:{self.options.ports.replica(i)[0]}"
            for i in range(self.options.replicas)
        ]
        timing = self.options.timing
        self.swarm = ViewerSwarm(
            bases,
            lambda: [(live.stream_id, live.spec.viewers) for live in fleet.streams()],
            session=timing.viewer_session,
            pause=timing.viewer_pause,
        )
        self.swarm.start()
        self.say(f"viewers started over {len(bases)} replica(s)")

    # --- while running ----------------------------------------------------------------

    def dead_parts(self) -> list[str]:
        """Core parts (not broadcasters) whose process has exited."""
        if self.supervisor is None:
            return []
        alive = {child.name for child in self.supervisor.children if child.alive()}
        return [name for name in self._core if name not in alive]

    def summary(self) -> str:
        """What to open and what to paste, printed once the stack is ready."""
        urls = self.urls()
        command, stream_id = paste_command(self.rtmp_base, self.secret)
        http = self.options.ports.replica(0)[0]
        cli = cli_command(self.options.python)
        run_dir_flag = (
            "" if self.options.run_dir == Path("run") else f" --run-dir {self.options.run_dir}"
        )
        lines = [
            "",
            f"Nova stack is up (scenario {self.options.scenario}"
            f"{', fast timing' if self.options.fast else ''}, "
            f"{self.options.replicas} replica(s)); run dir {self.run_dir}",
            "",
        ]
        if "preview" in urls:
            lines.append(f"  dashboard preview  {urls['preview']}")
        lines += [
            f"  Prometheus         {urls['prometheus']}  (alerts: {urls['prometheus']}/alerts)",
            f"  Alertmanager       {urls['alertmanager']}",
            f"  alerts received    {urls['receiver']}/alerts",
            f"  RTMP ingest        {urls['rtmp']}  (stats: {urls['nginx_stat']})",
        ]
        for index in range(self.options.replicas):
            lines.append(
                f"  service {index}          {urls[f'service_{index}']}/api/v1/streams  "
                f"metrics {urls[f'metrics_{index}']}"
            )
        lines += [
            "",
            "Publish your own stream (fresh stream ID, valid token):",
            f"  {command}",
            "Watch it (WebSocket):",
            f"  ws://127.0.0.1:{http}/ws/streams/{stream_id}",
            "",
            "Check the Integration Checklist:",
            f"  {cli} verify --prometheus {urls['prometheus']} "
            f"--alertmanager {urls['alertmanager']} --receiver {urls['receiver']} "
            f"--scenario {self.options.scenario} --replicas {self.options.replicas} "
            f"--service {urls['service_0']} --wait 600",
            "",
            f"Ctrl-C (or `{cli} stack down{run_dir_flag}` from another shell) stops everything.",
        ]
        return "\n".join(lines)

    def write_urls(self) -> None:
        """Record the URLs and the publish secret's token helper in the run dir."""
        (self.run_dir / "urls.json").write_text(json.dumps(self.urls(), indent=2) + "\n")

    # --- down -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop viewers, broadcasters, in-process servers and every child. Idempotent."""
        if self.swarm is not None:
            self.say("stopping viewers")
            self.swarm.stop()
            self.swarm = None
        if self.fleet is not None:
            self.say("stopping broadcasters")
            self.fleet.stop()
            self.fleet = None
        if self.preview is not None:
            self.preview.close()
            self.preview = None
        if self.supervisor is not None:
            self.supervisor.close()
            self.supervisor = None
        if self.receiver is not None:
            self.receiver.close()
            self.receiver = None
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / "urls.json").unlink()


def cli_command(python: str) -> str:
    """How to call ``nova-streaming`` from the current directory (printed in the summary).

    ``make run`` does not put the virtualenv on PATH, so a bare ``nova-streaming`` would
    not be found: the console script beside ``python`` is named by its path.

    Example::

        >>> cli_command("/nonexistent/bin/python")
        '/nonexistent/bin/python -m nova_streaming.cli'
    """
    script = Path(python).parent / "nova-streaming"
    if not script.exists():
        return f"{python} -m nova_streaming.cli"
    try:
        return str(script.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(script.absolute())


def with_ports(options: StackOptions, **ports: int) -> StackOptions:
    """``options`` with some ports changed.

    Example::

        >>> with_ports(StackOptions(), prometheus=19090).ports.prometheus
        19090
    """
    return replace(options, ports=replace(options.ports, **ports))


__all__ = [
    "LocalStack",
    "ProcessStartError",
    "StackError",
    "StackOptions",
    "StackPorts",
    "Timing",
    "missing_binaries",
    "with_ports",
]
