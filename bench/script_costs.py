"""Redis time per Lua script call on the pickup path: where a single run's pickup goes inside Redis.

    .venv/bin/python -m bench.script_costs [--runs 400]

Starts its own redis-server (a free port) with SLOWLOG recording every command, runs one worker
process of bench.baton_app at concurrency 100, and triggers ``--runs`` runs one at a time, 5 ms
apart, as the pickup benchmark does. Prints, per script, the calls and the median / p90 time
Redis spent in each call (FCALL, or EVALSHA; commands it ran included), and then, on a fresh
server with every script loaded both ways, the time of a call that returns before doing any
work: as a script (EVALSHA) that is what running its top-level chunk (every include's
definitions) costs on each call; as a Redis Function (FCALL) the chunk ran once, at load. Times come from Redis's own
SLOWLOG (microseconds of server time), so they hold on a busy machine better than wall clocks.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import redis

from bench.baton_app import app as jobs_app
from bench.common import ROOT
from runtime import Baton, Settings
from runtime.lua_source import library, load_source
from runtime.scripts import SCRIPT_NAMES, Scripts
from tests.servers import RedisProcess


class _Recorded(Scripts):
    """The script wrappers, recording each call's arguments instead of making it."""

    calls: dict[str, tuple[list[str], list[Any]]]

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        self.calls[name] = (list(keys), list(args))
        return {"runs_create": [[], [], 0, -1], "runs_finish": [], "leases_renew": [[], []]}.get(name, -2)


async def _empty_call_args(redis_url: str) -> dict[str, tuple[list[str], list[Any]]]:
    """Calls that return before any work (no items, an unknown run): the per-call cost of the chunk.
    Their arguments are what the node's own wrappers pass (runtime/scripts.py), so they follow the
    scripts as those change."""
    app = Baton(Settings(redis_url=redis_url, metrics_port=0))
    recorder = _Recorded(app.redis, app.keys, app.settings)  # (its client is never used: nothing is sent)
    recorder.calls = {}
    p = app.keys.partitions[0]
    try:
        await recorder.create(p, [])
        await recorder.finish(p, [])
        await recorder.renew(p, [], "bench-incarnation")
        await recorder.watch("none")
    finally:
        await app.close()
    return recorder.calls


def _record_all(client: Any) -> None:
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 1_000_000)
    client.slowlog_reset()


def _script_times(client: Any) -> dict[str, list[int]]:
    """Microseconds per script call (EVALSHA or FCALL) from SLOWLOG, by script name (``<name> (EVALSHA)``
    for a script)."""
    names = {hashlib.sha1(load_source(n).encode()).hexdigest(): f"{n} (EVALSHA)" for n in SCRIPT_NAMES}
    names.update({library(n).name: n for n in SCRIPT_NAMES})
    times: dict[str, list[int]] = defaultdict(list)
    for entry in client.slowlog_get(1_000_000):
        command = entry["command"]
        parts = (command if isinstance(command, bytes) else str(command).encode()).split()
        if parts and parts[0].upper() in (b"EVALSHA", b"FCALL") and len(parts) > 1:
            times[names.get(parts[1].decode(), parts[1].decode()[:12])].append(int(entry["duration"]))
    return times


def _print(title: str, times: dict[str, list[int]]) -> None:
    print(title)
    for name, values in sorted(times.items(), key=lambda kv: -len(kv[1])):
        values.sort()
        print(f"  {name:16} calls {len(values):6}  median {statistics.median(values):7.1f} us"
              f"  p90 {values[int(len(values) * 0.9)]:7.1f} us")


async def pickup_path(runs: int) -> None:
    """Single runs through app.trigger to an idle worker, with every command's server time recorded."""
    server = RedisProcess().start()
    app = Baton(Settings(redis_url=server.url, metrics_port=0))
    for job in jobs_app.jobs:
        app.jobs.add(job.name, job.handler, job.options)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATON_REDIS_URL": server.url, "BENCH_REDIS_URL": server.url,
           "BATON_METRICS_PORT": "0", "BATON_CONCURRENCY": "100", "BATON_LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", "bench.baton_app:app"],
                              cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    client = redis.Redis.from_url(server.url)
    try:
        await app.register_jobs()
        deadline = time.monotonic() + 20
        while not client.keys("*waiter:*"):  # the idle node registered for hand-offs
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the worker did not start")
            await asyncio.sleep(0.05)
        _record_all(client)
        for _ in range(runs):
            await app.trigger("latency", {"t": time.time(), "pad": "x" * 60})
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.5)
        _print(f"{runs} runs triggered one at a time, 5 ms apart, to an idle worker (Redis time per call):",
               _script_times(client))
    finally:
        worker.terminate()
        worker.wait(30)
        await app.close()
        server.stop()


def empty_calls(calls: int = 300) -> None:
    """The per-call cost of each script's top-level chunk, with every script loaded (as on a node)."""
    server = RedisProcess().start()
    client = redis.Redis.from_url(server.url)
    try:
        shas = {name: client.script_load(load_source(name)) for name in SCRIPT_NAMES}
        for name in SCRIPT_NAMES:
            client.function_load(library(name).source, replace=True)
        memory = client.info("memory")
        heaps = (f"Lua heap: scripts {memory.get('used_memory_vm_eval', memory.get('used_memory_lua'))} B, "
                 f"functions {memory.get('used_memory_vm_functions')} B")
        _record_all(client)
        for name, (keys, args) in asyncio.run(_empty_call_args(server.url)).items():
            for _ in range(calls):
                client.evalsha(shas[name], len(keys), *keys, *args)
                client.fcall(library(name).name, len(keys), *keys, *args)
        _print(f"calls that return before any work, every script loaded both ways ({heaps}):",
               _script_times(client))
    finally:
        server.stop()


def main() -> None:
    """Run both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()
    asyncio.run(pickup_path(args.runs))
    empty_calls()


if __name__ == "__main__":
    main()
