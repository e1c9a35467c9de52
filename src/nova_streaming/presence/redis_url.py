"""``NOVA_REDIS_URL``: one Redis node or a Redis Cluster, parsed without importing redis.

Forms (validated at start by the settings):

- single node: ``redis://[user:password@]host[:port][/db]``, ``rediss://...`` (TLS),
  ``unix:///path/to/redis.sock``;
- Redis Cluster: ``redis+cluster://[user:password@]host:port[,host:port...]`` (or
  ``rediss+cluster://`` for TLS). The nodes listed are only the startup nodes: the
  client discovers the others and follows failovers. A cluster has database 0 only.

Example::

    >>> target = parse_redis_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7001")
    >>> (target.cluster, target.nodes)
    (True, (('10.0.0.1', 7000), ('10.0.0.2', 7001)))
    >>> parse_redis_url("redis://127.0.0.1:6379/0").cluster
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = ["CLUSTER_SCHEMES", "SINGLE_SCHEMES", "RedisTarget", "parse_redis_url"]

SINGLE_SCHEMES: Final = ("redis", "rediss", "unix")
CLUSTER_SCHEMES: Final = ("redis+cluster", "rediss+cluster")
_FORMS: Final = "a redis://host[:port][/db] URL or redis+cluster://host:port[,host:port...]"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where presence and the registry live: ``url`` for one node, ``nodes`` for a cluster."""

    url: str
    cluster: bool
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    ssl: bool = False


def parse_redis_url(raw: str) -> RedisTarget:
    """Parse and validate ``raw``; ``ValueError`` says which forms are accepted."""
    value = raw.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError(f"must be {_FORMS}, got {raw!r}")
    if scheme in SINGLE_SCHEMES:
        return _single(value, raw)
    if scheme in CLUSTER_SCHEMES:
        return _cluster(scheme, rest, raw)
    raise ValueError(f"must be {_FORMS}, got {raw!r}")


def _single(value: str, raw: str) -> RedisTarget:
    parts = urlsplit(value)
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"must be {_FORMS}, got {raw!r}")
    try:
        parts.port  # noqa: B018 -- urlsplit validates the port lazily
    except ValueError:
        raise ValueError(f"must be {_FORMS}, got {raw!r}") from None
    return RedisTarget(url=value, cluster=False)


def _cluster(scheme: str, rest: str, raw: str) -> RedisTarget:
    netloc, _, path = rest.partition("/")
    if path not in ("", "0"):
        raise ValueError(f"a Redis Cluster has database 0 only, got {raw!r}")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        if not item.strip():
            continue
        node = urlsplit("//" + item.strip())
        try:
            port = node.port
        except ValueError:
            port = None
        if not node.hostname or port is None:
            raise ValueError(f"cluster nodes must be host:port, got {item.strip()!r} in {raw!r}")
        nodes.append((node.hostname, port))
    if not nodes:
        raise ValueError(f"must name at least one cluster node, got {raw!r}")
    return RedisTarget(
        url=raw.strip(),
        cluster=True,
        nodes=tuple(nodes),
        username=username,
        password=password,
        ssl=scheme == "rediss+cluster",
    )
