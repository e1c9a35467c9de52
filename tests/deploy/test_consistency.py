"""The resources of each variant hang together, and agree with the service they deploy.

Selectors against labels (ServiceMonitor -> Service -> pods, HPA, PDB, NetworkPolicy),
port names, env names against the settings, secrets only by reference, the nginx
ConfigMap against `nova-streaming nginx-config`, the grace period against the drain.
"""

from __future__ import annotations

from pathlib import Path

from nova_monitoring.deploy_options import DeployOptions
from nova_monitoring.ingest import PUSH_URL, nginx_config_text
from nova_streaming.cli import main as nova_streaming_main
from nova_streaming.settings import SETTING_SPECS, Settings
from nova_testing.kustomize import kustomize_build
from nova_testing.manifests import (
    NON_DEFAULT_DEPLOY,
    NON_DEFAULT_OPTIONS,
    Resource,
    containers,
    one,
    pick,
    pod_templates,
)


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _service_pods(resources: list[Resource], service: Resource) -> list[Resource]:
    return [
        template
        for _, template in pod_templates(resources)
        if _matches(service["spec"]["selector"], template["metadata"]["labels"])
    ]


def test_service_monitor_selects_user_service_and_its_metrics_port(
    built: list[Resource],
) -> None:
    """The ServiceMonitor's selector matches exactly one Service, `user-service`, in its
    namespace, and that Service has the port the endpoint names (`metrics`)."""
    monitor = one(built, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    namespaces = monitor["spec"]["namespaceSelector"]["matchNames"]
    selected = [
        s
        for s in pick(built, "Service")
        if _matches(selector, s["metadata"]["labels"]) and s["metadata"]["namespace"] in namespaces
    ]
    assert [s["metadata"]["name"] for s in selected] == ["user-service"]
    (endpoint,) = monitor["spec"]["endpoints"]
    ports = {p["name"]: p for p in selected[0]["spec"]["ports"]}
    assert endpoint["port"] in ports
    assert ports["metrics"]["port"] == 8081
    assert {name: p["port"] for name, p in ports.items()} == {
        "http": 8080,
        "metrics": 8081,
        "ingest": 1936,
    }


def test_every_service_selects_pods_with_the_ports_it_targets(built: list[Resource]) -> None:
    """Each Service's selector matches one workload's pod template, and each of its named
    target ports is a container port of that pod."""
    for service in pick(built, "Service"):
        pods = _service_pods(built, service)
        assert len(pods) == 1, service["metadata"]["name"]
        ports = {p["name"]: p["containerPort"] for c in containers(pods[0]) for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)
            assert ports[port["targetPort"]] == port["port"]


def test_workload_selectors_match_their_pods(built: list[Resource]) -> None:
    """Deployment selectors match their templates; HPA, PDB and NetworkPolicies point at
    pods that exist; every resource lives in one namespace."""
    namespaces = {r["metadata"]["namespace"] for r in built}
    assert len(namespaces) == 1
    templates = pod_templates(built)
    for deployment in pick(built, "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert _matches(selector, deployment["spec"]["template"]["metadata"]["labels"])
        others = [n for n, t in templates if _matches(selector, t["metadata"]["labels"])]
        assert others == [deployment["metadata"]["name"]], "selectors overlap"
    for hpa in pick(built, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        one(built, target["kind"], target["name"])
    for budget in pick(built, "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        matched = [n for n, t in templates if _matches(selector, t["metadata"]["labels"])]
        assert matched == ["nova-streaming"]
    for policy in pick(built, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert [n for n, t in templates if _matches(selector, t["metadata"]["labels"])]
        for rule in policy["spec"]["ingress"]:
            for peer in rule.get("from", []):
                peer_selector = peer["podSelector"]["matchLabels"]
                assert [n for n, t in templates if _matches(peer_selector, t["metadata"]["labels"])]


def _service_container(resources: list[Resource]) -> Resource:
    deployment = one(resources, "Deployment", "nova-streaming")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _literal_env(container: Resource) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_env_names_exist_in_the_settings_and_values_parse(built: list[Resource]) -> None:
    """Every NOVA_ variable is a setting the service reads; the literal values pass the
    service's own validation; the container ports are the settings' ports."""
    known = {spec.env for spec in SETTING_SPECS}
    container = _service_container(built)
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names))
    assert set(names) <= known, set(names) - known
    settings = Settings.from_env(_literal_env(container))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "http": settings.port,
        "metrics": settings.metrics_port,
        "ingest": settings.ingest_port,
    }


def test_presence_trusted_peers_and_capacity_follow_the_options(
    k8s: Path, non_default_k8s: Path
) -> None:
    """single: memory presence; scaled: Redis (in-cluster URL, or the Secret); the pod
    network is NOVA_TRUSTED_PEERS; NOVA_MAX_CONNECTIONS is the option."""
    defaults = DeployOptions()
    single = _service_container(kustomize_build(k8s / "single"))
    scaled = _service_container(kustomize_build(k8s / "scaled"))
    assert _literal_env(single)["NOVA_PRESENCE"] == "memory"
    assert "NOVA_REDIS_URL" not in {e["name"] for e in single["env"]}
    scaled_env = _literal_env(scaled)
    assert scaled_env["NOVA_PRESENCE"] == "redis"
    redis_service = one(kustomize_build(k8s / "scaled"), "Service", "nova-redis")
    assert scaled_env["NOVA_REDIS_URL"] == (
        f"redis://nova-redis.{redis_service['metadata']['namespace']}.svc:"
        f"{redis_service['spec']['ports'][0]['port']}/0"
    )
    for container, deploy in ((single, defaults), (scaled, defaults)):
        env = _literal_env(container)
        assert env["NOVA_TRUSTED_PEERS"] == deploy.pod_cidr
        assert env["NOVA_MAX_CONNECTIONS"] == str(deploy.max_connections)
    external = _service_container(kustomize_build(non_default_k8s / "scaled"))
    env = {e["name"]: e for e in external["env"]}
    assert env["NOVA_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": NON_DEFAULT_DEPLOY.redis_url_secret,
        "key": NON_DEFAULT_DEPLOY.redis_url_secret_key,
    }
    assert env["NOVA_TRUSTED_PEERS"]["value"] == "10.42.0.0/16"
    assert env["NOVA_REGION"]["value"] == "eu-west-1"


def test_secrets_are_only_referenced(built: list[Resource], tree: Path) -> None:
    """No Secret is rendered and no secret value is written: the publish secret (always),
    the metrics token (when the option is set) and an external Redis URL come from
    secretKeyRef; the ServiceMonitor's bearer token reads the same Secret key as the
    service."""
    assert not pick(built, "Secret")
    container = _service_container(built)
    env = {e["name"]: e for e in container["env"]}
    for name in ("NOVA_PUBLISH_SECRET", "NOVA_METRICS_TOKEN"):
        if name in env:
            assert set(env[name]) == {"name", "valueFrom"}, name
    assert "secretKeyRef" in env["NOVA_PUBLISH_SECRET"]["valueFrom"]
    monitor = one(built, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    if "NOVA_METRICS_TOKEN" in env:
        reference = env["NOVA_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert endpoint["authorization"]["type"] == "Bearer"
        assert endpoint["authorization"]["credentials"] == reference
        assert reference["name"] == NON_DEFAULT_OPTIONS.metrics_token_secret
    else:
        assert "authorization" not in endpoint
    if "NOVA_REDIS_URL" in env and "valueFrom" in env["NOVA_REDIS_URL"]:
        assert set(env["NOVA_REDIS_URL"]) == {"name", "valueFrom"}


def test_nginx_configmap_is_what_nginx_config_writes(tmp_path: Path, k8s: Path) -> None:
    """`nova-streaming nginx-config` with the cluster's service URL and push target writes
    the same nginx.conf the ConfigMap holds (same prefix), and the committed ConfigMap is
    that text for the image's prefix."""
    prefix = tmp_path / "nginx"
    argv = ["nginx-config", "--prefix", str(prefix)]
    argv += ["--service-url", "http://user-service:8080", "--push", PUSH_URL]
    assert nova_streaming_main(argv) == 0
    assert (prefix / "nginx.conf").read_text() == nginx_config_text(str(prefix))
    configmap = one(kustomize_build(k8s / "single"), "ConfigMap", "nova-ingest-nginx")
    text = configmap["data"]["nginx.conf"]
    assert text == nginx_config_text()
    assert "push rtmp://user-service:1936/live;" in text
    assert "on_publish http://user-service:8080/rtmp/on_publish;" in text
    assert "on_publish_done http://user-service:8080/rtmp/on_publish_done;" in text
    assert "listen 1935;" in text


def test_nginx_callbacks_and_push_reach_user_service_ports(built: list[Resource]) -> None:
    """The hosts and ports nginx.conf uses are `user-service`'s http and ingest ports."""
    text = one(built, "ConfigMap", "nova-ingest-nginx")["data"]["nginx.conf"]
    ports = {p["name"]: p["port"] for p in one(built, "Service", "user-service")["spec"]["ports"]}
    assert f"push rtmp://user-service:{ports['ingest']}/live;" in text
    assert f"on_publish http://user-service:{ports['http']}/" in text


def test_termination_grace_covers_the_drain(built: list[Resource]) -> None:
    """terminationGracePeriodSeconds exceeds the preStop pause plus NOVA_SHUTDOWN_GRACE
    (the service's drain, read from the settings the env gives), so the kubelet never
    SIGKILLs a replica that is still handing its viewers and streams over."""
    spec = one(built, "Deployment", "nova-streaming")["spec"]["template"]["spec"]
    container = _service_container(built)
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    settings = Settings.from_env(_literal_env(container))
    assert "NOVA_SHUTDOWN_GRACE" in _literal_env(container)
    assert settings.shutdown_grace > 0
    assert spec["terminationGracePeriodSeconds"] > pause + settings.shutdown_grace
