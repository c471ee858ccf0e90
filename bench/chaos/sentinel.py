"""The Sentinel-managed set a chaos scenario fails over: a master, its replicas and three sentinels,
all redis-server processes of bench/chaos/processes.py."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from .processes import RedisServer, free_port, poll_until, replica_synced, server_binary, stop_group

__all__ = ["SENTINEL_SERVICE", "SentinelSet", "replica_state", "without_replicaof"]

#: the service name the sentinels monitor
SENTINEL_SERVICE = "mymaster"


@dataclass
class SentinelSet:
    """A master, one replica and three sentinels (short failover timeouts), all on loopback.

    ``servers`` holds the two data nodes; which is the master changes with a failover.
    """

    servers: list[RedisServer] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    sentinel_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="baton-chaos-sentinel-")))

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL of the service."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}"

    def start(self) -> SentinelSet:
        """Start the data nodes and the sentinels; wait until the replica is in sync and known."""
        # no diskless-sync delay: a replica that says it is connected has the data
        no_delay = ["--repl-diskless-sync-delay", "0"]
        master = RedisServer(args=no_delay).start()
        replica = RedisServer(args=[*no_delay, "--replicaof", "127.0.0.1", str(master.port)]).start()
        self.servers = [master, replica]
        for i in range(3):
            port = free_port()
            conf = self.dir / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n"
                f"sentinel failover-timeout {SENTINEL_SERVICE} 5000\n"
            )
            proc = subprocess.Popen([server_binary(), str(conf), "--sentinel", "--daemonize", "no",
                                     "--logfile", str(self.dir / f"sentinel-{i}.log")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self.sentinel_ports.append(port)
            self.sentinel_procs.append(proc)
        self.wait_replicated(replica)
        return self

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers reports it."""
        return next((port for port in map(_named_master, self.sentinel_ports) if port is not None), None)

    def master(self) -> RedisServer:
        """The data node the sentinels name master now."""
        port = self.master_port()
        return next(s for s in self.servers if s.port == port)

    def wait_failover(self, old_port: int, timeout_s: float = 30.0) -> None:
        """Until every sentinel names a master other than ``old_port``."""

        def failed_over() -> bool:
            named = {_named_master(port) for port in self.sentinel_ports}
            return named != {None} and len(named) == 1 and old_port not in named

        poll_until(failed_over, timeout_s, f"the sentinels did not fail over from port {old_port}")

    def rejoin(self, old: RedisServer) -> None:
        """Start a killed data node again as the current master's replica, as a restarted pod of a
        Sentinel deployment starts: back as an empty master it would be the only other candidate
        in a later failover (a master starved of CPU on a busy machine is judged down after 1 s),
        and everything that then replicated from it would be wiped."""
        port = self.master_port()
        if port is None or port == old.port:
            raise RuntimeError(f"no sentinel names a master other than port {old.port} to rejoin")
        old.args = [*without_replicaof(old.args), "--replicaof", "127.0.0.1", str(port)]
        old.start()

    def failovers(self) -> int:
        """Failovers the sentinels carried out so far (``+switch-master`` in the first sentinel's
        log): one per fault when all went as planned; more means a master judged down on its own
        (a busy machine, down-after 1 s)."""
        try:
            text = (self.dir / "sentinel-0.log").read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if "+switch-master" in line)

    def wait_replicated(self, replica: RedisServer, timeout_s: float = 30.0) -> None:
        """Until ``replica`` follows the master with its link up and every sentinel lists it."""

        def listed(port: int) -> bool:
            sentinel = redis.Redis(port=port, socket_timeout=2)
            try:
                return replica.port in [int(r["port"]) for r in sentinel.sentinel_slaves(SENTINEL_SERVICE)
                                        if "s_down" not in r["flags"]]
            except redis.exceptions.RedisError:
                return False
            finally:
                sentinel.close()

        try:
            poll_until(lambda: replica_synced(replica), timeout_s, f"the replica on port {replica.port} did not sync")
        except RuntimeError as failure:
            # the scenario removes the server's files when it stops: say why here, while they exist
            raise RuntimeError(f"{failure}; {replica_state(replica)}") from None
        poll_until(lambda: all(listed(port) for port in self.sentinel_ports), timeout_s,
              f"the sentinels do not list the replica on port {replica.port}")

    def stop(self) -> None:
        """Stop every process by pid and remove the data."""
        for proc in self.sentinel_procs:
            stop_group(proc)
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def without_replicaof(args: list[str]) -> list[str]:
    """Server options without a ``--replicaof host port`` (a restart names its master anew)."""
    kept: list[str] = []
    skip = 0
    for arg in args:
        if skip:
            skip -= 1
        elif arg == "--replicaof":
            skip = 2
        else:
            kept.append(arg)
    return kept


def replica_state(server: RedisServer, log_lines: int = 15) -> str:
    """What a server that should be a replica reports: its role and link (INFO replication) and
    the end of its log, for a failure message."""
    client = redis.Redis(port=server.port, socket_timeout=2)
    try:
        info = client.info("replication")
        fields = ("role", "master_host", "master_port", "master_link_status", "master_sync_in_progress",
                  "master_link_down_since_seconds")
        state = ", ".join(f"{k}={info[k]}" for k in fields if k in info)
    except redis.exceptions.RedisError as error:
        state = f"INFO replication failed: {error}"
    finally:
        client.close()
    try:
        tail = (server.dir / "log").read_text(errors="replace").splitlines()[-log_lines:]
    except OSError as error:
        tail = [f"(no log: {error})"]
    return f"{state}; its log ends:\n" + "\n".join(tail)




def _named_master(sentinel_port: int) -> int | None:
    """The master's port as the sentinel on ``sentinel_port`` names it (None when it cannot say)."""
    client = redis.Redis(port=sentinel_port, socket_timeout=1, socket_connect_timeout=1)
    try:
        reply: Any = client.sentinel_get_master_addr_by_name(SENTINEL_SERVICE)
    except redis.exceptions.RedisError:
        return None
    finally:
        client.close()
    return int(reply[1]) if reply else None
