"""saq jobs and worker settings: ``saq bench.peers.saq_app.settings``."""

from __future__ import annotations

import os
from typing import Any

from saq import Queue

from bench.jobs_support import amark_first, arecord_latency


async def noop(ctx: dict[str, Any], *, payload: dict[str, Any]) -> None:
    await amark_first()


async def latency(ctx: dict[str, Any], *, payload: dict[str, Any]) -> None:
    await arecord_latency(payload["t"])


settings = {
    "queue": Queue.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1"),
                            name=os.environ.get("BENCH_NS", "default")),
    "functions": [noop, latency],
    "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "100")),
}
