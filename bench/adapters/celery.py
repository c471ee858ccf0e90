"""Celery with the Redis broker: ``task.delay()`` / ``group().apply_async()``; thread-pool worker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import venv_bin
from .sync_base import SyncAdapter

BATCH = 1000


class CeleryAdapter(SyncAdapter):
    name = "celery"
    packages = ("celery", "kombu", "redis", "hiredis")
    one_api = "task.delay()"
    bulk_api = f"group(...).apply_async(), {BATCH} tasks per group"
    worker_note = ("celery worker -P threads -c 100 --prefetch-multiplier 16 --without-gossip --without-mingle "
                   "--without-heartbeat, acks_late, no result backend")
    completion_note = "N − (LLEN queue + HLEN unacked)"
    poll_commands = 2

    async def setup(self) -> None:
        from redis import Redis

        from bench.peers.celery_app import build

        self.app, noop, latency = build(self.redis_url, self.ns)
        self.tasks = {"noop": noop, "latency": latency}
        self.redis = Redis.from_url(self.redis_url)

    async def teardown(self) -> None:
        self.redis.close()
        self.app.close()

    def enqueue_sync(self, job: str, data: dict[str, Any]) -> None:
        self.tasks[job].delay(data)

    async def enqueue_bulk(self, job: str, items: Sequence[dict[str, Any]]) -> None:
        from celery import group

        task = self.tasks[job]
        for start in range(0, len(items), BATCH):
            group(task.s(d) for d in items[start:start + BATCH]).apply_async()

    def worker_argv(self, concurrency: int) -> list[str]:
        # a larger prefetch for short tasks, and none of the cluster chatter a single worker has no use
        # for: Celery's documented worker options (about 20% less worker CPU per run measured here)
        return [venv_bin("celery"), "-A", "bench.peers.celery_app", "worker", "-P", "threads",
                "-c", str(concurrency), "--prefetch-multiplier", "16", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "WARNING"]

    def completed_sync(self, expected: int) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(self.ns)
        pipe.hlen("unacked")
        queued, unacked = pipe.execute()
        return expected - int(queued) - int(unacked)
