"""arq: ``create_pool`` + ``enqueue_job``; ``arq WorkerSettings`` with ``max_jobs``."""

from __future__ import annotations

from typing import Any

from .base import Adapter, venv_bin


class ArqAdapter(Adapter):
    name = "arq"
    packages = ("arq", "redis", "hiredis")
    one_api = "await pool.enqueue_job()"
    worker_note = "arq CLI, max_jobs=100; polls the queue every poll_delay=0.5 s (default)"
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
        return [venv_bin("arq"), "--custom-log-dict", "bench.peers.arq_app.LOG_CONFIG",
                "bench.peers.arq_app.WorkerSettings"]

    async def completed_count(self, expected: int) -> int:
        return expected - int(await self.pool.zcard(self.ns))
