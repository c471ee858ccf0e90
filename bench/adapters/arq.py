"""arq: ``create_pool`` + ``enqueue_job``; ``arq WorkerSettings`` with ``max_jobs``."""

from __future__ import annotations

import sys
from typing import Any

from .base import Adapter


class ArqAdapter(Adapter):
    name = "arq"
    one_api = "await pool.enqueue_job()"
    packages = ("arq", "uvloop", "redis", "hiredis")
    worker_note = ("arq CLI on uvloop, max_jobs=100; polls the queue every poll_delay=0.5 s (default; a shorter "
                   "one trades Redis calls for pickup latency)")
    completion_note = "N − ZCARD of the queue (arq drops a job from it when it finishes)"

    async def setup(self) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self.pool = await create_pool(RedisSettings.from_dsn(self.redis_url), default_queue_name=self.ns)

    async def teardown(self) -> None:
        await self.pool.aclose()

    async def enqueue_one(self, job: str, data: dict[str, Any]) -> None:
        await self.pool.enqueue_job(job, data)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "bench.peers.on_uvloop", "arq", "--custom-log-dict",
                "bench.peers.arq_app.LOG_CONFIG", "bench.peers.arq_app.WorkerSettings"]

    async def completed_count(self, expected: int) -> int:
        return expected - int(await self.pool.zcard(self.ns))
