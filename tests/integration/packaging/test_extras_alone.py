"""Each install works alone: the library (`pip install nova-streaming`), the `service`
extra (what the service image installs: `pip install .[service]`) and the `monitoring`
extra, each in a fresh virtualenv with nothing else (no system site-packages, not the
test's own environment). Their commands run; a command whose extra is missing exits 3
with one line naming the extra to install.

The build context is what the service image's Containerfile copies (its ``COPY``
lines, read from images/service/Containerfile: pyproject.toml, README.md, src/), in a
scratch directory, so pip's in-tree build leaves nothing in the worktree; the
``[service]`` venv runs the Containerfile's own install target. pip's cache is used.
One venv per extra, built once for this module.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nova_testing.ports import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
CONTAINERFILE = ROOT / "images" / "service" / "Containerfile"
SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
MISSING_EXTRA_EXIT = 3


class Venv:
    """A fresh virtualenv with the project installed as ``nova-streaming[<extra>]``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / "bin"

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a program of the venv (``nova-streaming``, ``python``...), NOVA_ unset."""
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def clean_env() -> dict[str, str]:
    """The environment without NOVA_ settings and without this test's virtualenv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_")}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return env


def containerfile_copies() -> list[tuple[list[str], str]]:
    """The service Containerfile's ``COPY <sources...> <dest>`` lines."""
    copies: list[tuple[list[str], str]] = []
    for line in CONTAINERFILE.read_text().splitlines():
        words = line.split()
        if words and words[0] == "COPY" and not any(w.startswith("--") for w in words):
            copies.append((words[1:-1], words[-1]))
    return copies


def test_the_image_installs_the_service_extra_from_what_it_copies() -> None:
    """The image's install step is ``pip install ".[service]"`` on the copied project
    (what the ``service`` venv below reproduces)."""
    text = CONTAINERFILE.read_text()
    assert 'pip install ".[service]"' in text
    copied = {source for sources, _dest in containerfile_copies() for source in sources}
    assert {"pyproject.toml", "README.md", "src"} <= copied


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the image build copies (the Containerfile's COPY lines), nothing else."""
    context = tmp_path_factory.mktemp("context")
    for sources, dest in containerfile_copies():
        for source in sources:
            origin = ROOT / source
            target = context / dest / source if dest.endswith("/") else context / dest
            if origin.is_dir():
                shutil.copytree(
                    origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
    return context


def make_venv(base: Path, context: Path, extra: str | None) -> Venv:
    """``python -m venv`` then ``pip install <context>[extra]``; fails with pip's output."""
    path = base / (extra or "library")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, env=clean_env())
    venv = Venv(path)
    target = str(context) + (f"[{extra}]" if extra else "")
    result = venv.run("python", "-m", "pip", "install", "--quiet", target, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, build_context: Path) -> Venv:
    return make_venv(tmp_path_factory.mktemp("venvs"), build_context, None)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, build_context: Path) -> Venv:
    return make_venv(tmp_path_factory.mktemp("venvs"), build_context, "service")


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory, build_context: Path) -> Venv:
    return make_venv(tmp_path_factory.mktemp("venvs"), build_context, "monitoring")


def importable(venv: Venv, module: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return venv.run("python", "-c", probe).returncode == 0


def assert_needs_extra(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == MISSING_EXTRA_EXIT, result.stdout + result.stderr
    assert result.stderr.strip() == message
    assert "Traceback" not in result.stderr


LIBRARY_SCRIPT = """
import sys, urllib.request
from prometheus_client import CollectorRegistry
from streaming_metrics import StreamingMetrics, start_metrics_server
from streaming_metrics import helpers

registry = CollectorRegistry()
metrics = StreamingMetrics(registry, regions=["eu-west-1"])
metrics.record_stream_started(sys.argv[1], "eu-west-1")
metrics.record_rtmp_frame_latency("720p", 0.02)
helpers.record_broadcast_error("frame_drop")      # the guide's helpers, default instance
server = start_metrics_server(0, "127.0.0.1", registry)
try:
    print(urllib.request.urlopen(server.url, timeout=10).read().decode())
finally:
    server.close()
"""


def test_library_alone_serves_metrics(library: Venv, tmp_path: Path) -> None:
    """`pip install nova-streaming`: prometheus_client and nothing of the extras; the
    library records and serves /metrics; the service and monitoring commands say which
    extra they need; `token` and `nginx-config` need none."""
    assert importable(library, "prometheus_client")
    for module in ("starlette", "uvicorn", "redis", "yaml", "websockets"):
        assert not importable(library, module), module
    result = library.run("python", "-c", LIBRARY_SCRIPT, SID)
    assert result.returncode == 0, result.stderr
    assert 'nova_streaming_active_streams{region="eu-west-1"} 1.0' in result.stdout
    assert f'nova_streaming_stream_info{{region="eu-west-1",stream_id="{SID}"' in result.stdout
    assert 'nova_streaming_rtmp_ingestion_latency_seconds_count{quality="720p"} 1.0' in (
        result.stdout
    )

    assert_needs_extra(
        library.run("nova-streaming", "serve", "--help"),
        "nova-streaming: serve needs the 'service' extra: pip install 'nova-streaming[service]'",
    )
    assert_needs_extra(
        library.run("nova-streaming", "stack", "up"),
        "nova-streaming: stack needs the 'service' and 'monitoring' extras: "
        "pip install 'nova-streaming[service,monitoring]'",
    )
    assert_needs_extra(
        library.run("nova-monitoring", "render", "--output", "x"),
        "nova-monitoring needs the 'monitoring' extra: pip install 'nova-streaming[monitoring]'",
    )
    token = library.run("nova-streaming", "token", SID, "--secret", "s3cret")
    assert token.returncode == 0, token.stderr
    assert len(token.stdout.strip()) == 64
    conf = library.run("nova-streaming", "nginx-config", "--prefix", str(tmp_path / "nginx"))
    assert conf.returncode == 0, conf.stderr
    assert "push rtmp://127.0.0.1:1936/live" in (tmp_path / "nginx" / "nginx.conf").read_text()
    listing = library.run("nova-streaming", "--help")
    assert listing.returncode == 0, listing.stderr
    assert "pip install 'nova-streaming[service]'" in listing.stdout


@pytest.fixture
def served(service: Venv, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """`nova-streaming serve` of the service venv on free loopback ports; always stopped."""
    port, metrics_port, ingest_port = free_port(), free_port(), free_port()
    env = clean_env()
    env.update(
        NOVA_HOST="127.0.0.1",
        NOVA_PORT=str(port),
        NOVA_METRICS_HOST="127.0.0.1",
        NOVA_METRICS_PORT=str(metrics_port),
        NOVA_INGEST_PORT=str(ingest_port),
        NOVA_REGION="venv-test",
    )
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(service.bin / "nova-streaming"), "serve"], env=env, stdout=log, stderr=log
        )
    try:
        yield proc, port, metrics_port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_service_extra_serves(
    service: Venv, served: tuple[subprocess.Popen[bytes], int, int], tmp_path: Path
) -> None:
    """`pip install nova-streaming[service]` (the image's install step): `serve` answers
    /healthz and /metrics, `token` works, and `stack` (which also needs the monitoring
    extra) says so instead of crashing on a missing module."""
    proc, port, metrics_port = served
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, "serve never answered /healthz"
        time.sleep(0.1)
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'nova_streaming_active_streams{region="venv-test"} 0.0' in metrics

    token = service.run("nova-streaming", "token", SID, "--secret", "s3cret")
    assert token.returncode == 0, token.stderr
    assert len(token.stdout.strip()) == 64
    assert service.run("nova-streaming", "serve", "--help").returncode == 0
    assert_needs_extra(
        service.run("nova-streaming", "stack", "--help"),
        "nova-streaming: stack needs the 'monitoring' extra: "
        "pip install 'nova-streaming[monitoring]'",
    )
    assert_needs_extra(
        service.run("nova-streaming", "verify"),
        "nova-streaming: verify needs the 'monitoring' extra: "
        "pip install 'nova-streaming[monitoring]'",
    )
    assert not importable(service, "yaml")


def test_monitoring_extra_renders(monitoring: Venv, tmp_path: Path) -> None:
    """`pip install nova-streaming[monitoring]`: `nova-monitoring render` writes the
    committed rules and ServiceMonitor; `serve` says it needs the service extra."""
    out = tmp_path / "rendered"
    result = monitoring.run("nova-monitoring", "render", "--output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = {p.name: p for p in out.rglob("*") if p.is_file()}
    committed = ROOT / "k8s" / "monitoring"
    for name in ("prometheus-rules.yml", "servicemonitor-streaming.yaml"):
        assert rendered[name].read_text() == (committed / name).read_text(), name
    assert not importable(monitoring, "uvicorn")
    assert_needs_extra(
        monitoring.run("nova-streaming", "serve"),
        "nova-streaming: serve needs the 'service' extra: pip install 'nova-streaming[service]'",
    )
    assert monitoring.run("nova-streaming", "verify", "--help").returncode == 0
