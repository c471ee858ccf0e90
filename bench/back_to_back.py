"""Pickup of runs submitted back to back: ``python -m bench.back_to_back [--runs 4000] [--in-flight 1,4,8]``.

bench/run's ``latency`` phase submits a probe every 5 ms, so each finds the node idle. A web
application that triggers a run per request submits them back to back: each ``app.trigger``
awaited and the next sent at once, from one or several tasks. This starts a redis-server of its
own and one ``baton worker`` of bench/baton_app.py (concurrency 100, a metrics port), and for
each ``--in-flight`` value submits ``--runs`` runs of the ``latency`` job that way, then reports:

- how fast they were submitted;
- how many the node was handed by the call that created them (its registration as waiting
  had room), the rest being claimed from the ready set;
- the CPU Redis, the worker and this submitting process used from the first submission until
  every run had started, each in cores (on a machine of two cores, three busy processes wait
  for each other: a round trip then takes milliseconds);
- the pickup (start minus submit, recorded by the job) at p50 / p90 / p99.

Run it from the repository root with the project's virtualenv (``./dev test`` sets it up).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.adapters.baton import BatonAdapter
from bench.common import LATENCY_KEY, latency_payload, percentile, redis_cpu, stop
from bench.main import RedisServer, free_port
from bench.soak import handed_off
from bench.sustain import cpu_s

#: runs submitted one at a time, 5 ms apart, before each measurement (connections, code paths warm)
WARM_UP = 200


async def one_setting(server: RedisServer, work: Path, runs: int, in_flight: int) -> dict[str, Any]:
    """Submit ``runs`` runs from ``in_flight`` tasks, each awaiting its trigger before the next: the figures."""
    a = BatonAdapter(server.url, f"b2b{in_flight}", work)
    await a.setup()
    metrics_port = free_port()
    worker = a.start_worker(100, 1, tag=f"b2b{in_flight}-", BATON_METRICS_PORT=str(metrics_port))[0]
    sync = redis.Redis.from_url(server.url)
    try:
        await a.wait_nodes(1)
        for i in range(WARM_UP):
            await a.app.trigger("latency", latency_payload(i))
            await asyncio.sleep(0.005)
        deadline = time.monotonic() + 30
        while await a.redis.llen(LATENCY_KEY) < WARM_UP:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"the warm-up runs did not run (logs in {work})")
            await asyncio.sleep(0.02)
        await a.redis.delete(LATENCY_KEY)
        handed_before = handed_off(metrics_port)
        cpu_before = redis_cpu(sync), cpu_s(worker.pid), time.process_time()

        async def submitter(n: int) -> None:
            for i in range(n):
                await a.app.trigger("latency", latency_payload(i))

        t0 = time.perf_counter()
        await asyncio.gather(*(submitter(runs // in_flight + (1 if k < runs % in_flight else 0))
                               for k in range(in_flight)))
        seconds = time.perf_counter() - t0
        deadline = time.monotonic() + 60
        while await a.redis.llen(LATENCY_KEY) < runs:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"only {await a.redis.llen(LATENCY_KEY)} of {runs} runs ran (logs in {work})")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - t0
        cpu_after = redis_cpu(sync), cpu_s(worker.pid), time.process_time()
        busy = [(now - then) / elapsed for now, then in zip(cpu_after, cpu_before, strict=True)]
        pickups = [float(x) * 1000 for x in await a.redis.lrange(LATENCY_KEY, 0, -1)]
        handed = handed_off(metrics_port) - handed_before
    finally:
        stop(worker)
        sync.close()
        await a.teardown()
    return {"in_flight": in_flight, "rate": runs / seconds, "handed": handed, "runs": runs, "cpu": busy,
            "pickup": {q: percentile(pickups, q) for q in (50, 90, 99)}}


def report(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of every setting."""
    out = ["| triggers in flight | submitted (runs/s) | handed to the node | CPU: Redis / worker / submitter "
           "(of a core) | pickup p50 / p90 / p99 (ms) |",
           "|--:|--:|--:|--:|--:|"]
    for r in rows:
        p = r["pickup"]
        cpu = " / ".join(f"{c:.0%}" for c in r["cpu"])
        out.append(f"| {r['in_flight']} | {r['rate']:,.0f} | {r['handed']:,} of {r['runs']:,} | {cpu} "
                   f"| {p[50]:.2f} / {p[90]:.2f} / {p[99]:.2f} |")
    return "\n".join(out)


async def run(runs: int, in_flight: list[int]) -> str:
    """Every setting's figures, as a Markdown table (one server for all, a worker of its own each)."""
    work = Path(tempfile.mkdtemp(prefix="baton-b2b-"))
    server = RedisServer(work)
    server.start()
    try:
        rows = [await one_setting(server, work, runs, k) for k in in_flight]
    finally:
        server.stop()
    # (kept when something failed: the error names the logs in it)
    shutil.rmtree(work, ignore_errors=True)
    return report(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4000, help="runs per setting")
    ap.add_argument("--in-flight", default="1,4,8", help="comma-separated numbers of triggers in flight")
    args = ap.parse_args()
    in_flight = [int(k) for k in args.in_flight.split(",")]
    if args.runs < 1 or min(in_flight) < 1:
        ap.error("--runs and every --in-flight value must be at least 1")
    print(asyncio.run(run(args.runs, in_flight)))


if __name__ == "__main__":
    main()
