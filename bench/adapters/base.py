"""The adapter interface: the same operations, implemented with each system's own API.

An adapter lives in the producer (driver) process. ``start_worker`` starts the
system's worker as separate OS processes (stopped by pid with ``common.stop``);
completion is read from the system's own state (``completed_count``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from bench.common import worker_env


class NotSupported(Exception):
    """The system has no API for this operation (reported as n/a)."""


class Adapter:
    """Base class. ``ns`` is a fresh namespace (queue name / key prefix) per repetition."""

    name: ClassVar[str] = "?"
    #: distributions whose versions are reported
    packages: ClassVar[tuple[str, ...]] = ("redis", "hiredis")
    #: how the bulk enqueue is done, or None when the system has no bulk API
    bulk_api: ClassVar[str | None] = None
    #: how "100 in flight" is done
    in_flight_api: ClassVar[str] = "asyncio.gather, windows of 100"
    #: how one-at-a-time is done
    one_api: ClassVar[str] = ""
    #: how the worker runs (shown in the table notes)
    worker_note: ClassVar[str] = ""
    #: how completion is read
    completion_note: ClassVar[str] = ""
    #: Redis commands one completed_count() call sends (subtracted from command counts)
    poll_commands: ClassVar[int] = 1
    #: True when the client API is synchronous
    sync: ClassVar[bool] = False
    #: seconds a worker gets to exit after SIGTERM before SIGKILL (stopping is not measured)
    stop_timeout: ClassVar[float] = 15.0
    #: OS processes one worker command runs (dramatiq's default forks one per CPU)
    processes: ClassVar[int] = 1
    #: the common phases this system runs by default (a variant of a peer skips what it shares with the
    #: peer); "latency_load" is Baton's unless named with --phases: a peer without a bulk API pays one
    #: client call per background run, and on 2 shared cores that producer takes CPU from its worker
    phases: ClassVar[tuple[str, ...]] = ("enqueue", "drain", "latency", "memory")

    def __init__(self, redis_url: str, ns: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.ns = ns
        self.log_dir = log_dir
        self.polls = 0

    # -- lifecycle -------------------------------------------------------------

    async def setup(self) -> None:
        """Connect and create whatever the producer needs."""

    async def teardown(self) -> None:
        """Close connections."""

    # -- enqueueing (each returns when the runs exist in Redis) ------------------

    async def enqueue_one(self, job: str, data: dict[str, Any]) -> None:
        raise NotImplementedError

    async def enqueue_many(self, job: str, items: Sequence[dict[str, Any]], in_flight: int) -> None:
        """Enqueue with ``in_flight`` calls outstanding at a time (asyncio default)."""
        sem = asyncio.Semaphore(in_flight)

        async def one(d: dict[str, Any]) -> None:
            async with sem:
                await self.enqueue_one(job, d)

        for start in range(0, len(items), 10 * in_flight):
            await asyncio.gather(*(one(d) for d in items[start:start + 10 * in_flight]))

    async def enqueue_bulk(self, job: str, items: Sequence[dict[str, Any]]) -> None:
        raise NotSupported(f"{self.name} has no bulk enqueue API")

    async def enqueue_now(self, job: str, items: Sequence[dict[str, Any]]) -> None:
        """Submit a handful of runs at once (background load): the bulk API, else all in flight."""
        try:
            await self.enqueue_bulk(job, items)
        except NotSupported:
            await asyncio.gather(*(self.enqueue_one(job, d) for d in items))

    # -- workers -------------------------------------------------------------------

    def worker_argv(self, concurrency: int) -> list[str]:
        raise NotImplementedError

    def worker_extra_env(self, concurrency: int) -> dict[str, str]:
        return {}

    def start_worker(self, concurrency: int, processes: int = 1, tag: str = "w") -> list[subprocess.Popen[bytes]]:
        """Start ``processes`` worker processes (each in its own process group)."""
        from bench.common import spawn

        if processes != 1:
            raise NotSupported(f"{self.name}: the harness runs one worker process")
        env = worker_env(self.redis_url, self.ns, concurrency, **self.worker_extra_env(concurrency))
        return [spawn(self.worker_argv(concurrency), env, self.log_dir / f"{self.name}-{tag}.log")]

    # -- completion ----------------------------------------------------------------

    async def completed_count(self, expected: int) -> int:
        """Runs completed so far, read from the system's own state."""
        raise NotImplementedError

    async def wait_drained(self, expected: int, cap_s: float, procs: Sequence[subprocess.Popen[bytes]],
                           interval: float = 0.02) -> tuple[float, int, bool]:
        """Poll until ``expected`` runs completed or ``cap_s`` passed.

        Returns (time of the poll that saw the last completion, completed, capped).
        """
        from bench.common import group_cpu_s

        deadline = time.time() + cap_s
        done = 0
        pgids = {p.pid for p in procs}
        self.cpu_mark: tuple[float, int, float] | None = None  # (time, completed, worker CPU s) once under way
        self.worker_cpu_per_run: float | None = None
        while True:
            done = await self.completed_count(expected)
            self.polls += 1
            t = time.time()
            if self.cpu_mark is None and done >= max(expected // 20, 1):
                self.cpu_mark = (t, done, group_cpu_s(pgids))
            if (done >= expected or t > deadline) and self.cpu_mark is not None and done > self.cpu_mark[1]:
                t0, d0, c0 = self.cpu_mark
                self.worker_cpu_per_run = (group_cpu_s(pgids) - c0) / (done - d0)
                self.worker_busy = (group_cpu_s(pgids) - c0) / max(t - t0, 1e-9)
            if done >= expected:
                return t, done, False
            if t > deadline:
                return t, done, True
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{self.name} worker exited with code {p.returncode} "
                                       f"(log in {self.log_dir})")
            await asyncio.sleep(interval)

    async def wait_ready(self, procs: Sequence[subprocess.Popen[bytes]], timeout: float = 60.0) -> None:
        """Until the worker takes jobs: a probe run must complete (used before latency runs)."""


def venv_bin(name: str) -> str:
    """A console script of the current virtualenv."""
    return str(Path(sys.executable).parent / name)
