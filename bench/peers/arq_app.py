"""arq jobs and worker settings: ``arq bench.peers.arq_app.WorkerSettings``."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq.connections import RedisSettings

from bench.jobs_support import amark_first, arecord_latency


async def noop(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    await amark_first()


async def latency(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    await arecord_latency(payload["t"])


#: arq's default logging prints every job at INFO; the benchmark runs every system at WARNING
LOG_CONFIG = {
    "version": 1, "disable_existing_loggers": False,
    "handlers": {"h": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["h"], "level": "WARNING"}},
}


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop, latency]
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1"))
    queue_name = os.environ.get("BENCH_NS", "arq:queue")
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "100"))
