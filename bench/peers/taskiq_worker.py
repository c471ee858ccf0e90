"""taskiq worker through its programmatic API: ``python -m bench.peers.taskiq_worker``.

``taskiq.api.run_receiver_task`` runs taskiq's Receiver in this process, on
uvloop (taskiq's ``uv`` extra; its CLI worker picks uvloop up the same way), with
``max_async_tasks`` = BENCH_CONCURRENCY. Unlike ``taskiq worker`` there is no
supervising parent process and no log collector: the measured process is the
one that runs the tasks.
"""

from __future__ import annotations

import asyncio
import os
import signal

import uvloop
from taskiq.api import run_receiver_task

from bench.peers.taskiq_app import broker


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker.is_worker_process = True
    await broker.startup()
    receiver = asyncio.create_task(run_receiver_task(
        broker, max_async_tasks=int(os.environ["BENCH_CONCURRENCY"]),
        max_prefetch=int(os.environ.get("BENCH_TASKIQ_PREFETCH", "0"))))
    await stop.wait()
    receiver.cancel()
    await broker.shutdown()


if __name__ == "__main__":
    uvloop.run(main())
