"""taskiq with taskiq-redis's ``RedisStreamBroker``: ``await task.kiq()``; its programmatic receiver.

``taskiq`` runs the Receiver through ``taskiq.api.run_receiver_task`` on uvloop
(bench/peers/taskiq_worker.py), as the independent harness of #20 did; the
variant ``taskiq-cli`` runs the ``taskiq worker`` command with the same options
(it uses uvloop too when installed) for comparison.
"""

from __future__ import annotations

import sys
from typing import Any

from .base import Adapter, venv_bin


class TaskiqAdapter(Adapter):
    name = "taskiq"
    packages = ("taskiq", "taskiq-redis", "uvloop", "redis", "hiredis")
    one_api = "await task.kiq()"
    worker_note = ("taskiq.api.run_receiver_task (the programmatic receiver: one process), uvloop (taskiq[uv]), "
                   "max_async_tasks=100, validate_params=False (= --no-parse), max_prefetch=0 (default); "
                   "RedisStreamBroker defaults (xread_count=100), no result backend; uvloop and no parsing took ~10% "
                   "off its CPU per run, receiver and CLI measured the same (bench/results/peer-configs.md)")
    completion_note = "N − (lag + pending) of the consumer group (acked after execution)"
    stop_timeout = 3.0  # taskiq's worker takes ~15 s to exit on SIGTERM; stopping is not measured

    async def setup(self) -> None:
        import redis.asyncio as aioredis

        from bench.peers.taskiq_app import build

        self.broker, noop, latency = build(self.redis_url, self.ns)
        self.tasks = {"noop": noop, "latency": latency}
        await self.broker.startup()  # creates the consumer group (from "$": before the first kick)
        self.redis = aioredis.from_url(self.redis_url)

    async def teardown(self) -> None:
        await self.broker.shutdown()
        await self.redis.aclose()

    async def enqueue_one(self, job: str, data: dict[str, Any]) -> None:
        await self.tasks[job].kiq(data)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "bench.peers.taskiq_worker"]

    async def completed_count(self, expected: int) -> int:
        for g in await self.redis.xinfo_groups(self.ns):
            name = g.get("name")
            if name in (self.ns, self.ns.encode()):
                lag = g.get("lag")
                if lag is None:  # unknown lag (never with this harness); fall back to stream length
                    lag = 0
                return expected - int(lag) - int(g.get("pending") or 0)
        return 0


class TaskiqCliAdapter(TaskiqAdapter):
    """The same broker and tasks, run by the ``taskiq worker`` command."""

    name = "taskiq-cli"
    worker_note = ("taskiq worker --workers 1 --max-async-tasks 100 --no-parse (uvloop), RedisStreamBroker, "
                   "no result backend")
    phases = ("drain", "latency")

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("taskiq"), "worker", "bench.peers.taskiq_app:broker", "--workers", "1",
                "--max-async-tasks", str(concurrency), "--no-parse", "--log-level", "WARNING"]
