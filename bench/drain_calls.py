"""Redis commands and Redis CPU per drained run, Baton only: a quick check while changing Lua.

    .venv/bin/python -m bench.drain_calls [--runs 20000] [--repeat 3]

Starts its own redis-server (a free port), queues ``--runs`` no-op runs with
``trigger_batch`` (a ~100-byte input, as bench/run uses), lets one worker process
(concurrency 100, or ``BATON_CONCURRENCY``) drain them, and prints INFO commandstats
per run (commands run inside Lua included; the harness's own ZCARD polls and INFO
left out), the server's CPU per run and the worker's (/proc; it starts on a paused
queue, so its start-up is not counted). Command counts are exact and repeatable; CPU and rate vary
with the machine's load: compare them only side by side with bench/run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import redis

from bench.common import ROOT, commandstats
from runtime import Baton, RunContext, Settings
from tests.servers import RedisProcess

#: commands the harness sends while it measures
_HARNESS = {"info", "zcard", "ping", "hello", "client|setinfo"}


def _cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drain_once(runs: int) -> dict[str, Any]:
    """Queue ``runs`` runs, drain them with one worker process, return the per-run figures."""
    server = RedisProcess().start()
    app = Baton(Settings(redis_url=server.url, metrics_port=0))

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        return None

    worker: subprocess.Popen[bytes] | None = None
    try:
        await app.register_jobs()
        items = [{"job": "noop", "input": {"i": i, "pad": "x" * 80}} for i in range(runs)]
        for start in range(0, runs, 1000):
            await app.trigger_batch(items[start:start + 1000])
        client = redis.Redis.from_url(server.url)
        # the worker starts on a paused queue, so its start-up is not counted
        await app.pause_queue("default")
        concurrency = os.environ.get("BATON_CONCURRENCY", "100")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BATON_REDIS_URL": server.url, "BENCH_REDIS_URL": server.url,
               "BATON_METRICS_PORT": "0", "BATON_CONCURRENCY": concurrency, "BATON_LOG_LEVEL": "WARNING",
               "BATON_OBSERVE_INTERVAL_MS": "0"}
        worker = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", "bench.baton_app:app"],
                                  cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
        while not client.zcard(app.keys.nodes):
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}")
            time.sleep(0.05)
        before, cpu_before, started = commandstats(client), _cpu(client), time.perf_counter()
        worker_before = _process_cpu(worker.pid)
        await app.resume_queue("default")
        done = app.keys.partitions[0].status("completed")
        while client.zcard(done) < runs:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        after, cpu_after, worker_after = commandstats(client), _cpu(client), _process_cpu(worker.pid)
        calls = {k: after.get(k, 0) - before.get(k, 0) for k in after if k not in _HARNESS}
        calls = {k: v for k, v in calls.items() if v > 0}
        return {
            "runs": runs, "runs_per_s": round(runs / seconds), "commands_per_run": round(sum(calls.values()) / runs, 2),
            "redis_cpu_us_per_run": round((cpu_after - cpu_before) / runs * 1e6, 1),
            "worker_cpu_us_per_run": round((worker_after - worker_before) / runs * 1e6, 1),
            "by_command": {k: round(v / runs, 2) for k, v in sorted(calls.items(), key=lambda kv: -kv[1])
                           if v / runs >= 0.001},
        }
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        await app.close()
        server.stop()


def main() -> None:
    """Run the drain ``--repeat`` times and print one JSON line per repetition."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.repeat):
        print(json.dumps(asyncio.run(drain_once(args.runs))), flush=True)


if __name__ == "__main__":
    main()
