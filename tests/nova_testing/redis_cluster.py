"""A throwaway Redis Cluster: Debian's redis-server in cluster mode on free loopback ports.

``redis-cli --cluster create`` joins the nodes (with ``replicas`` replicas per master);
every node process is recorded so a test can kill one by PID (a master failover) and
teardown stops exactly what was started.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from nova_testing.ports import free_port
from nova_testing.redis_server import REDIS_SERVER

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


@dataclass
class ClusterNodeProcess:
    """One redis-server of the cluster: its client port, bus port and process."""

    port: int
    bus_port: int
    proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        """A plain (non-cluster) client of this node."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=2
        )

    def kill(self) -> None:
        """SIGKILL this node (by the PID this fixture started) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class RedisClusterServer:
    """``masters`` masters with ``replicas`` replicas each, on 127.0.0.1.

    Example::

        cluster = RedisClusterServer(masters=3)
        cluster.start()
        try:
            print(cluster.url)          # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...
        finally:
            cluster.stop()
    """

    def __init__(self, *, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000) -> None:
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.dir = Path(tempfile.mkdtemp(prefix="nova-redis-cluster-"))
        self.nodes: list[ClusterNodeProcess] = []
        ports: set[int] = set()
        while len(self.nodes) < masters * (1 + replicas):
            port, bus = free_port(), free_port()
            if port == bus or {port, bus} & ports:
                continue
            ports |= {port, bus}
            self.nodes.append(ClusterNodeProcess(port, bus))

    @property
    def url(self) -> str:
        """The service's ``NOVA_REDIS_URL`` for this cluster (every node a startup node)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        """Start every node, create the cluster and wait until every node reports ok."""
        try:
            for node in self.nodes:
                self._start_node(node)
            for node in self.nodes:
                self._wait_ping(node)
            subprocess.run(
                [
                    REDIS_CLI,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{n.port}" for n in self.nodes),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.wait_ok(self.nodes)
            if self.replicas:
                self._wait_replicas_synced()
        except BaseException:
            self.stop()
            raise

    def _start_node(self, node: ClusterNodeProcess) -> None:
        workdir = self.dir / str(node.port)
        workdir.mkdir(parents=True, exist_ok=True)
        node.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(node.port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(node.bus_port),
                "--cluster-config-file",
                str(workdir / "nodes.conf"),
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @staticmethod
    def _wait_ping(node: ClusterNodeProcess) -> None:
        deadline = time.monotonic() + 10
        client = node.client()
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if node.proc is None or node.proc.poll() is not None:
                        raise RuntimeError(f"redis-server did not start on {node.port}") from None
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not answer on {node.port}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    @staticmethod
    def wait_ok(nodes: list[ClusterNodeProcess], within: float = 30.0) -> None:
        """Wait until each of ``nodes`` reports ``cluster_state:ok`` with all slots served."""
        deadline = time.monotonic() + within
        for node in nodes:
            client = node.client()
            try:
                while True:
                    try:
                        info = client.cluster("info")
                        if isinstance(info, str):  # older redis-py: the raw text
                            info = dict(line.split(":", 1) for line in info.split() if ":" in line)
                        state, slots = info.get("cluster_state"), info.get("cluster_slots_ok")
                        if state == "ok" and str(slots) == "16384":
                            break
                    except redis.RedisError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster not ok on {node.port}")
                    time.sleep(0.05)
            finally:
                client.close()

    def _wait_replicas_synced(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        for node in self.nodes:
            client = node.client()
            try:
                while True:
                    info = client.info("replication")
                    if info.get("role") == "master" or info.get("master_link_status") == "up":
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"replica {node.port} never synced")
                    time.sleep(0.05)
            finally:
                client.close()

    @staticmethod
    def wait_replicated(master: ClusterNodeProcess, within: float = 30.0) -> None:
        """Wait until every replica of ``master`` has acknowledged all its writes (so a
        kill loses none of them: replication is asynchronous)."""
        deadline = time.monotonic() + within
        client = master.client()
        try:
            while True:
                info = client.info("replication")
                offset = int(info.get("master_repl_offset", 0))
                replicas = [v for k, v in info.items() if k.startswith("slave")]
                if replicas and all(int(r["offset"]) >= offset for r in replicas):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replicas of {master.port} never caught up: {info}")
                time.sleep(0.02)
        finally:
            client.close()

    def master_of(self, key: str) -> ClusterNodeProcess:
        """The node serving ``key``'s slot now (asked of any live node)."""
        for node in self.live_nodes():
            client = node.client()
            try:
                slot = int(client.cluster("keyslot", key))
                for start, end, primary, *_ in client.cluster("slots"):
                    if int(start) <= slot <= int(end):
                        port = int(primary[1])
                        return next(n for n in self.nodes if n.port == port)
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise RuntimeError(f"no live node knows the master of {key!r}")

    def live_nodes(self) -> list[ClusterNodeProcess]:
        """The nodes whose process still runs."""
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def flush(self) -> None:
        """Empty every master (between tests sharing the cluster)."""
        for node in self.live_nodes():
            client = node.client()
            try:
                if client.info("replication").get("role") == "master":
                    client.flushall()
            finally:
                client.close()

    def stop(self) -> None:
        """Kill every node this fixture started and remove their files."""
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
