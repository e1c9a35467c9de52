"""A throwaway Redis Cluster on loopback: Debian's redis-server in cluster mode.

``masters`` masters and one replica each, every node on a free port with its cluster
bus on another free port (``cluster-port``, so nothing assumes port + 10000 is free),
created with ``redis-cli --cluster create``. A master can be killed to make its replica
take over.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from nova_testing.ports import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODE_TIMEOUT_MS = 1000


@dataclass
class ClusterNode:
    """One redis-server of the cluster."""

    port: int
    bus_port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def role(self) -> str:
        """``master`` or ``slave`` as the node itself says."""
        with self.client() as client:
            return str(client.info("replication")["role"])


class RedisClusterServer:
    """A local Redis Cluster (``masters`` masters + as many replicas), always cleaned up.

    Example::

        cluster = RedisClusterServer()
        cluster.start()
        try:
            cluster.client().set("a", 1)
            cluster.kill_master()          # its replica is promoted
        finally:
            cluster.stop()
    """

    def __init__(self, masters: int = 3, replicas_per_master: int = 1) -> None:
        self.masters = masters
        self.replicas_per_master = replicas_per_master
        self.root = Path(tempfile.mkdtemp(prefix="nova-redis-cluster-"))
        self.nodes: list[ClusterNode] = []
        for i in range(masters * (1 + replicas_per_master)):
            node_dir = self.root / f"node-{i}"
            node_dir.mkdir()
            self.nodes.append(ClusterNode(free_port(), free_port(), node_dir))

    @property
    def url(self) -> str:
        """A seed URL: any node (redis-py discovers the others)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def _start_node(self, node: ClusterNode) -> None:
        node.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                *("--port", str(node.port), "--bind", "127.0.0.1"),
                *("--cluster-enabled", "yes", "--cluster-port", str(node.bus_port)),
                *("--cluster-config-file", str(node.dir / "nodes.conf")),
                *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                *("--save", "", "--appendonly", "no", "--dir", str(node.dir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self, within: float = 60.0) -> None:
        """Start every node, create the cluster and wait until it reports ``ok``."""
        for node in self.nodes:
            self._start_node(node)
        deadline = time.monotonic() + within
        for node in self.nodes:
            self._wait(lambda n=node: n.client().ping(), deadline, f"node {node.port}")
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas_per_master),
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=within,
        )
        self.wait_ok(deadline - time.monotonic())

    def _wait(self, check: object, deadline: float, what: str) -> None:
        while True:
            try:
                if callable(check) and check():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis cluster: timed out waiting for {what}")
            time.sleep(0.05)

    def wait_ok(self, within: float = 30.0) -> None:
        """Wait until every live node reports ``cluster_state:ok`` and all slots served."""
        deadline = time.monotonic() + max(within, 1.0)

        def ok() -> bool:
            for node in self.live_nodes():
                with node.client() as client:
                    info = client.cluster("info")
                    state = info.get("cluster_state") if isinstance(info, dict) else None
                    if state != "ok":
                        return False
            return True

        self._wait(ok, deadline, "cluster_state ok")

    def live_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def masters_now(self) -> list[ClusterNode]:
        """Live nodes that are masters right now."""
        return [n for n in self.live_nodes() if n.role() == "master"]

    def kill_master(self, within: float = 30.0) -> ClusterNode:
        """SIGKILL one master and wait until its replica has taken over (cluster ok)."""
        # Not the seed node: clients started later still find the cluster through it.
        victim = next(m for m in self.masters_now() if m is not self.nodes[0])
        assert victim.proc is not None
        victim.proc.kill()
        victim.proc.wait(timeout=10)
        victim.proc = None
        deadline = time.monotonic() + within
        self._wait(lambda: len(self.masters_now()) == self.masters, deadline, "failover")
        self.wait_ok(deadline - time.monotonic())
        return victim

    def client(self) -> RedisCluster:
        """A cluster-aware client."""
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port, decode_responses=True)

    def stop(self) -> None:
        """Kill every node and remove their directories."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait(timeout=10)
            node.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
