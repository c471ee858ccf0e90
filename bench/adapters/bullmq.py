"""bullmq (Python): ``Queue.add`` / ``Queue.addBulk``; a ``Worker`` with ``concurrency``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from .base import Adapter

BATCH = 1000


class BullmqAdapter(Adapter):
    name = "bullmq"
    packages = ("bullmq", "uvloop", "redis", "hiredis")
    one_api = "await queue.add()"
    bulk_api = f"queue.addBulk(), {BATCH} jobs per call"
    worker_note = "bullmq.Worker, concurrency=100, on uvloop (bench/peers/bullmq_worker.py)"
    completion_note = "queue.getJobCounts('completed')"

    async def setup(self) -> None:
        from bullmq import Queue

        self.queue = Queue(self.ns, {"connection": self.redis_url})

    async def teardown(self) -> None:
        await self.queue.close()

    async def enqueue_one(self, job: str, data: dict[str, Any]) -> None:
        await self.queue.add(job, data)

    async def enqueue_bulk(self, job: str, items: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(items), BATCH):
            await self.queue.addBulk([{"name": job, "data": d} for d in items[start:start + BATCH]])

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "bench.peers.bullmq_worker"]

    async def completed_count(self, expected: int) -> int:
        counts = await self.queue.getJobCounts("completed")
        return int(counts.get("completed", 0))
