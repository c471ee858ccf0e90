"""Baton: ``app.trigger`` / ``app.trigger_batch`` / XADD to the submission stream; ``baton worker`` nodes."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from bench.common import spawn, worker_env

from .base import Adapter

BATCH = 1000  # runs per trigger_batch call / per XADD pipeline


class BatonAdapter(Adapter):
    name = "baton"
    packages = ("baton", "redis", "hiredis", "orjson", "uvloop")
    one_api = "await app.trigger()"
    bulk_api = f"app.trigger_batch(), {BATCH} runs per call"
    worker_note = "python -m runtime worker (uvloop), BATON_CONCURRENCY=100"
    completion_note = "ZCARD of the `completed` status index; first start from the job"
    extra_env: ClassVar[dict[str, str]] = {}
    phases = ("enqueue", "drain", "latency", "latency_load", "memory")

    async def setup(self) -> None:
        from bench.baton_app import app as jobs_app
        from runtime import Baton, Settings

        self.app = Baton(Settings(redis_url=self.redis_url, prefix=self.ns, metrics_port=0))
        for job in jobs_app.jobs:
            self.app.jobs.add(job.name, job.handler, job.options)
        self.keys = self.app.keys
        self.redis = self.app.redis
        self.first_id: str | None = None
        self.plain: Any = None  # a plain redis-py client, for XADD probes (made on first use)

    async def teardown(self) -> None:
        if self.plain is not None:
            await self.plain.aclose()
        await self.app.close()

    async def enqueue_one(self, job: str, data: dict[str, Any]) -> None:
        run_id = await self.app.trigger(job, data)
        if self.first_id is None:
            self.first_id = run_id

    async def enqueue_bulk(self, job: str, items: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(items), BATCH):
            await self.app.trigger_batch([{"job": job, "input": d} for d in items[start:start + BATCH]])

    async def xadd_bulk(self, job: str, items: Sequence[dict[str, Any]]) -> None:
        """Pipelined XADD to the submission stream (what any producer language can do)."""
        import orjson

        stream = self.keys.submit_stream
        for start in range(0, len(items), BATCH):
            pipe = self.redis.pipeline(transaction=False)
            for d in items[start:start + BATCH]:
                pipe.xadd(stream, {"job": job, "input": orjson.dumps(d)})
            await pipe.execute()

    async def xadd_one(self, job: str, data: dict[str, Any]) -> None:
        """One XADD to the submission stream by a plain redis-py client (not Baton's)."""
        import orjson
        import redis.asyncio as aioredis

        if self.plain is None:
            self.plain = aioredis.Redis.from_url(self.redis_url)
        await self.plain.xadd(self.keys.submit_stream, {"job": job, "input": orjson.dumps(data)})

    def baton_env(self, concurrency: int, **extra: Any) -> dict[str, str]:
        env = {
            "BATON_REDIS_URL": self.redis_url, "BATON_PREFIX": self.ns, "BATON_CONCURRENCY": str(concurrency),
            "BATON_METRICS_PORT": "0", "BATON_LOG_LEVEL": "WARNING", "BATON_LOG_FORMAT": "text",
        }
        env.update(self.extra_env)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start_worker(self, concurrency: int, processes: int = 1, tag: str = "w", **extra: Any) -> list[Any]:
        argv = [sys.executable, "-m", "runtime", "worker", "--app", "bench.baton_app:app"]
        procs = []
        for i in range(processes):
            env = worker_env(self.redis_url, self.ns, concurrency,
                             **self.baton_env(concurrency, BATON_NODE_ID=f"{tag}{i}", **extra))
            procs.append(spawn(argv, env, self.log_dir / f"baton-{tag}{i}.log"))
        return procs

    async def completed_count(self, expected: int) -> int:
        from bench.own_node import completed_runs

        return await completed_runs(self.app)

    async def queued_count(self) -> int:
        return int(await self.redis.zcard(self.keys.partitions[0].ready("default")))

    async def wait_nodes(self, n: int, timeout: float = 60.0) -> None:
        """Until ``n`` nodes have written their first heartbeat (they are then serving)."""
        deadline = time.time() + timeout
        while int(await self.redis.zcard(self.keys.nodes)) < n:
            if time.time() > deadline:
                raise RuntimeError(f"baton: {n} node(s) not up after {timeout}s (logs in {self.log_dir})")
            await asyncio.sleep(0.02)

    async def run_finish_span(self) -> dict[str, float]:
        """Cross-check from Baton's records: first run's started_at to the newest completed-index score."""
        from runtime.records import Run

        p = self.keys.partitions[0]
        newest = await self.redis.zrevrange(p.status("completed"), 0, 0, withscores=True)
        started = Run.from_hash(await self.redis.hgetall(p.run(self.first_id or ""))).started_at_ms
        done = int(await self.redis.zcard(p.status("completed")))
        if not newest or started is None:
            return {"rate": float("nan")}
        span = newest[0][1] / 1000 - started / 1000
        return {"rate": done / span if span > 0 else float("nan"), "span_s": span}
