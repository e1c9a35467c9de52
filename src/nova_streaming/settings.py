"""The service's one settings object: ``NOVA_`` environment plus matching CLI flags.

Every setting is parsed and validated up front; a bad value raises
:class:`SettingsError` whose message names the setting, so the service fails at start
with something an operator can act on instead of misbehaving later.

Example::

    >>> s = Settings.from_env({"NOVA_REGION": "eu-west-1", "NOVA_PORT": "9000"})
    >>> (s.region, s.port, s.presence)
    ('eu-west-1', 9000, 'memory')
    >>> Settings.from_env({"NOVA_PORT": "abc"})
    Traceback (most recent call last):
    ...
    nova_streaming.settings.SettingsError: NOVA_PORT: must be an integer 1-65535, got 'abc'
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, TypeVar

from nova_streaming.presence.redis_url import parse_redis_url
from streaming_metrics.definitions import LABEL_VALUE_PATTERN

__all__ = [
    "SETTING_SPECS",
    "SettingSpec",
    "Settings",
    "SettingsError",
    "default_replica_id",
    "process_environ",
]

PRESENCE_ENGINES: Final = ("memory", "redis")
MAX_SECONDS: Final = 86400.0
_REPLICA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_REDIS_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting has a bad value; the message starts with the setting's env name."""


def default_replica_id() -> str:
    """``<hostname>-<8 random hex>``, new at every process start.

    Not ``hostname-pid``: Kubernetes restarts a crashed container in the same pod (same
    hostname, often PID 1), and an id shared with the dead incarnation would keep its
    viewers and streams alive in Redis (design section 3, "Replica identity").
    """
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).lstrip("_.-") or "host"
    return f"{host[:119]}-{secrets.token_hex(4)}"


# --- parsers: raw string -> value, raising ValueError with the "must be ..." text ---


def _number(raw: str, convert: Callable[[str], N], valid: Callable[[N], bool], what: str) -> N:
    """``convert(raw)`` if it parses and is ``valid``; else "must be <what>, got <raw>"."""
    try:
        value = convert(raw.strip())
    except ValueError:
        raise ValueError(f"must be {what}, got {raw!r}") from None
    if not valid(value):
        raise ValueError(f"must be {what}, got {raw!r}")
    return value


def _port(raw: str) -> int:
    return _number(raw, int, lambda v: 1 <= v <= 65535, "an integer 1-65535")


def _positive_int(raw: str) -> int:
    return _number(raw, int, lambda v: v >= 1, "a positive integer")


def _seconds(raw: str) -> float:
    value = _number(raw, float, lambda v: math.isfinite(v) and v > 0, "a number of seconds > 0")
    return _at_most_a_day(value, raw)


def _non_negative_seconds(raw: str) -> float:
    value = _number(raw, float, lambda v: math.isfinite(v) and v >= 0, "a number of seconds >= 0")
    return _at_most_a_day(value, raw)


def _at_most_a_day(value: float, raw: str) -> float:
    # Every duration here becomes a timer or a Redis expiry in milliseconds; absurd
    # values (1e300) would only fail later, far from the setting that caused them.
    if value > MAX_SECONDS:
        raise ValueError(f"must be at most {MAX_SECONDS:.0f} seconds, got {raw!r}")
    return value


def _region(raw: str) -> str:
    value = raw.strip()
    if not LABEL_VALUE_PATTERN.fullmatch(value):
        raise ValueError(
            f"must match {LABEL_VALUE_PATTERN.pattern} (lowercase label value), got {raw!r}"
        )
    return value


def _presence(raw: str) -> str:
    value = raw.strip().lower()
    if value not in PRESENCE_ENGINES:
        raise ValueError(f"must be one of {', '.join(PRESENCE_ENGINES)}, got {raw!r}")
    return value


def _redis_url(raw: str) -> str:
    # One node (redis://host:6379/0) or a cluster (redis+cluster://h1:7000,h2:7001).
    return parse_redis_url(raw).url


def _host(raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"must be a host name or IP address, got {raw!r}")
    return value


def _optional_secret(raw: str) -> str | None:
    # Surrounding whitespace in a secret is almost always a copy-paste accident.
    value = raw.strip()
    return value or None


def _networks(raw: str) -> tuple[IpNetwork, ...]:
    nets: list[IpNetwork] = []
    for part in raw.split(","):
        item = part.strip()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"must be a comma-separated list of IP networks (CIDR), got {item!r}"
            ) from None
    return _some_networks(nets)


def _some_networks(nets: Sequence[object]) -> tuple[IpNetwork, ...]:
    # An empty list would silently refuse every callback and every push.
    if not nets:
        raise ValueError("must name at least one network (CIDR), got none")
    checked: list[IpNetwork] = []
    for net in nets:
        if not isinstance(net, ipaddress.IPv4Network | ipaddress.IPv6Network):
            raise ValueError(f"must be a comma-separated list of IP networks (CIDR), got {net!r}")
        checked.append(net)
    return tuple(checked)


def _replica_id(raw: str) -> str:
    value = raw.strip()
    if not _REPLICA_ID.fullmatch(value):
        raise ValueError(f"must match {_REPLICA_ID.pattern}, got {raw!r}")
    return value


def _redis_prefix(raw: str) -> str:
    value = raw.strip()
    if not _REDIS_PREFIX.fullmatch(value):
        raise ValueError(f"must match {_REDIS_PREFIX.pattern}, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """How one setting is read: its field, env name, CLI flag, parser and help."""

    field: str
    env: str
    flag: str
    parse: Callable[[str], Any]
    help: str


SETTING_SPECS: Final[tuple[SettingSpec, ...]] = (
    SettingSpec("region", "NOVA_REGION", "--region", _region, "region label of this replica"),
    SettingSpec("presence", "NOVA_PRESENCE", "--presence", _presence, "memory or redis"),
    SettingSpec(
        "redis_url",
        "NOVA_REDIS_URL",
        "--redis-url",
        _redis_url,
        "redis://host[:port][/db] (one node) or redis+cluster://host:port[,host:port...]",
    ),
    SettingSpec(
        "publish_secret",
        "NOVA_PUBLISH_SECRET",
        "--publish-secret",
        _optional_secret,
        "HMAC key for publish tokens (unset: publishing refused)",
    ),
    SettingSpec("host", "NOVA_HOST", "--host", _host, "HTTP/WebSocket bind address"),
    SettingSpec("port", "NOVA_PORT", "--port", _port, "HTTP/WebSocket port"),
    SettingSpec("metrics_host", "NOVA_METRICS_HOST", "--metrics-host", _host, "/metrics bind"),
    SettingSpec("metrics_port", "NOVA_METRICS_PORT", "--metrics-port", _port, "/metrics port"),
    SettingSpec(
        "metrics_token",
        "NOVA_METRICS_TOKEN",
        "--metrics-token",
        _optional_secret,
        "bearer token required on /metrics",
    ),
    SettingSpec("ingest_port", "NOVA_INGEST_PORT", "--ingest-port", _port, "RTMP receiver port"),
    SettingSpec(
        "trusted_peers",
        "NOVA_TRUSTED_PEERS",
        "--trusted-peers",
        _networks,
        "CIDRs allowed to call the callbacks and push",
    ),
    SettingSpec(
        "max_connections",
        "NOVA_MAX_CONNECTIONS",
        "--max-connections",
        _positive_int,
        "WebSocket cap per process",
    ),
    SettingSpec(
        "max_tracked_streams",
        "NOVA_MAX_TRACKED_STREAMS",
        "--max-tracked-streams",
        _positive_int,
        "cardinality cap",
    ),
    SettingSpec(
        "ingest_timeout",
        "NOVA_INGEST_TIMEOUT",
        "--ingest-timeout",
        _seconds,
        "seconds without media before a stream ends",
    ),
    SettingSpec(
        "presence_ttl",
        "NOVA_PRESENCE_TTL",
        "--presence-ttl",
        _seconds,
        "seconds before a dead replica's viewers expire",
    ),
    SettingSpec(
        "replica_id",
        "NOVA_REPLICA_ID",
        "--replica-id",
        _replica_id,
        "replica name (default <hostname>-<8 random hex>, new per start)",
    ),
    SettingSpec(
        "redis_prefix", "NOVA_REDIS_PREFIX", "--redis-prefix", _redis_prefix, "Redis key prefix"
    ),
    SettingSpec(
        "ws_ping_interval",
        "NOVA_WS_PING_INTERVAL",
        "--ws-ping-interval",
        _seconds,
        "seconds between keep-alive pings",
    ),
    SettingSpec(
        "ws_ping_timeout",
        "NOVA_WS_PING_TIMEOUT",
        "--ws-ping-timeout",
        _seconds,
        "seconds to wait for a pong before dropping the viewer",
    ),
    SettingSpec(
        "viewer_update_interval",
        "NOVA_VIEWER_UPDATE_INTERVAL",
        "--viewer-update-interval",
        _seconds,
        "at most one viewers message per stream per this many seconds",
    ),
    SettingSpec(
        "series_linger",
        "NOVA_SERIES_LINGER",
        "--series-linger",
        _non_negative_seconds,
        "seconds an ended stream's series stay for the last scrape",
    ),
    SettingSpec(
        "stream_grace",
        "NOVA_STREAM_GRACE",
        "--stream-grace",
        _seconds,
        "seconds a stream whose owner died waits for a re-push before it ends",
    ),
    SettingSpec(
        "shutdown_grace",
        "NOVA_SHUTDOWN_GRACE",
        "--shutdown-grace",
        _non_negative_seconds,
        "seconds from SIGTERM to exit: drain viewers, hand streams over (keep it, plus "
        "any preStop delay, below Kubernetes' terminationGracePeriodSeconds)",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated service configuration (design section 7 plus the service's own knobs).

    Build it with :meth:`from_env` (environment, then CLI-flag overrides); direct
    construction is for tests and validates the same way.

    Example::

        >>> Settings(presence_ttl=2.0).presence_sync_interval
        0.5
    """

    region: str = "local"
    presence: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    publish_secret: str | None = None
    host: str = "0.0.0.0"
    port: int = 8080
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8081
    metrics_token: str | None = None
    ingest_port: int = 1936
    trusted_peers: tuple[IpNetwork, ...] = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    max_connections: int = 20000
    max_tracked_streams: int = 10000
    ingest_timeout: float = 10.0
    presence_ttl: float = 15.0
    replica_id: str = ""
    redis_prefix: str = "nova"
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    viewer_update_interval: float = 1.0
    series_linger: float = 60.0
    stream_grace: float = 10.0
    shutdown_grace: float = 20.0

    def __post_init__(self) -> None:
        if not self.replica_id:
            object.__setattr__(self, "replica_id", default_replica_id())
        # Re-validate typed values (direct construction) with the same parsers.
        for spec in SETTING_SPECS:
            value = getattr(self, spec.field)
            if value is None:
                continue
            try:
                if spec.field == "trusted_peers":
                    _some_networks(tuple(value))
                else:
                    spec.parse(str(value))
            except ValueError as exc:
                raise SettingsError(f"{spec.env}: {exc}") from None
        if self.presence_ttl < 0.3:
            raise SettingsError(
                f"NOVA_PRESENCE_TTL: must be at least 0.3 seconds, got {self.presence_ttl!r}"
            )

    @property
    def presence_sync_interval(self) -> float:
        """How often presence counts and heartbeats are synced: a quarter of the TTL, at most 1 s.

        Four refreshes per TTL keep a live replica from expiring on one slow round
        trip, and a dead one's viewers vanish within the TTL.
        """
        return min(1.0, self.presence_ttl / 4.0)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None
    ) -> Settings:
        """Read ``NOVA_*`` from ``environ``; ``overrides`` (field -> raw string) win.

        Unknown ``NOVA_`` variables are ignored (other tools share the prefix).
        """
        values: dict[str, Any] = {}
        for spec in SETTING_SPECS:
            raw = None
            if overrides is not None:
                raw = overrides.get(spec.field)
            if raw is None:
                raw = environ.get(spec.env)
            if raw is None:
                continue
            try:
                values[spec.field] = spec.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{spec.env}: {exc}") from None
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated like the original)."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(changes)
        return Settings(**current)


def process_environ() -> Mapping[str, str]:
    """The process environment: the one place the service reads ``os.environ``."""
    return os.environ
