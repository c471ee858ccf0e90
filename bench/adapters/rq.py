"""rq: ``Queue.enqueue`` / ``Queue.enqueue_many``; ``rq worker`` with its SimpleWorker class.

rq's own notes on performance (docs/benchmark.md) measure SimpleWorker, which
runs jobs in process instead of forking a work horse per job, about 6x faster,
and advise it for jobs of single-digit milliseconds: the benchmark's no-op jobs.
``rq-fork`` keeps the default forking Worker for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import venv_bin
from .sync_base import SyncAdapter

BATCH = 1000


class RqAdapter(SyncAdapter):
    name = "rq"
    packages = ("rq", "redis", "hiredis")
    one_api = "queue.enqueue()"
    bulk_api = f"queue.enqueue_many(), {BATCH} jobs per call"
    worker_note = ("rq worker --worker-class rq.SimpleWorker: sync, one job at a time, in process (rq's advice "
                   "for jobs of a few ms; variant rq-fork forks a work horse per job)")
    completion_note = "queue.finished_job_registry.count; first start from the first job's started_at"
    worker_class = "rq.SimpleWorker"

    async def setup(self) -> None:
        from redis import Redis
        from rq import Queue

        from bench.peers import rq_app

        self.conn = Redis.from_url(self.redis_url)
        self.queue = Queue(self.ns, connection=self.conn)
        self.funcs = {"noop": rq_app.noop, "latency": rq_app.latency}
        self.first_id: str | None = None

    async def teardown(self) -> None:
        self.conn.close()

    def enqueue_sync(self, job: str, data: dict[str, Any]) -> None:
        j = self.queue.enqueue(self.funcs[job], data)
        if self.first_id is None:
            self.first_id = j.id

    async def enqueue_bulk(self, job: str, items: Sequence[dict[str, Any]]) -> None:
        from rq import Queue

        for start in range(0, len(items), BATCH):
            jobs = self.queue.enqueue_many(
                [Queue.prepare_data(self.funcs[job], args=(d,)) for d in items[start:start + BATCH]])
            if self.first_id is None and jobs:
                self.first_id = jobs[0].id

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("rq"), "worker", "--url", self.redis_url, "--logging_level", "WARNING",
                "--worker-class", self.worker_class, self.ns]

    def completed_sync(self, expected: int) -> int:
        return int(self.queue.finished_job_registry.count)

    async def first_start(self) -> float | None:
        """rq records each job's start; the worker takes jobs in FIFO order, one at a time."""
        from rq.job import Job

        if self.first_id is None:
            return None
        job = Job.fetch(self.first_id, connection=self.conn)
        started = job.started_at
        if started is None:
            return None
        if started.tzinfo is None:
            from datetime import UTC

            started = started.replace(tzinfo=UTC)
        return float(started.timestamp())


class RqForkAdapter(RqAdapter):
    """rq's default Worker: a forked work horse per job."""

    name = "rq-fork"
    worker_note = "rq worker (default Worker): sync, one job at a time, forks a work horse per job"
    worker_class = "rq.Worker"
    phases = ("drain",)
