"""bullmq (Python) worker: ``python -m bench.peers.bullmq_worker`` (bullmq has no worker CLI)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import uvloop
from bullmq import Worker

from bench.jobs_support import amark_first, arecord_latency


async def process(job: Any, token: str) -> None:
    if job.name == "latency":
        await arecord_latency(job.data["t"])
    else:
        await amark_first()


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(os.environ["BENCH_NS"], process, {
        "connection": os.environ["BENCH_REDIS_URL"], "concurrency": int(os.environ["BENCH_CONCURRENCY"]),
    })
    await stop.wait()
    await worker.close()


if __name__ == "__main__":
    uvloop.run(main())
