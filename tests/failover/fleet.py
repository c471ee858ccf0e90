"""A fleet for the failover tests: worker processes with durable writes, a producer process that
counts an entry as acknowledged only after WAIT, and the checks every acknowledged submission
must pass once the fault is over."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from runtime import Baton, Settings
from runtime.records import TERMINAL_STATUSES
from tests.failover.app import EFFECTS_ENV
from tests.integration.test_processes import worker_env
from tests.nodes import ROOT, eventually, spawn_worker, stop_process

__all__ = ["Fleet", "check_acknowledged", "fleet_settings"]

#: reads a run's status (None: no such run) where the test knows the master is
StatusReader = Callable[[str], Awaitable[str | None]]
#: worker processes of a fleet
WORKERS = 2
#: how long a promotion may take before runs submitted after it complete (the issue's bound)
RESUME_S = 10.0


def fleet_settings(redis_url: str, prefix: str, cluster: bool = False, partitions: int = 1,
                   replicas: int = 1) -> Settings:
    """The settings of the workers and of the test's reading client: durable writes to ``replicas``
    (a generous WAIT timeout: WAIT returns as soon as the replicas answer), short leases."""
    return Settings(redis_url=redis_url, redis_cluster=cluster, prefix=prefix, partitions=partitions,
                    durable_replicas=replicas, durable_timeout_ms=2000, lease_ttl_ms=3000, renew_interval_ms=500,
                    reap_interval_ms=200, idle_poll_ms=500, metrics_port=0, intake_claim_idle_ms=2000)


@dataclass
class Fleet:
    """The processes of one failover test, and the files they write."""

    settings: Settings
    dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    producer: subprocess.Popen[bytes] | None = None

    @property
    def effects(self) -> Path:
        """One line per handler execution: run id, attempt, node."""
        return self.dir / "effects"

    @property
    def acked(self) -> Path:
        """One line per acknowledged entry: run id, unix ms of the acknowledgement."""
        return self.dir / "acked"

    def start(self) -> Fleet:
        """Start the workers, then the producer (entries on the node-wide submission stream)."""
        s = self.settings
        env = worker_env(s, "", BATON_DURABLE_REPLICAS=s.durable_replicas,
                         BATON_DURABLE_TIMEOUT_MS=s.durable_timeout_ms, BATON_PARTITIONS=s.partitions,
                         BATON_CONCURRENCY=20,
                         BATON_INTAKE_CLAIM_IDLE_MS=s.intake_claim_idle_ms, **{EFFECTS_ENV: str(self.effects)})
        if s.redis_cluster:
            env["BATON_REDIS_CLUSTER"] = "1"
        for i in range(WORKERS):
            self.workers.append(spawn_worker("tests.failover.app:app", {**env, "BATON_NODE_ID": f"w{i}"},
                                             self.dir / f"w{i}.log"))
        cmd = [sys.executable, "-m", "tests.failover.producer", s.redis_url, Baton(s).keys.submit_stream,
               str(self.acked), "--tag", "f", "--replicas", str(s.durable_replicas)]
        if s.redis_cluster:
            cmd.append("--cluster")
        with open(self.dir / "producer.log", "ab") as log:
            self.producer = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        return self

    def acknowledged(self) -> dict[str, int]:
        """Run id -> unix ms of every entry the producer has acknowledged so far."""
        if not self.acked.exists():
            return {}
        rows = (line.split() for line in self.acked.read_text().splitlines())
        return {r[0]: int(r[1]) for r in rows if len(r) == 2}

    def stop_producer(self) -> None:
        """SIGTERM the producer and wait for it (the entries it acknowledged are in ``acked``)."""
        if self.producer is not None:
            assert stop_process(self.producer) == 0, self.log("producer")

    def stop_cleanly(self) -> None:
        """Stop every process (SIGTERM, drain); every worker must exit with 0."""
        if self.producer is not None:
            stop_process(self.producer)
        codes = [stop_process(w) for w in self.workers]
        assert codes == [0] * len(codes), "".join(self.log(f"w{i}") for i in range(len(codes)))

    async def recovers(self, app: Baton, promoted_ms: int, steady: int,
                       status_of: StatusReader | None = None) -> dict[str, int]:
        """After a promotion: runs complete within RESUME_S, ``steady`` more entries are acknowledged,
        and then every acknowledged submission passes check_acknowledged (its counts)."""
        await self.resumed_after(app, promoted_ms, status_of)
        await self.until_acknowledged(steady, after_ms=promoted_ms)
        self.stop_producer()
        return await check_acknowledged(app, self)

    def log(self, name: str) -> str:
        """The tail of a process's log (w0, w1, producer)."""
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    async def working(self, app: Baton, n: int) -> None:
        """Until ``n`` entries are acknowledged and the nodes have completed runs (they are serving)."""
        await self.until_acknowledged(n)

        async def some_completed() -> bool:
            for run_id in list(self.acknowledged())[:5]:
                run = await app.get_run(run_id)
                if run is not None and run.status == "completed":
                    return True
            return False

        await eventually(some_completed, 30, 0.1)

    async def until_acknowledged(self, n: int, after_ms: int = 0, timeout: float = 30) -> None:
        """Until the producer has acknowledged ``n`` entries at or after ``after_ms``."""
        await eventually(lambda: sum(1 for t in self.acknowledged().values() if t >= after_ms) >= n, timeout, 0.1)

    async def resumed_after(self, app: Baton, promoted_ms: int, status_of: StatusReader | None = None) -> float:
        """Seconds from the promotion until a run acknowledged after it has completed; fails past RESUME_S.

        ``status_of`` reads a run's status on the new master: a client that only reads (this test's)
        may go on reading the old one, which answers as a master until Sentinel demotes it."""
        async def app_status(run_id: str) -> str | None:
            run = await app.get_run(run_id)
            return run.status if run else None

        read = status_of or app_status

        async def completed_after() -> bool:
            later = [rid for rid, t in self.acknowledged().items() if t >= promoted_ms]
            for run_id in later[-20:]:  # the newest: the first ones may wait for a lease lost in the fault
                if await read(run_id) == "completed":
                    return True
            return False

        await eventually(completed_after, RESUME_S, 0.1)
        return time.time() - promoted_ms / 1000


async def check_acknowledged(app: Baton, fleet: Fleet) -> dict[str, int]:
    """Every acknowledged submission ends in exactly one terminal state (completed, the job cannot
    fail), its timeline shows one completion, and its handler's side effect happened once per
    recorded attempt at most (a second execution only with a retry recorded); returns counts."""
    acked = sorted(fleet.acknowledged())
    assert acked, fleet.log("producer")

    async def not_terminal() -> list[str]:
        left = []
        for run_id in acked:
            run = await app.get_run(run_id)
            if run is None or run.status not in TERMINAL_STATUSES:
                left.append(f"{run_id}: {run.status if run else 'missing'}")
        return left

    deadline = time.monotonic() + 60
    while left := await not_terminal():
        assert time.monotonic() < deadline, f"acknowledged runs not terminal after 60 s: {left[:10]} ({len(left)})"
        await asyncio.sleep(0.5)
    effects: dict[str, list[int]] = defaultdict(list)
    for line in fleet.effects.read_text().splitlines():
        run_id, attempt, _node = line.split()
        effects[run_id].append(int(attempt))
    problems: list[str] = []
    retried = 0
    for run_id in acked:
        run = await app.get_run(run_id)
        assert run is not None
        numbers = [a.number for a in run.attempts]
        completions = [a for a in run.attempts if a.status == "completed"]
        terminal_events = [e for e in await app.get_events(run_id)
                           if e["type"] == "status" and isinstance(e["data"], dict)
                           and e["data"].get("status") in TERMINAL_STATUSES]
        executed = Counter(effects.get(run_id, []))
        if run.status != "completed" or len(completions) != 1 or len(terminal_events) != 1:
            problems.append(f"{run_id}: {run.status}, {len(completions)} completed attempts, "
                            f"{len(terminal_events)} terminal events")
        if not executed or any(n > 1 for n in executed.values()) or not set(executed) <= set(numbers):
            problems.append(f"{run_id}: executions by attempt {dict(executed)}, recorded attempts {numbers}")
        retried += len(numbers) > 1
    assert not problems, problems[:10]
    return {"acknowledged": len(acked), "retried": retried}
