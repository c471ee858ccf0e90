"""huey instance and tasks: ``huey_consumer bench.peers.huey_app.huey -k thread -w 100``."""

from __future__ import annotations

import os
from typing import Any

from huey import RedisHuey

from bench.jobs_support import mark_first, record_latency


def build(redis_url: str, ns: str) -> tuple[Any, Any, Any]:
    # store_none: a completed task leaves a result entry even though it returns None,
    # so completions can be counted from huey's own result store (result_count()).
    huey = RedisHuey(ns, url=redis_url, store_none=True)

    @huey.task(name="noop")
    def noop(payload: dict[str, Any]) -> None:
        mark_first()

    @huey.task(name="latency")
    def latency(payload: dict[str, Any]) -> None:
        record_latency(payload["t"])

    return huey, noop, latency


huey, noop, latency = build(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1"),
                            os.environ.get("BENCH_NS", "huey"))
