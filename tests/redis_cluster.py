"""A private Redis Cluster for the tests: redis-server processes on loopback ports in a temp dir."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _free_pair() -> tuple[int, int]:
    """Two free ports: the client port and the cluster bus port of one node."""
    socks = [socket.socket() for _ in range(2)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return socks[0].getsockname()[1], socks[1].getsockname()[1]
    finally:
        for s in socks:
            s.close()


class RedisCluster:
    """``masters`` masters with one replica each, formed with ``redis-cli --cluster create``."""

    def __init__(self, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chat-cluster-"))
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        self.procs: dict[int, subprocess.Popen] = {}
        for _ in range(masters * 2):
            port, bus = _free_pair()
            self.ports.append(port)
            self._start(port, bus)

    def _start(self, port: int, bus: int) -> None:
        workdir = self.dir / str(port)
        workdir.mkdir()
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(port),
                "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-port", str(bus),
                "--cluster-config-file", "nodes.conf", "--cluster-node-timeout",
                str(self.node_timeout_ms), "--cluster-replica-validity-factor", "0",
                "--dir", str(workdir), "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--logfile", "redis.log"]
        self.procs[port] = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True)

    @property
    def url(self) -> str:
        """The server's REDIS_URL for this cluster (every node given as a seed)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def cli(self, port: int, *args: str, timeout: float = 10) -> str:
        """``redis-cli -p port args...``, its output."""
        out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                             check=False, text=True, timeout=timeout)
        return out.stdout

    def create(self, timeout: float = 30) -> RedisCluster:
        """Wait for the nodes, form the cluster, and wait until every node says it is ok."""
        deadline = time.time() + timeout
        for index, port in enumerate(self.ports):
            while self.cli(port, "ping").strip() != "PONG":
                if time.time() > deadline:
                    raise RuntimeError(f"redis node {port} did not start")
                if self.procs[port].poll() is not None:
                    # It could not bind: its free port was taken between _free_pair and its
                    # start (an ephemeral port of some connection). Start it on a new pair.
                    del self.procs[port]
                    port, bus = _free_pair()
                    self.ports[index] = port
                    self._start(port, bus)
                time.sleep(0.05)
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=timeout)
        self.wait_ok(deadline - time.time())
        # Replicas in sync with their masters, so that one can take over at once.
        while not all("master_link_status:up" in self.cli(p, "info", "replication")
                      for p in self.ports if p not in self.masters()):
            if time.time() > deadline:
                raise RuntimeError("the replicas did not sync")
            time.sleep(0.1)
        return self

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node reports cluster_state:ok and every slot has a live master."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            live = [p for p in self.ports if self.procs[p].poll() is None]
            if all("cluster_state:ok" in self.cli(p, "cluster", "info") for p in live) and \
                    len(self.masters()) * 2 >= len(live) and self.masters():
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not become ok")

    def masters(self) -> list[int]:
        """Ports of the live masters, as the cluster sees them now."""
        live = [p for p in self.ports if self.procs[p].poll() is None]
        for port in live:
            lines = self.cli(port, "cluster", "nodes").splitlines()
            if lines:
                return sorted(int(line.split()[1].split(":")[1].split("@")[0]) for line in lines
                              if "master" in line.split()[2] and "fail" not in line.split()[2]
                              and int(line.split()[1].split(":")[1].split("@")[0]) in live)
        return []

    def master_of(self, key: str) -> int:
        """The port of the master that holds ``key``'s slot now."""
        slot = int(self.cli(self.masters()[0], "cluster", "keyslot", key).strip())
        for port in self.masters():
            for line in self.cli(port, "cluster", "nodes").splitlines():
                fields = line.split()
                if "myself" in fields[2]:
                    for part in fields[8:]:
                        lo, _, hi = part.partition("-")
                        if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                            return port
        raise RuntimeError(f"no master for {key}")

    def kill(self, port: int) -> None:
        """SIGKILL one node."""
        proc = self.procs[port]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)

    def commandstats(self, command: str) -> int:
        """Calls of ``command`` summed over the live masters (INFO commandstats)."""
        total = 0
        for port in self.masters():
            for line in self.cli(port, "info", "commandstats").splitlines():
                if line.startswith(f"cmdstat_{command}:"):
                    total += int(line.split("calls=")[1].split(",")[0])
        return total

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT on every live node."""
        for port in self.ports:
            if self.procs[port].poll() is None:
                self.cli(port, "config", "resetstat")

    def stop(self) -> None:
        """Kill every node and remove the temp dir."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
