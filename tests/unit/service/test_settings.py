"""Settings: defaults of design section 7, env parsing, flag overrides, named errors."""

from __future__ import annotations

import ipaddress

import pytest

from nova_streaming.settings import SETTING_SPECS, Settings, SettingsError


def test_defaults_match_the_design_table() -> None:
    """With no environment the defaults are design section 7's."""
    s = Settings.from_env({})
    assert (s.region, s.presence, s.redis_url) == ("local", "memory", "redis://127.0.0.1:6379/0")
    assert s.publish_secret is None and s.metrics_token is None
    assert (s.host, s.port, s.metrics_host, s.metrics_port) == ("0.0.0.0", 8080, "0.0.0.0", 8081)
    assert s.ingest_port == 1936
    assert s.trusted_peers == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    assert (s.max_connections, s.max_tracked_streams) == (20000, 10000)
    assert (s.ingest_timeout, s.presence_ttl) == (10.0, 15.0)
    assert s.replica_id


def test_every_design_variable_is_read() -> None:
    """Every NOVA_ variable of the design table is a setting with a matching flag."""
    envs = {spec.env for spec in SETTING_SPECS}
    design = (
        "NOVA_REGION",
        "NOVA_PRESENCE",
        "NOVA_REDIS_URL",
        "NOVA_PUBLISH_SECRET",
        "NOVA_HOST",
        "NOVA_PORT",
        "NOVA_METRICS_HOST",
        "NOVA_METRICS_PORT",
        "NOVA_METRICS_TOKEN",
        "NOVA_INGEST_PORT",
        "NOVA_TRUSTED_PEERS",
        "NOVA_MAX_CONNECTIONS",
        "NOVA_MAX_TRACKED_STREAMS",
        "NOVA_INGEST_TIMEOUT",
        "NOVA_PRESENCE_TTL",
    )
    for name in design:
        assert name in envs
    for spec in SETTING_SPECS:
        assert spec.flag == "--" + spec.env.removeprefix("NOVA_").lower().replace("_", "-")


def test_environment_values_are_parsed() -> None:
    """Values from the environment are parsed into typed fields."""
    s = Settings.from_env(
        {
            "NOVA_REGION": "eu-west-1",
            "NOVA_PRESENCE": "redis",
            "NOVA_REDIS_URL": "redis://cache:6380/2",
            "NOVA_PUBLISH_SECRET": " s3cret ",
            "NOVA_PORT": "9000",
            "NOVA_TRUSTED_PEERS": "10.0.0.0/8, ::1",
            "NOVA_PRESENCE_TTL": "2.5",
        }
    )
    assert s.region == "eu-west-1" and s.presence == "redis"
    assert s.redis_url == "redis://cache:6380/2"
    assert s.publish_secret == "s3cret"
    assert s.port == 9000
    assert s.trusted_peers == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1"))
    assert s.presence_ttl == 2.5


def test_flags_override_the_environment() -> None:
    """A CLI flag value wins over its environment variable."""
    s = Settings.from_env({"NOVA_PORT": "9000", "NOVA_REGION": "a"}, {"port": "9100"})
    assert (s.port, s.region) == (9100, "a")


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("NOVA_PORT", "abc", "NOVA_PORT: must be an integer 1-65535, got 'abc'"),
        ("NOVA_METRICS_PORT", "70000", "NOVA_METRICS_PORT: must be an integer 1-65535"),
        ("NOVA_PRESENCE", "etcd", "NOVA_PRESENCE: must be one of memory, redis, got 'etcd'"),
        ("NOVA_REDIS_URL", "http://x", "NOVA_REDIS_URL: must be a redis://"),
        ("NOVA_REGION", "EU West", "NOVA_REGION: must match"),
        ("NOVA_MAX_CONNECTIONS", "0", "NOVA_MAX_CONNECTIONS: must be a positive integer"),
        ("NOVA_PRESENCE_TTL", "nan", "NOVA_PRESENCE_TTL: must be a number of seconds > 0"),
        ("NOVA_INGEST_TIMEOUT", "-1", "NOVA_INGEST_TIMEOUT: must be a number of seconds > 0"),
        ("NOVA_TRUSTED_PEERS", "10.0.0.0/33", "NOVA_TRUSTED_PEERS: must be a comma-separated"),
        ("NOVA_REPLICA_ID", "a b", "NOVA_REPLICA_ID: must match"),
        ("NOVA_PORT", "0", "NOVA_PORT: must be an integer 1-65535, got '0'"),
        ("NOVA_TRUSTED_PEERS", "", "NOVA_TRUSTED_PEERS: must name at least one network"),
        ("NOVA_TRUSTED_PEERS", " , ,", "NOVA_TRUSTED_PEERS: must name at least one network"),
        ("NOVA_TRUSTED_PEERS", "10.0.0.0/8,nope", "NOVA_TRUSTED_PEERS: must be a comma-sep"),
        ("NOVA_WS_PING_TIMEOUT", "0", "NOVA_WS_PING_TIMEOUT: must be a number of seconds > 0"),
        ("NOVA_SERIES_LINGER", "-0.5", "NOVA_SERIES_LINGER: must be a number of seconds >= 0"),
        ("NOVA_PRESENCE_TTL", "1e300", "NOVA_PRESENCE_TTL: must be at most 86400 seconds"),
        ("NOVA_SERIES_LINGER", "inf", "NOVA_SERIES_LINGER: must be a number of seconds >= 0"),
    ],
)
def test_bad_values_name_the_setting(env: str, value: str, message: str) -> None:
    """A bad value raises SettingsError whose message starts with the setting's name."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({env: value})
    assert str(info.value).startswith(message)


def test_direct_construction_is_validated() -> None:
    """Settings built in code are validated like the environment."""
    with pytest.raises(SettingsError, match="NOVA_PORT"):
        Settings(port=0)
    with pytest.raises(SettingsError, match="NOVA_PRESENCE_TTL"):
        Settings(presence_ttl=0.1)
    assert Settings(presence_ttl=2.0).presence_sync_interval == 0.5
    assert Settings().presence_sync_interval == 1.0


def test_direct_construction_validates_trusted_peers() -> None:
    """Trusted peers given in code must be a non-empty tuple of IP networks."""
    with pytest.raises(SettingsError, match="NOVA_TRUSTED_PEERS: must name at least one"):
        Settings(trusted_peers=())
    with pytest.raises(SettingsError, match="NOVA_TRUSTED_PEERS: must be a comma-separated"):
        Settings(trusted_peers=("garbage",))  # type: ignore[arg-type]
    net = ipaddress.ip_network("10.0.0.0/8")
    assert Settings(trusted_peers=(net,)).trusted_peers == (net,)


def test_default_replica_id_is_new_at_every_start() -> None:
    """Default id ``<hostname>-<8 hex>``, different per process start (a restarted pod
    has the same hostname and often PID 1: ``hostname-pid`` repeated itself)."""
    import re
    import socket

    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).lstrip("_.-") or "host"
    first, second = Settings.from_env({}).replica_id, Settings.from_env({}).replica_id
    assert first != second
    for rid in (first, second):
        assert re.fullmatch(re.escape(host[:119]) + r"-[0-9a-f]{8}", rid), rid
    assert Settings.from_env({"NOVA_REPLICA_ID": "pod-0"}).replica_id == "pod-0"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://user:pw@redis.example:6380/2",
        "unix:///run/redis.sock",
        "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002",
        "rediss+cluster://user:secret@[::1]:7000",
        "redis+cluster://h1:7000/0",
    ],
)
def test_redis_url_single_node_and_cluster_forms(url: str) -> None:
    """NOVA_REDIS_URL accepts one node or a Redis Cluster (startup nodes)."""
    assert Settings.from_env({"NOVA_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("redis+cluster://h1", "NOVA_REDIS_URL: cluster nodes must be host:port"),
        ("redis+cluster://h1:7000,h2:x", "NOVA_REDIS_URL: cluster nodes must be host:port"),
        ("redis+cluster://h1:7000/3", "NOVA_REDIS_URL: a Redis Cluster has database 0 only"),
        ("redis+cluster://", "NOVA_REDIS_URL: must name at least one cluster node"),
        ("cluster://h1:7000", "NOVA_REDIS_URL: must be a redis://host[:port][/db] URL or"),
    ],
)
def test_bad_cluster_urls_name_the_setting(value: str, message: str) -> None:
    """A malformed cluster URL fails at start with a message naming NOVA_REDIS_URL."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"NOVA_REDIS_URL": value})
    assert str(info.value).startswith(message)
