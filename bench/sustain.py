"""Pickup under a steady load, rate by rate: ``python -m bench.sustain [--rates 3000,5000] [--seconds 5]
[--ticks 10] [--concurrency 100]``.

bench/run's ``latency_load`` measures one load (half the drain rate that run measured). This shows
how pickup and cost change with the load: for each rate it starts a redis-server of its own, one
``baton worker`` (concurrency 100, or ``--concurrency``) and bench/load_gen.py (the same producer:
``trigger_batch`` every 10 ms, or every ``--ticks`` ms: each tick given is a row of its own, so bursts
of different sizes can be compared at one rate), then submits probe runs 5 ms apart with
``app.trigger`` and reports, per rate:

- the runs completed per second (whether the node keeps up) and the most runs seen waiting in the
  ready set;
- the CPU the server, the worker and the producer used, per second and per completed run;
- the probes' pickup (start minus submit, recorded by the job) at p50/p90/p99, how long their
  submission took to be created (the record's ``created_at`` minus the submit time: one clock, ms)
  and how long they waited between being created and being leased (the records' ``created_at``
  and ``attempt_started_at``, Redis ms): the rest of the pickup is the node's, from the lease to
  the handler;
- how long the server took to answer a PING sent after each probe: what any call waits behind
  the load's scripts (Redis runs one command at a time and writes replies once per event-loop turn).

Run it from the repository root with the project's virtualenv (``./dev test`` sets it up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.adapters.baton import BatonAdapter
from bench.common import LATENCY_KEY, latency_payload, percentile, spawn, stop, worker_env
from bench.main import RedisServer

PROBE_GAP_S = 0.005
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


async def one_rate(server: RedisServer, work: Path, rate: int, seconds: float, tick_ms: float,
                   concurrency: int = 100) -> dict[str, Any]:
    """Load at ``rate`` runs/s submitted every ``tick_ms``, probes for ``seconds``: the figures of one rate."""
    ns = f"sustain{rate}t{tick_ms:g}".replace(".", "_")
    a = BatonAdapter(server.url, ns, work)
    await a.setup()
    worker = a.start_worker(concurrency, 1, tag=f"sustain{rate}-")[0]
    load = None
    try:
        await a.wait_nodes(1)
        load = spawn([sys.executable, "-m", "bench.load_gen", "--system", "baton", "--redis-url", server.url,
                      "--ns", ns, "--rate", str(rate), "--out", str(work / f"{ns}.json"), "--log-dir", str(work),
                      "--tick-ms", str(tick_ms)],
                     worker_env(server.url, ns, concurrency), work / f"{ns}-load.log")
        await asyncio.sleep(1.0)  # the producer starts and the node reaches its steady state
        assert server.proc is not None
        pids = {"redis": server.proc.pid, "worker": worker.pid, "producer": load.pid}
        cpu0 = {k: cpu_s(p) for k, p in pids.items()}
        done0, t0 = await a.completed_count(0), time.perf_counter()
        await a.redis.delete(LATENCY_KEY)
        probes: list[tuple[str, float]] = []
        pings: list[float] = []
        waiting = 0
        for i in range(int(seconds / PROBE_GAP_S)):
            payload = latency_payload(i)
            probes.append((await a.app.trigger("latency", payload), float(payload["t"])))
            # how long the server itself takes to answer now (it serves the load's calls meanwhile)
            sent = time.perf_counter()
            await a.redis.ping()
            pings.append((time.perf_counter() - sent) * 1000)
            if i % 50 == 0:
                waiting = max(waiting, await a.queued_count())
            pause = t0 + (i + 1) * PROBE_GAP_S - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
        elapsed = time.perf_counter() - t0
        completed = await a.completed_count(0) - done0
        used = {k: cpu_s(p) - cpu0[k] for k, p in pids.items()}
        for p in (worker, load):
            if p.poll() is not None:
                raise RuntimeError(f"a process exited with {p.returncode} (logs in {work})")
        deadline = time.monotonic() + 30
        while await a.redis.llen(LATENCY_KEY) < len(probes) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        pickups = [float(x) * 1000 for x in await a.redis.lrange(LATENCY_KEY, 0, -1)]
        waits, creating = [], []
        for run_id, submitted in probes:
            raw = await a.redis.hmget(a.keys.partition_of_run(run_id).run(run_id), "created_at", "attempt_started_at")
            if raw[0] and raw[1]:
                waits.append(float(int(raw[1]) - int(raw[0])))
                creating.append(int(raw[0]) - submitted * 1000)
    finally:
        if load is not None:
            stop(load, timeout=10)
        stop(worker, timeout=10)
        await a.teardown()
    return {
        "rate": rate, "tick_ms": tick_ms, "completed_per_s": completed / elapsed, "most_waiting": waiting,
        "cpu_share": {k: v / elapsed for k, v in used.items()},
        "cpu_us_per_run": {k: v / max(completed, 1) * 1e6 for k, v in used.items()},
        "pickup_ms": {q: percentile(pickups, q) for q in (50, 90, 99)}, "probes": len(pickups),
        "created_to_leased_ms": {q: percentile(waits, q) for q in (50, 90, 99)},
        "submitted_to_created_ms": {q: percentile(creating, q) for q in (50, 90, 99)},
        "ping_ms": {q: percentile(pings, q) for q in (50, 90, 99)},
    }


def report(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of every rate."""
    out = ["| offered runs/s | load every (ms) | completed runs/s | most waiting "
           "| CPU (Redis / worker / producer, of a core) | CPU per run (µs) | pickup p50 / p90 / p99 (ms) "
           "| submitted to created p50 / p99 (ms) | created to leased p50 / p99 (ms) | PING p50 / p99 (ms) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share, per, pick, wait = r["cpu_share"], r["cpu_us_per_run"], r["pickup_ms"], r["created_to_leased_ms"]
        made, ping = r["submitted_to_created_ms"], r["ping_ms"]
        out.append(
            f"| {r['rate']:,} | {r['tick_ms']:g} | {r['completed_per_s']:,.0f} | {r['most_waiting']} "
            f"| {share['redis']:.0%} / {share['worker']:.0%} / {share['producer']:.0%} "
            f"| {per['redis']:.0f} / {per['worker']:.0f} / {per['producer']:.0f} "
            f"| {pick[50]:.2f} / {pick[90]:.2f} / {pick[99]:.2f} | {made[50]:.1f} / {made[99]:.1f} "
            f"| {wait[50]:.0f} / {wait[99]:.0f} | {ping[50]:.2f} / {ping[99]:.2f} |")
    return "\n".join(out)


async def run(rates: list[int], seconds: float, ticks: list[float], concurrency: int = 100) -> None:
    with tempfile.TemporaryDirectory(prefix="baton-sustain-") as tmp:
        work = Path(tmp)
        server = RedisServer(work)
        server.start()
        try:
            rows = []
            for rate in rates:
                for tick_ms in ticks:
                    rows.append(await one_rate(server, work, rate, seconds, tick_ms, concurrency))
                    print(f"[{time.strftime('%H:%M:%S')}] {rate:,} runs/s offered every {tick_ms:g} ms: done",
                          flush=True)
        finally:
            server.stop()
    print(report(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--rates", default="3000,5000,7000", help="comma-separated load rates, runs/s")
    ap.add_argument("--seconds", type=float, default=5.0, help="probing time per rate")
    ap.add_argument("--ticks", default="10", help="comma-separated times between the load's submissions, ms")
    ap.add_argument("--concurrency", type=int, default=100, help="the worker's slots (BATON_CONCURRENCY)")
    args = ap.parse_args()
    asyncio.run(run([int(r) for r in args.rates.split(",")], args.seconds,
                    [float(t) for t in args.ticks.split(",")], args.concurrency))


if __name__ == "__main__":
    main()
