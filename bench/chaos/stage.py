"""The stage a scenario plays on: Redis, an optional fault proxy, a fleet of worker nodes,
a progress sampler, the fault log, and the result.

``Stage`` is an async context manager: whatever happens inside, every process
it started is stopped by pid (process group) on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from runtime import Baton, Settings
from runtime.cancelling import cancel_and_wait
from runtime.keys import Keys
from runtime.stop_signals import STOP_AFTER_GRACE_S

from .checker import Verdict, check
from .jobs import Marks
from .load import ClusterMaster, Load
from .processes import ClusterSet, RedisServer, Worker, free_port, harness_client
from .proxy import FaultProxy
from .sentinel import SentinelSet

__all__ = ["Fault", "Result", "Stage", "StageConfig"]

PREFIX = "chaos"


@dataclass(frozen=True)
class StageConfig:
    """Shape of a deployment under test. Leases are short so recoveries are quick."""

    workers: int = 3
    concurrency: int = 20
    #: queue partitions (hash tags) of the deployment: runs of the node-wide stream spread over them
    partitions: int = 1
    lease_ttl_ms: int = 2000
    renew_interval_ms: int = 500
    reap_interval_ms: int = 250
    #: how long a stopping node's handlers may finish (BATON_SHUTDOWN_GRACE_S)
    shutdown_grace_s: float = 3.0
    #: appendonly yes + appendfsync always (needed when Redis itself is killed)
    durable_redis: bool = False
    #: route the nodes' Redis traffic through the fault proxy
    proxy: bool = False
    #: with ``proxy``, only these worker slots go through it (None: every node), the others reach
    #: Redis directly: a fault of the proxy then cuts off those nodes alone
    proxied_slots: frozenset[int] | None = None
    #: extra environment per worker slot (e.g. skewed_clock_env's)
    slot_env: dict[int, dict[str, str]] = field(default_factory=dict)
    #: exit codes that are part of the scenario (a poison handler's os._exit), not violations
    expected_exit_codes: frozenset[int] = frozenset()
    #: a master, a replica and three sentinels instead of one server; the nodes, the harness and the
    #: producer reach it by its redis+sentinel:// URL, and every write waits for the replica
    #: (durable_replicas=1 on the nodes, WAIT 1 after the producer's XADDs)
    sentinel: bool = False
    #: a Redis Cluster of three masters, each with a replica (bench/chaos/processes.py ClusterSet); the
    #: partitions spread over the masters, the node-wide keys with partition 0, and every write waits
    #: for its master's replica (durable_replicas=1 on the nodes, WAIT 1 after the producer's XADDs)
    cluster: bool = False
    #: more options of the single redis-server (e.g. ``--enable-debug-command local`` for DEBUG SLEEP)
    server_args: tuple[str, ...] = ()


@dataclass
class Fault:
    """One injected fault: what, on which node, when it began and when it was cleared."""

    kind: str
    node: str = ""
    at: float = 0.0  #: loop time
    at_ms: int = 0  #: wall clock ms (the Redis server's clock, same host)
    cleared: float | None = None


@dataclass
class Result:
    """One scenario's figures."""

    name: str
    params: str
    verdict: Verdict
    faults: list[Fault]
    recovery_s: float | None
    duration_s: float
    unexpected_exits: list[tuple[str, int]]

    @property
    def ok(self) -> bool:
        """True when no invariant was violated."""
        return self.verdict.ok


class Stage:
    """Runs one scenario's processes; see the module docstring."""

    #: keep the nodes' logs (their directory is named in the report) instead of removing them
    keep_logs = False

    def __init__(self, name: str, config: StageConfig) -> None:
        self.name = name
        self.config = config
        self.redis_server = RedisServer(durable=config.durable_redis, args=list(config.server_args))
        self.sentinels: SentinelSet | None = None
        self.cluster: ClusterSet | None = None
        #: on Redis Cluster, the producer's connections to the submission stream's master
        self.stream_master: ClusterMaster | None = None
        #: the URL the nodes and the harness are given (the proxy's, for the nodes, when there is one)
        self.redis_url = ""
        self.proxy: FaultProxy | None = None
        self.workers: list[Worker] = []
        self.faults: list[Fault] = []
        self.samples: list[tuple[float, int]] = []  # (loop time, completed runs)
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"baton-chaos-{name}-"))
        self.keep_alive = True
        self.verdict = Verdict()
        self.load: Load | None = None
        #: invalid stream entries the scenario submitted (each must be rejected, nothing else)
        self.bad_entries = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._started = 0.0
        self.client: Any = None
        self.app: Baton | None = None

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> Stage:
        self._started = asyncio.get_running_loop().time()
        try:
            if self.config.sentinel:
                assert not self.config.proxy, "the fault proxy stands for one server"
                self.sentinels = await asyncio.to_thread(SentinelSet().start)
                self.redis_url = self.sentinels.url
            elif self.config.cluster:
                assert not self.config.proxy, "the fault proxy stands for one server"
                # partition i's hash tag on master i % 3, the node-wide keys' with partition 0's
                keys = Keys(PREFIX, self.config.partitions)
                tags = [p.tag for p in keys.partitions] + [keys.node_tag]
                self.cluster = ClusterSet()
                await asyncio.to_thread(self.cluster.start, tags)
                self.redis_url = self.cluster.url
            else:
                await asyncio.to_thread(self.redis_server.start)
                self.redis_url = self.redis_server.url
            node_url = self.redis_url
            if self.config.proxy:
                self.proxy = await FaultProxy(self.redis_server.port, free_port()).start()
                node_url = self.proxy.url
            settings = Settings(redis_url=self.redis_url, prefix=PREFIX, metrics_port=0,
                                partitions=self.config.partitions, redis_cluster=self.config.cluster)
            self.app = Baton(settings)
            self.client = harness_client(self.redis_url)
            if self.cluster is not None:
                self.stream_master = ClusterMaster(self.cluster.masters[0].url, self.app.keys.submit_stream)
            proxied, direct = self._worker_env(node_url), self._worker_env(self.redis_url)
            for i in range(self.config.workers):
                env = proxied if self.config.proxied_slots is None or i in self.config.proxied_slots else direct
                worker_env = {**env, **self.config.slot_env.get(i, {})}
                self.workers.append(Worker(f"w{i}", worker_env, self.log_dir))
            for w in self.workers:
                w.start()
            self._tasks = [asyncio.create_task(self._supervise()), asyncio.create_task(self._sample())]
        except BaseException:
            await self._teardown()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._teardown()

    async def _teardown(self) -> None:
        # (a cancel can be swallowed: Python 3.11's wait_for lost one that came as the sample's read
        # returned, and the teardown waited on it for ever; runtime/cancelling.py cancels again)
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await asyncio.gather(*(asyncio.to_thread(w.stop, 5.0) for w in self.workers), return_exceptions=True)
        if self.proxy is not None:
            await self.proxy.stop()
        for closing in (self.app.close() if self.app else None, self.client.aclose() if self.client else None):
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing
        if self.stream_master is not None:
            with contextlib.suppress(Exception):
                await self.stream_master.aclose()
        if self.sentinels is not None:
            await asyncio.to_thread(self.sentinels.stop)
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.stop)
        await asyncio.to_thread(self.redis_server.stop)  # (never started with sentinels: its directory goes)
        if not self.keep_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def _worker_env(self, node_url: str) -> dict[str, str]:
        c = self.config
        return {
            "BATON_REDIS_URL": node_url, "BATON_PREFIX": PREFIX, "CHAOS_REDIS_URL": self.redis_url,
            "BATON_CONCURRENCY": str(c.concurrency), "BATON_PARTITIONS": str(c.partitions),
            "BATON_LEASE_TTL_MS": str(c.lease_ttl_ms),
            "BATON_RENEW_INTERVAL_MS": str(c.renew_interval_ms), "BATON_REAP_INTERVAL_MS": str(c.reap_interval_ms),
            "BATON_METRICS_PORT": "0", "BATON_LOG_FORMAT": "json", "BATON_SHUTDOWN_GRACE_S": f"{c.shutdown_grace_s:g}",
            "BATON_INTAKE_CLAIM_IDLE_MS": "2000", "BATON_IDLE_POLL_MS": "500", "BATON_OBSERVE_INTERVAL_MS": "0",
            # the checker's reconcile must find any drift, so the nodes do not repair it first
            "BATON_RECONCILE_INTERVAL_MS": "0",
            **({"BATON_DURABLE_REPLICAS": "1", "BATON_DURABLE_TIMEOUT_MS": "2000"} if c.sentinel or c.cluster else {}),
            **({"BATON_REDIS_CLUSTER": "true"} if c.cluster else {}),
        }

    # -- background duties -----------------------------------------------------

    async def _supervise(self) -> None:
        """Restart nodes that are down (killed by a fault or exited on their own), like Kubernetes would."""
        while True:
            await asyncio.sleep(0.2)
            for w in self.workers:
                if w.note_exit() and self.keep_alive:
                    w.start()

    async def _sample(self) -> None:
        """Record how many runs have completed, a few times a second (for recovery times)."""
        assert self.app is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                pipe = self.client.pipeline(transaction=False)
                for p in self.app.keys.partitions:
                    pipe.zcard(p.status("completed"))
                async with asyncio.timeout(2):
                    done = sum(int(n) for n in await pipe.execute())
                self.samples.append((loop.time(), done))
            except Exception:  # noqa: BLE001 - Redis may be down on purpose; the sample is skipped
                pass
            await asyncio.sleep(0.1)

    # -- scenario helpers ------------------------------------------------------

    @property
    def marks(self) -> Marks:
        """The harness's own record keys."""
        assert self.app is not None
        return Marks(self.app.keys)

    def fault(self, kind: str, node: str = "", cleared: bool = False) -> Fault:
        """Log a fault that begins now (``cleared``: it is over at once, e.g. a kill -9)."""
        now = asyncio.get_running_loop().time()
        f = Fault(kind, node, now, int(time.time() * 1000), now if cleared else None)
        self.faults.append(f)
        return f

    def clear(self, f: Fault) -> None:
        """The fault is over (Redis back, node continued, proxy healed)."""
        f.cleared = asyncio.get_running_loop().time()

    def block_server(self, seconds: float) -> None:
        """Block the single redis-server's loop for ``seconds`` (DEBUG SLEEP: it accepts, reads and
        answers nothing meanwhile); blocking, from a thread. Needs ``--enable-debug-command local``."""
        client = redis.Redis(port=self.redis_server.port, socket_timeout=seconds + 10)
        try:
            client.execute_command("DEBUG", "SLEEP", seconds)
        finally:
            client.close()

    async def restart_gracefully(self, w: Worker, ready_s: float = 30.0) -> None:
        """One step of a rolling update: SIGTERM the node, which must drain and exit 0 within its
        grace (plus what runtime/stop_signals.py allows past it); then wait until its new incarnation
        (the supervisor starts it, as Kubernetes starts the next pod) sends its first heartbeat."""
        assert self.app is not None and w.proc is not None
        f = self.fault("SIGTERM node (rolling restart)", w.node_id)
        old, old_id = w.proc, w.node_id
        w.expected_down = True
        w.signal(signal.SIGTERM)
        allowed_s = self.config.shutdown_grace_s + STOP_AFTER_GRACE_S + 5.0  # (+5: Python's start and end here)
        try:
            code = await asyncio.to_thread(old.wait, allowed_s)
        except subprocess.TimeoutExpired:
            self.verdict.add("a stopped node outlived its grace",
                             f"{old_id}: still running {allowed_s:g}s after SIGTERM")
            w.signal(signal.SIGKILL)
            code = old.returncode
        if code != 0:
            self.verdict.add("a stopped node did not exit 0", f"{old_id}: exit code {code}; its log ended: "
                             f"{w.log_tail()}")
        await self.wait_beating(w, ready_s, after=old_id)
        self.clear(f)

    async def wait_beating(self, w: Worker, ready_s: float = 30.0, after: str = "") -> None:
        """Wait until the node's incarnation (a later one than ``after``) has sent its first heartbeat:
        a started node that is still importing has no handler for SIGTERM yet (Kubernetes too waits
        for a pod to be ready before it stops the next one)."""
        assert self.app is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_s
        while w.node_id == after or await self.client.zscore(self.app.keys.nodes, w.node_id) is None:
            if loop.time() > deadline:
                self.verdict.add("a started node never sent a heartbeat", f"{w.node_id} after {ready_s:g}s")
                return
            await asyncio.sleep(0.1)

    def kill_worker(self, w: Worker) -> Fault:
        """kill -9 one node (the supervisor starts a new incarnation)."""
        f = self.fault("kill -9 node", w.node_id, cleared=True)
        w.signal(signal.SIGKILL)
        return f

    async def check_heartbeats(self, tolerance_ms: int = 10_000, wait_s: float = 20.0) -> None:
        """Every live node's heartbeat in the node registry must be recent by the Redis clock.

        A node restarted moments ago may not have sent its first beat yet (a loaded machine takes
        seconds to start Python): this waits up to ``wait_s`` for every live node to show up.
        """
        assert self.app is not None
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            seconds, micros = await self.client.time()
            redis_now_ms = seconds * 1000 + micros // 1000
            beats = {m.decode(): int(score) for m, score in await self.client.zrange(self.app.keys.nodes, 0, -1,
                                                                                      withscores=True)}
            problems: list[tuple[str, str]] = []
            for w in self.workers:
                if not w.alive():
                    continue
                beat = beats.get(w.node_id)
                if beat is None:
                    problems.append(("live node missing from the node registry", w.node_id))
                elif abs(beat - redis_now_ms) > tolerance_ms:
                    problems.append(("node heartbeat off the Redis clock",
                                     f"{w.node_id} heartbeat {(beat - redis_now_ms) / 1000:+.0f}s from Redis time"))
            if not problems or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        for invariant, example in problems:
            self.verdict.add(invariant, example)

    async def busiest_worker(self, at_least: int = 0, wait_s: float = 0.0) -> Worker:
        """The live node holding the most leases now (the first one if none holds any).

        With ``at_least``, wait up to ``wait_s`` for a node to hold that many (on a busy machine
        the runs may not have started yet: stopping a node that holds nothing tests nothing).
        """
        assert self.app is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            held: dict[str, int] = {}
            for p in self.app.keys.partitions:
                for run_id in await self.client.zrange(p.leased, 0, -1):
                    # a run that finished since the ZRANGE keeps its last lease_node: only an executing
                    # run is held
                    node, status = await self.client.hmget(p.run(run_id.decode()), "lease_node", "status")
                    if node and status == b"executing":
                        held[node.decode()] = held.get(node.decode(), 0) + 1
            alive = [w for w in self.workers if w.alive()]
            busiest = max(alive, key=lambda w: held.get(w.node_id, 0))
            if held.get(busiest.node_id, 0) >= at_least or loop.time() >= deadline:
                return busiest
            await asyncio.sleep(0.05)

    async def kill_randomly(self, duration_s: float, every_s: tuple[float, float], rng: random.Random) -> None:
        """kill -9 a random live node every ``every_s`` seconds for ``duration_s``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        while loop.time() + every_s[0] < end:
            await asyncio.sleep(rng.uniform(*every_s))
            alive = [w for w in self.workers if w.alive()]
            if alive:
                self.kill_worker(rng.choice(alive))

    async def quiesce(self, timeout_s: float) -> bool:
        """Wait (bounded) until every acknowledged run is in a terminal status."""
        assert self.app is not None and self.load is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        terminal = ("completed", "failed", "canceled", "dead_letter", "expired")
        while loop.time() < deadline:
            try:
                async with asyncio.timeout(5):
                    counts = await self.app.count_by_status()
                if sum(counts.get(s, 0) for s in terminal) >= len(self.load.acked):
                    return True
            except Exception:  # noqa: BLE001 - keep waiting until the deadline
                pass
            await asyncio.sleep(0.5)
        return False

    async def guarded(self, what: str, step: Awaitable[Any]) -> None:
        """Run a scenario step; a harness error becomes a failed invariant instead of a crash."""
        try:
            await step
        except Exception as exc:  # noqa: BLE001 - reported as a violation
            self.verdict.add("scenario could not finish", f"{what}: {type(exc).__name__}: {exc}")
            self.verdict.notes[f"traceback of {what}"] = traceback.format_exc(limit=3)

    async def finish(self, params: str, quiesce_s: float) -> Result:
        """Quiesce, check the invariants (nodes still up), and gather the figures."""
        assert self.app is not None
        loop = asyncio.get_running_loop()
        settled = await self.quiesce(quiesce_s)
        acked = self.load.acked if self.load else {}
        node_faults: dict[str, list[int]] = {}
        for f in self.faults:
            if f.node:
                node_faults.setdefault(f.node, []).append(f.at_ms)
        harness = self.verdict
        try:
            verdict = await check(self.app, acked, self.marks, node_faults, bad_entries=self.bad_entries)
        except Exception as exc:  # noqa: BLE001 - reported as a violation
            verdict = Verdict(submitted=len(acked))
            verdict.add("checker could not read the results", f"{type(exc).__name__}: {exc}")
        for invariant, examples in harness.violations.items():
            verdict.violations.setdefault(invariant, []).extend(examples)
        verdict.notes.update(harness.notes)
        if not settled:
            verdict.notes["quiesce"] = f"not every run was terminal after {quiesce_s:g}s"
        exits: list[tuple[str, int]] = []
        tails: dict[str, str] = {}
        for w in self.workers:
            w.note_exit()
            exits.extend(w.unexpected_exits)
            tails.update(w.exit_log_tails)
        for w in self.workers:
            for line in w.crash_lines():
                verdict.add("actors crashed", f"{w.slot}: {line}")
        for node, code in exits:
            if code in self.config.expected_exit_codes:
                verdict.notes.setdefault("node exits caused by the scenario", []).append(f"{node} exit {code}")
            else:
                verdict.add("nodes exited on their own", f"{node} exit code {code}; its log ended: {tails.get(node)}")
        if self.keep_logs:
            verdict.notes["node logs"] = str(self.log_dir)
        if self.load is not None:
            verdict.notes["XADD calls retried"] = self.load.failed_calls
        recovery = self.recovery()
        if recovery == float("inf"):
            verdict.add("no run completed after a fault although runs were left", self.name)
        return Result(self.name, params, verdict, self.faults, recovery, loop.time() - self._started, exits)

    def recovery(self) -> float | None:
        """Worst time from a fault's end to the next run completing (None: no fault had work left after it)."""
        worst: float | None = None
        total = self.samples[-1][1] if self.samples else 0  # runs that completed in the end
        for f in self.faults:
            if f.cleared is None:
                continue
            before = [n for t, n in self.samples if t <= f.cleared]
            base = before[-1] if before else 0
            if base >= total:
                continue  # nothing was left to complete
            after = [t for t, n in self.samples if t > f.cleared and n > base]
            took = (after[0] - f.cleared) if after else float("inf")
            worst = took if worst is None else max(worst, took)
        return worst
