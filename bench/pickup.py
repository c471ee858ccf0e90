"""Pickup latency: probe runs submitted at a steady pace, start time minus submit time.

- ``latency``: an idle worker; ``latency_n`` probe runs submitted ``latency_gap_ms``
  apart through the system's one-at-a-time API (for Baton also by a plain
  client's XADD to the submission stream, ``latency_xadd``);
- ``latency_load``: the same probes while the worker drains a steady background
  load of no-op runs at half the rate this run measured for its drain
  (bench/load_gen.py submits it from a process of its own, so the probes'
  submitter is not slowed by it).

Each probe job records ``time.time() - input["t"]`` into LATENCY_KEY; a round
reports the nearest-rank p50/p95/p99 of its probes, the figure is the median of
the rounds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bench.common import LATENCY_KEY, group_cpu_s, latency_payload, percentile, redis_cpu, spawn, stop, worker_env

if TYPE_CHECKING:
    from subprocess import Popen

    from bench.adapters.base import Adapter
    from bench.driver import Driver

#: how a probe is submitted: (adapter, job name, input)
Submit = Callable[["Adapter", str, dict[str, Any]], Awaitable[None]]

#: the background load is this share of the measured drain rate
LOAD_SHARE = 0.5


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def by_api(a: Adapter, job: str, data: dict[str, Any]) -> None:
    """The system's own one-at-a-time submit API."""
    await a.enqueue_one(job, data)


async def warm_up(d: Driver, a: Adapter, procs: list[Popen[bytes]], submit: Submit) -> None:
    """Until the worker has run three probe jobs (it is up and connected)."""
    deadline = time.time() + 90
    while d.r.llen(LATENCY_KEY) < 3:
        if time.time() > deadline:
            raise RuntimeError("worker did not run the warm-up jobs within 90 s")
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker exited with code {p.returncode}")
        await submit(a, "latency", latency_payload(-1))
        await asyncio.sleep(0.3)


async def probe_round(d: Driver, a: Adapter, submit: Submit, pings: list[float] | None = None) -> list[float]:
    """One round of probes; their pickup latencies in ms. With ``pings``, a PING follows each probe's
    submission and its round trip (ms) is added there: what any call to the server waits meanwhile."""
    n, gap = d.cfg["latency_n"], d.cfg["latency_gap_ms"] / 1000
    d.r.delete(LATENCY_KEY)
    start = time.perf_counter()
    for i in range(n):
        await submit(a, "latency", latency_payload(i))
        if pings is not None:
            sent = time.perf_counter()
            d.r.ping()  # (the harness's plain blocking client: no event loop turn in the round trip)
            pings.append((time.perf_counter() - sent) * 1000)
        wait = start + (i + 1) * gap - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
    deadline = time.time() + 60
    while d.r.llen(LATENCY_KEY) < n and time.time() < deadline:
        await asyncio.sleep(0.05)
    values = [float(x) * 1000 for x in d.r.lrange(LATENCY_KEY, 0, -1)]
    if len(values) < n:
        raise RuntimeError(f"only {len(values)} of {n} probe jobs ran within 60 s")
    return values


class Rounds:
    """Percentiles per round, recorded as the driver's metrics ``<key>_p50_ms`` etc."""

    def __init__(self, d: Driver, key: str) -> None:
        self.d, self.key = d, key
        self.p50: list[float] = []
        self.p95: list[float] = []
        self.p99: list[float] = []
        self.means: list[float] = []

    def add(self, values: list[float]) -> None:
        self.p50.append(percentile(values, 50))
        self.p95.append(percentile(values, 95))
        self.p99.append(percentile(values, 99))
        self.means.append(sum(values) / len(values))
        log(f"{self.d.system}: {self.key} round {len(self.p50) - 1}: p50 {self.p50[-1]:.2f} ms, "
            f"p95 {self.p95[-1]:.2f} ms, p99 {self.p99[-1]:.2f} ms")

    def record(self, **extra: Any) -> None:
        n = self.d.cfg["latency_n"]
        for name, values in (("p50", self.p50), ("p95", self.p95), ("p99", self.p99), ("mean", self.means)):
            self.d.metric(f"{self.key}_{name}_ms", values, n=n, **extra)


async def latency(d: Driver, key: str = "latency", submit: Submit = by_api) -> None:
    """Pickup latency of an idle worker."""
    a = await d.fresh("lat")
    procs = a.start_worker(d.cfg["concurrency"], 1, tag=f"{key}-")
    rounds = Rounds(d, key)
    # what a run costs when runs come one at a time (most queues, most of the time): the worker's CPU
    # and the server's over a round, per probe (submits, pickups, completions and any bookkeeping)
    worker_us: list[float] = []
    redis_us: list[float] = []
    groups = {p.pid for p in procs}  # (each worker process leads its own session: start_new_session)
    try:
        await warm_up(d, a, procs, submit)
        for _ in range(d.cfg["reps"]):
            await asyncio.sleep(1.0)  # let the warm-up finish and the worker go idle
            w0, r0 = group_cpu_s(groups), redis_cpu(d.r)
            rounds.add(await probe_round(d, a, submit))
            n = d.cfg["latency_n"]
            worker_us.append((group_cpu_s(groups) - w0) / n * 1e6)
            redis_us.append((redis_cpu(d.r) - r0) / n * 1e6)
    finally:
        for p in procs:
            stop(p, timeout=a.stop_timeout)
        await a.teardown()
    rounds.record()
    log(f"{d.system}: {key}: CPU per probe run: worker {sorted(worker_us)[len(worker_us) // 2]:.0f} µs, "
        f"Redis {sorted(redis_us)[len(redis_us) // 2]:.0f} µs")
    d.metric(f"{key}_worker_cpu_us", worker_us)
    d.metric(f"{key}_redis_cpu_us", redis_us)


async def latency_load(d: Driver) -> None:
    """Pickup latency while the worker drains a steady load at LOAD_SHARE of its measured drain rate."""
    drain = d.result["metrics"].get("drain") or {}
    if not drain.get("median"):
        raise RuntimeError("needs this run's drain rate (the drain phase failed or did not run)")
    rate = LOAD_SHARE * float(drain["median"])
    a = await d.fresh("load")
    procs = a.start_worker(d.cfg["concurrency"], 1, tag="load-")
    load: Popen[bytes] | None = None
    out = d.log_dir / f"{d.system}-load.json"
    out.unlink(missing_ok=True)
    rounds = Rounds(d, "latency_load")
    try:
        await warm_up(d, a, procs, by_api)
        argv = [sys.executable, "-m", "bench.load_gen", "--system", d.system, "--redis-url", d.redis_url,
                "--ns", a.ns, "--rate", str(rate), "--out", str(out), "--log-dir", str(d.log_dir)]
        load = spawn(argv, worker_env(d.redis_url, a.ns, d.cfg["concurrency"]), d.log_dir / f"{d.system}-load.log")
        await asyncio.sleep(1.5)  # the load process starts and the worker reaches its steady state
        if load.poll() is not None:
            raise RuntimeError(f"the load process exited with code {load.returncode} (log in {d.log_dir})")
        # runs left waiting as each round ends: ~0 while the worker keeps up with the load (a system
        # whose adapter can count its ready runs)
        backlog: list[int] = []
        # a PING's round trip under the same load: no pickup (at least a submit and a pop) can beat it
        pings: list[list[float]] = []
        for _ in range(d.cfg["reps"]):
            pings.append([])
            rounds.add(await probe_round(d, a, by_api, pings[-1]))
            if hasattr(a, "queued_count"):
                backlog.append(int(await a.queued_count()))
    finally:
        if load is not None:
            stop(load, timeout=10)
        for p in procs:
            stop(p, timeout=a.stop_timeout)
        await a.teardown()
    achieved = json.loads(out.read_text()) if out.exists() else {}
    log(f"{d.system}: background load {achieved.get('rate', float('nan')):.0f} runs/s (target {rate:.0f})")
    rounds.record(load_target=rate, load_rate=achieved.get("rate"), load_backlog=backlog)
    for q in (50, 99):
        d.metric(f"latency_load_ping_p{q}_ms", [percentile(p, q) for p in pings if p])
