"""streaq: ``await task.enqueue(...).start()`` / ``worker.enqueue_many``; ``streaq run`` worker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Adapter, venv_bin

BATCH = 1000


class StreaqAdapter(Adapter):
    name = "streaq"
    packages = ("streaq", "coredis", "uvloop", "redis", "hiredis")
    one_api = "await task.enqueue().start()"
    bulk_api = f"worker.enqueue_many(), {BATCH} tasks per call"
    worker_note = "streaq CLI, concurrency=100 (prefetch defaults to it), silent tasks, uvloop (anyio's use_uvloop)"
    completion_note = "N − worker.queue_size() (streaq XDELs a task when it finishes)"
    poll_commands = 4

    async def setup(self) -> None:
        from bench.peers.streaq_app import build

        self.worker, noop, latency = build(self.redis_url, self.ns, 100)
        self.tasks = {"noop": noop, "latency": latency}
        self._ctx = self.worker.__asynccontextmanager__()
        await self._ctx.__aenter__()

    async def teardown(self) -> None:
        await self._ctx.__aexit__(None, None, None)

    async def enqueue_one(self, job: str, data: dict[str, Any]) -> None:
        await self.tasks[job].enqueue(data).start()

    async def enqueue_bulk(self, job: str, items: Sequence[dict[str, Any]]) -> None:
        task = self.tasks[job]
        for start in range(0, len(items), BATCH):
            await self.worker.enqueue_many([task.enqueue(d) for d in items[start:start + BATCH]])

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("streaq"), "run", "bench.peers.streaq_app:worker"]

    async def completed_count(self, expected: int) -> int:
        return expected - int(await self.worker.queue_size())
