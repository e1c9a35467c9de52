"""The Containerfiles agree with the manifests and the service (images cannot be built or
run on these machines: no container engine can set rlimits or cgroups here).

Checked: pinned base images, the install step (the `service` extra only), the non-root
user the pods run as, the ports, the entrypoint (a real `nova-streaming` command), and
for the ingest the paths nginx is started with against the ConfigMap and emptyDir mounts
and the rendered nginx.conf; then real nginx tests that configuration with that argv.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from nova_monitoring import images
from nova_monitoring.ingest import nginx_config_text
from nova_streaming.cli import build_parser
from nova_streaming.settings import Settings
from nova_testing.kustomize import kustomize_build
from nova_testing.manifests import Resource, one

Instruction = tuple[str, str]


def parse_containerfile(path: Path) -> list[Instruction]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuations joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return instructions


def _all(instructions: list[Instruction], keyword: str) -> list[str]:
    return [rest for key, rest in instructions if key == keyword]


def _last(instructions: list[Instruction], keyword: str) -> str:
    found = _all(instructions, keyword)
    assert found, f"no {keyword}"
    return found[-1]


@pytest.fixture(scope="module")
def service_file(repo: Path) -> list[Instruction]:
    """images/service/Containerfile, parsed."""
    return parse_containerfile(repo / "images" / "service" / "Containerfile")


@pytest.fixture(scope="module")
def ingest_file(repo: Path) -> list[Instruction]:
    """images/ingest/Containerfile, parsed."""
    return parse_containerfile(repo / "images" / "ingest" / "Containerfile")


def _pod(k8s: Path, variant: str, name: str) -> Resource:
    template: Resource = one(kustomize_build(k8s / variant), "Deployment", name)["spec"]["template"]
    return template


def test_base_images_are_pinned(
    service_file: list[Instruction], ingest_file: list[Instruction]
) -> None:
    """FROM names an exact version tag (digits, not `latest` or a bare major) or a digest."""
    for instructions in (service_file, ingest_file):
        for base in _all(instructions, "FROM"):
            image = base.split()[0]
            assert "@sha256:" in image or re.search(r":\d+\.\d+(\.\d+)?[-\w.]*$", image), image


def test_service_install_step_is_the_service_extra_only(
    service_file: list[Instruction], repo: Path
) -> None:
    """The image installs the project with `pip install ".[service]"` and nothing else,
    and `service` is an extra the project declares."""
    installs = [r for r in _all(service_file, "RUN") if "pip install" in r]
    assert len(installs) == 1
    words = shlex.split(installs[0].split("&&")[0])
    assert words[words.index("install") + 1 :] == [".[service]"]
    extras = tomllib.loads((repo / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "service" in extras


def test_service_build_copies_only_the_project(service_file: list[Instruction]) -> None:
    """The image copies pyproject.toml, README.md and src/ and nothing else: the same
    build context the fresh-venv install test (tests/integration/packaging) installs
    from, so that test proves this image's install step."""
    copied = set()
    for arguments in _all(service_file, "COPY"):
        words = arguments.split()
        assert not any(w.startswith("--from") for w in words)
        copied.update(w.rstrip("/") for w in words[:-1])
    assert copied == {"pyproject.toml", "README.md", "src"}


def _user(instructions: list[Instruction]) -> tuple[int, int]:
    user, _, group = _last(instructions, "USER").partition(":")
    return int(user), int(group or user)


def test_service_image_user_ports_and_entrypoint_match_the_manifests(
    service_file: list[Instruction], k8s: Path
) -> None:
    """USER is the pods' runAsUser/runAsGroup (non-root); EXPOSE is the container ports and
    the settings' defaults; ENTRYPOINT is `nova-streaming serve`, a command the CLI has,
    and the Deployment overrides neither command nor args."""
    assert _user(service_file) == (images.SERVICE_UID, images.SERVICE_UID) != (0, 0)
    entrypoint = json.loads(_last(service_file, "ENTRYPOINT"))
    assert tuple(entrypoint) == images.SERVICE_ENTRYPOINT
    assert entrypoint[0] == "nova-streaming"
    assert build_parser().parse_args(entrypoint[1:]).command == "serve"
    exposed = {int(p) for p in _last(service_file, "EXPOSE").split()}
    defaults = Settings(replica_id="image-test")
    assert exposed == {defaults.port, defaults.metrics_port, defaults.ingest_port}
    for variant in ("single", "scaled"):
        pod = _pod(k8s, variant, "nova-streaming")
        security = pod["spec"]["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"]) == _user(service_file)
        (container,) = pod["spec"]["containers"]
        assert "command" not in container and "args" not in container
        assert {p["containerPort"] for p in container["ports"]} == exposed
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert mounts == {images.SERVICE_TMP_DIR}
        assert _last(service_file, "WORKDIR") in mounts, "the working directory is writable"


def test_ingest_image_matches_the_manifests_and_nginx_conf(
    ingest_file: list[Instruction], k8s: Path
) -> None:
    """Debian nginx + libnginx-mod-rtmp; USER is the pods' user; EXPOSE 1935 is the rtmp
    port; nginx's -c is the ConfigMap mount and key, -p the prefix of every path in the
    rendered nginx.conf, and the directories nginx writes are emptyDirs in the pod."""
    installs = " ".join(r for r in _all(ingest_file, "RUN") if "apt-get install" in r)
    assert {"nginx", "libnginx-mod-rtmp"} <= set(installs.split())
    assert _user(ingest_file) == (images.INGEST_UID, images.INGEST_UID)
    entrypoint = json.loads(_last(ingest_file, "ENTRYPOINT"))
    assert tuple(entrypoint) == images.INGEST_ENTRYPOINT
    args = dict(zip(entrypoint[1::2], entrypoint[2::2], strict=True))
    assert entrypoint[0] == "nginx"
    pod = _pod(k8s, "single", "nova-ingest")
    (container,) = pod["spec"]["containers"]
    assert pod["spec"]["securityContext"]["runAsUser"] == images.INGEST_UID
    assert "command" not in container and "args" not in container
    assert [p["containerPort"] for p in container["ports"]] == [
        int(p) for p in _last(ingest_file, "EXPOSE").split()
    ]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    config_dir, config_file = args["-c"].rsplit("/", 1)
    assert mounts[config_dir]["configMap"]["items"] == [{"key": config_file, "path": config_file}]
    writable = {path for path, volume in mounts.items() if "emptyDir" in volume}
    assert writable == set(images.INGEST_WRITABLE_DIRS)
    prefix = args["-p"]
    conf = nginx_config_text()
    written = re.findall(r"^\s*(?:pid|error_log|access_log|\w+_temp_path) (/\S+?)[ ;]", conf, re.M)
    assert written, "no path found in nginx.conf"
    for path in [*written, args["-e"]]:
        assert any(path.startswith(d + "/") for d in writable), path
        assert path.startswith(prefix + "/")
    made = " ".join(_all(ingest_file, "RUN"))
    for directory in (*images.INGEST_WRITABLE_DIRS, config_dir):
        assert directory in made, f"the image does not create {directory}"


def test_nginx_accepts_the_config_with_the_image_argv(tmp_path: Path) -> None:
    """Real nginx + libnginx-mod-rtmp tests the rendered nginx.conf started exactly as the
    image's ENTRYPOINT starts it, with the image's directories moved under a scratch
    directory and `user-service` (cluster DNS, which nginx resolves at load) read as
    127.0.0.1; only the writable directories exist and are writable."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx not installed: run scripts/setup")

    def moved(path: str) -> str:
        return str(tmp_path) + path

    (config_dir := Path(moved(images.INGEST_CONFIG_DIR))).mkdir(parents=True)
    for directory in images.INGEST_WRITABLE_DIRS:
        Path(moved(directory)).mkdir(parents=True)
    text = nginx_config_text(moved(images.INGEST_PREFIX)).replace("user-service", "127.0.0.1")
    (config_dir / images.INGEST_CONFIG_FILE).write_text(text)
    argv = [nginx, "-t"]
    argv += [moved(v) if v.startswith("/") else v for v in images.INGEST_ENTRYPOINT[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
