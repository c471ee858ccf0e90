"""saq: ``Queue.from_url`` + ``queue.enqueue``; ``saq settings`` worker with ``concurrency``."""

from __future__ import annotations

import sys
from typing import Any

from .base import Adapter


class SaqAdapter(Adapter):
    name = "saq"
    packages = ("saq", "uvloop", "redis", "hiredis")
    one_api = "await queue.enqueue()"
    worker_note = "saq CLI on uvloop (bench/peers/on_uvloop.py; no measurable difference), concurrency=100"
    completion_note = "N − queue.count('incomplete')"

    async def setup(self) -> None:
        from saq import Queue

        self.queue = Queue.from_url(self.redis_url, name=self.ns)
        await self.queue.connect()

    async def teardown(self) -> None:
        await self.queue.disconnect()

    async def enqueue_one(self, job: str, data: dict[str, Any]) -> None:
        await self.queue.enqueue(job, payload=data)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "bench.peers.on_uvloop", "saq", "bench.peers.saq_app.settings"]

    async def completed_count(self, expected: int) -> int:
        return expected - int(await self.queue.count("incomplete"))
