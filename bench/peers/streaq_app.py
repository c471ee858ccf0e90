"""streaq worker and tasks: ``streaq run bench.peers.streaq_app:worker``."""

from __future__ import annotations

import os
from typing import Any

from streaq import Worker

from bench.jobs_support import amark_first, arecord_latency


def build(redis_url: str, ns: str, concurrency: int) -> tuple[Any, Any, Any]:
    """The worker and its two tasks (silent: no log line per task, like every system here)."""
    # anyio_kwargs go to anyio.run: its asyncio backend's documented use_uvloop option
    worker = Worker(redis_url=redis_url, queue_name=ns, concurrency=concurrency, anyio_kwargs={"use_uvloop": True})

    @worker.task(silent=True, name="noop")
    async def noop(payload: dict[str, Any]) -> None:
        await amark_first()

    @worker.task(silent=True, name="latency")
    async def latency(payload: dict[str, Any]) -> None:
        await arecord_latency(payload["t"])

    return worker, noop, latency


worker, noop, latency = build(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1"),
                              os.environ.get("BENCH_NS", "default"), int(os.environ.get("BENCH_CONCURRENCY", "100")))
