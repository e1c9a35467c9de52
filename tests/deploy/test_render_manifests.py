"""`nova-monitoring render --manifests`: one command renders all of k8s/, with only the
monitoring extra; options are validated; sizes follow the benchmark figures."""

from __future__ import annotations

import doctest
import importlib
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nova_monitoring import sizing
from nova_monitoring.cli import main
from nova_monitoring.deploy_options import DeployOptions
from nova_monitoring.options import RenderOptionsError
from nova_streaming.settings import Settings
from nova_testing.kustomize import kustomize_build
from nova_testing.manifests import one


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_one_command_renders_all_of_k8s(tmp_path: Path, k8s: Path) -> None:
    """`render --manifests --output DIR` with defaults writes exactly the committed k8s/."""
    assert main(["render", "--manifests", "--output", str(tmp_path)]) == 0
    assert _tree(tmp_path) == _tree(k8s)
    assert {p.split("/")[0] for p in _tree(k8s)} == {"monitoring", "single", "scaled"}


def test_cli_workload_options_reach_the_manifests(tmp_path: Path) -> None:
    """Pod CIDR, connections, images, ingest type and the metrics token land where they belong."""
    argv = ["render", "--manifests", "--output", str(tmp_path), "--namespace", "streaming"]
    argv += ["--pod-cidr", "10.244.0.0/16,192.168.10.0/24", "--max-connections", "1000"]
    argv += ["--service-image", "reg.example/nova:1.2.3", "--ingest-service-type", "ClusterIP"]
    argv += ["--metrics-token-secret", "nova-metrics-token", "--replicas", "3"]
    assert main(argv) == 0
    single = kustomize_build(tmp_path / "single")
    deployment = one(single, "Deployment", "nova-streaming")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NOVA_TRUSTED_PEERS"]["value"] == "10.244.0.0/16,192.168.10.0/24"
    assert (
        len(
            Settings.from_env(
                {"NOVA_TRUSTED_PEERS": env["NOVA_TRUSTED_PEERS"]["value"]}
            ).trusted_peers
        )
        == 2
    )
    assert env["NOVA_MAX_CONNECTIONS"]["value"] == "1000"
    assert env["NOVA_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "nova-metrics-token"
    assert container["image"] == "reg.example/nova:1.2.3"
    assert deployment["metadata"]["namespace"] == "streaming"
    assert one(single, "Service", "nova-ingest")["spec"]["type"] == "ClusterIP"
    hpa = one(kustomize_build(tmp_path / "scaled"), "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pod-cidr", "10.0.0.1/8"], "pod_cidr"),
        (["--pod-cidr", "10.0.0.0/8, 192.168.0.0/16"], "pod_cidr"),
        (["--service-image", "nova-streaming"], "service_image"),
        (["--replicas", "5", "--max-replicas", "2"], "max_replicas"),
        (["--publish-secret", "Bad_Name"], "publish_secret"),
        (["--only", "rules-file"], "--only"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid option stops the render before anything is written."""
    with pytest.raises(SystemExit) as stopped:
        main(["render", "--manifests", "--output", str(tmp_path / "out"), *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_deploy_options_validate() -> None:
    """DeployOptions refuses values that would render a broken manifest."""
    with pytest.raises(RenderOptionsError, match="ingest_service_type"):
        DeployOptions(ingest_service_type="Ingress")
    with pytest.raises(RenderOptionsError, match="redis"):
        DeployOptions(redis="sentinel")
    with pytest.raises(RenderOptionsError, match="region"):
        DeployOptions(region="EU West")


_BLOCKER = """
import importlib.abc, sys
BLOCKED = {"starlette", "uvicorn", "redis", "websockets", "httpx", "anyio", "h11"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"blocked: {name} (service extra)")
        return None
sys.meta_path.insert(0, Block())
from pathlib import Path
from nova_monitoring.cli import main
sys.exit(main(["render", "--manifests", "--output", sys.argv[1]]))
"""


def test_rendering_needs_only_the_monitoring_extra(tmp_path: Path, k8s: Path) -> None:
    """With every service dependency unimportable, the render (nginx.conf included, by
    the nginx-config renderer) still writes the committed k8s/."""
    result = subprocess.run(
        [sys.executable, "-c", _BLOCKER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path) == _tree(k8s)


def test_the_blocker_blocks(tmp_path: Path) -> None:
    """The import blocker above does stop a service import (so the test can fail)."""
    code = _BLOCKER.replace("from nova_monitoring.cli import main", "import nova_streaming.app")
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "blocked: starlette" in result.stderr


def _benchmarks(repo: Path) -> str:
    return (repo / "docs" / "benchmarks.md").read_text()


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def test_sizing_constants_cover_the_measured_figures(repo: Path) -> None:
    """Each constant the requests are computed from is at least what docs/benchmarks.md
    measured: memory per idle viewer at the largest level, idle RSS, receiver CPU per
    stream behind nginx, broadcast send loop per viewer, nginx worker CPU per stream."""
    bench = _benchmarks(repo)
    memory_rows = re.findall(
        r"^\| ([\d,]+) \| [\d.]+ MiB \| [\d.]+ KiB \| [\d.]+ MiB \| ([\d.]+) KiB \|", bench, re.M
    )
    viewers, per_viewer = max((_number(n), _number(k)) for n, k in memory_rows)
    assert viewers >= 10_000 and per_viewer <= sizing.VIEWER_KIB
    idle = re.search(r"Idle RSS \(no viewer\): bare [\d.]+ MiB, service ([\d.]+) MiB", bench)
    assert idle and _number(idle.group(1)) <= sizing.IDLE_SERVICE_MIB
    ingest_rows = re.findall(
        # The receiver's event loop is a column of its own (second, or last since the
        # perf branch moved it there); the columns read here keep their order.
        r"^\| ([\d,]+) \| (?:\w+ \| )?through nginx \| [^|]+\| [^|]+\| ([\d.]+) ms \|"
        r"(?: [^|]+\|){2} ([\d.]+) ms \|",
        bench,
        re.M,
    )
    assert ingest_rows
    for _, receiver_ms, nginx_ms in ingest_rows:
        assert _number(receiver_ms) <= sizing.RECEIVER_CPU_MS_PER_STREAM
        assert _number(nginx_ms) <= sizing.NGINX_CPU_MS_PER_STREAM
    broadcast = re.findall(
        r"^\| ([\d,]+) \| [\d.]+ ms \| [\d.]+ ms \| [\d.]+× \| [\d.]+ ms / ([\d.]+) ms \|",
        bench,
        re.M,
    )
    assert broadcast
    for count, send_ms in broadcast:
        assert _number(send_ms) / _number(count) <= sizing.BROADCAST_CPU_MS_PER_VIEWER


def test_requests_follow_the_arithmetic(k8s: Path) -> None:
    """memory = idle + NOVA_MAX_CONNECTIONS x per-viewer (limit 1.5x); cpu = streams x
    receiver CPU + viewers x one update a second; the rendered quantities are those."""
    options = DeployOptions()
    deployment = one(kustomize_build(k8s / "single"), "Deployment", "nova-streaming")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    connections = int(
        next(e["value"] for e in container["env"] if e["name"] == "NOVA_MAX_CONNECTIONS")
    )
    memory = sizing.IDLE_SERVICE_MIB + connections * sizing.VIEWER_KIB / 1024
    cpu = (
        options.streams_per_replica * sizing.RECEIVER_CPU_MS_PER_STREAM
        + connections * sizing.BROADCAST_CPU_MS_PER_VIEWER
    )
    assert container["resources"]["requests"] == {
        "memory": f"{math.ceil(memory)}Mi",
        "cpu": f"{math.ceil(cpu / 10) * 10}m",
    }
    assert container["resources"]["limits"]["memory"] == f"{math.ceil(memory * 1.5)}Mi"
    half = sizing.service_resources(DeployOptions(max_connections=connections // 2))
    full_mib = int(container["resources"]["requests"]["memory"].removesuffix("Mi"))
    assert int(half["requests"]["memory"].removesuffix("Mi")) < full_mib


@pytest.mark.parametrize(
    "module",
    [
        "deploy_options",
        "images",
        "ingest",
        "pod_security",
        "redis_presence",
        "sizing",
        "variants",
        "workloads",
        "render",
        "cli",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    """Every docstring example of the deployment modules runs and prints what it shows."""
    imported = importlib.import_module(f"nova_monitoring.{module}")
    result = doctest.testmod(imported)
    assert result.failed == 0
