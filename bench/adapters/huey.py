"""huey: ``RedisHuey`` tasks called to enqueue; ``huey_consumer`` with thread workers.

Thread workers drained no-op tasks about 1.6× faster than greenlet workers
(gevent-patched) on this machine, so ``huey`` uses threads; ``huey-greenlet``
keeps the greenlet consumer for comparison.
"""

from __future__ import annotations

import sys
from typing import Any

from .base import venv_bin
from .sync_base import SyncAdapter


class HueyAdapter(SyncAdapter):
    name = "huey"
    packages = ("huey", "gevent", "redis", "hiredis")
    one_api = "task(payload)"
    worker_note = ("huey_consumer -k thread -w 100, store_none=True (thread workers: faster here than greenlet "
                   "ones, variant huey-greenlet)")
    completion_note = "huey.result_count() (a result entry per finished task, store_none=True)"

    async def setup(self) -> None:
        from bench.peers.huey_app import build

        self.huey, noop, latency = build(self.redis_url, self.ns)
        self.tasks = {"noop": noop, "latency": latency}

    def enqueue_sync(self, job: str, data: dict[str, Any]) -> None:
        self.tasks[job](data)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("huey_consumer"), "bench.peers.huey_app.huey", "-k", "thread", "-w", str(concurrency), "-q"]

    def completed_sync(self, expected: int) -> int:
        return int(self.huey.result_count())


class HueyGreenletAdapter(HueyAdapter):
    """The same tasks on huey's greenlet workers (gevent-patched, huey's documented way)."""

    name = "huey-greenlet"
    worker_note = "huey_consumer -k greenlet -w 100 (gevent-patched), store_none=True"
    phases = ("drain", "latency")

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "bench.peers.huey_consumer", "bench.peers.huey_app.huey",
                "-k", "greenlet", "-w", str(concurrency), "-q"]
