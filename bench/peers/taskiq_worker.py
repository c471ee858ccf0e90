"""taskiq worker through its programmatic API: ``python -m bench.peers.taskiq_worker``.

``taskiq.api.run_receiver_task`` runs taskiq's Receiver in this process, on
uvloop (taskiq's ``uv`` extra; its CLI worker picks uvloop up the same way), with
``max_async_tasks`` = BENCH_CONCURRENCY and no parameter parsing. Unlike ``taskiq worker`` there is no
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
    # validate_params=False is the CLI's documented --no-parse: the tasks take their input as it
    # comes (as Baton's benchmark jobs do); max_prefetch stays at its default 0 (100 measured no faster)
    receiver = asyncio.create_task(run_receiver_task(
        broker, max_async_tasks=int(os.environ["BENCH_CONCURRENCY"]), validate_params=False))
    await stop.wait()
    receiver.cancel()
    await broker.shutdown()


if __name__ == "__main__":
    uvloop.run(main())
