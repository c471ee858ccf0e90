"""taskiq broker (taskiq-redis stream broker) and tasks: ``taskiq worker bench.peers.taskiq_app:broker``."""

from __future__ import annotations

import os
from typing import Any

from taskiq_redis import RedisStreamBroker

from bench.jobs_support import amark_first, arecord_latency


def build(redis_url: str, ns: str) -> tuple[Any, Any, Any]:
    broker = RedisStreamBroker(url=redis_url, queue_name=ns, consumer_group_name=ns)

    @broker.task(task_name="noop")
    async def noop(payload: dict[str, Any]) -> None:
        await amark_first()

    @broker.task(task_name="latency")
    async def latency(payload: dict[str, Any]) -> None:
        await arecord_latency(payload["t"])

    return broker, noop, latency


broker, noop, latency = build(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1"),
                              os.environ.get("BENCH_NS", "taskiq"))
