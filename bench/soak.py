"""A worker's memory over many runs: ``python -m bench.soak [--rounds 20] [--runs 20000]``.

A daemon's memory must level off, or Kubernetes kills it at its limit. This starts a
redis-server of its own and one ``baton worker`` (concurrency 100) of this module's app, then
runs ``--rounds`` rounds of ``--runs`` runs each, every round the same mix:

- a quarter of no-op runs submitted with ``trigger_batch`` and drained from the ready set (the
  node's claims);
- a quarter of runs that record a step and report progress (the durable step path), and a
  quarter that fail their first attempt and succeed on the retry (retries, failure records),
  both submitted the same way;
- once those completed, a quarter of no-op runs submitted with ``app.trigger`` one at a time,
  to a node with nothing else to do (hand-offs).

After each round (every run completed) it reads the worker's resident memory (VmRSS in
/proc) and Redis's ``used_memory``. It prints the memory every few rounds, then what a leak
would show: the worker's growth over the second half of the rounds, per 1,000 runs. Its
caches are bounded (the receiver remembers the last 10,000 hand-offs, for example), so the
first rounds may grow while they fill. Redis grows by design: completed runs are kept for
``finished_ttl_s``; its figure per completed run is what retention costs.

Run it from the repository root with the project's virtualenv (``./dev test`` sets it up).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import urllib.request
from pathlib import Path
from subprocess import Popen
from typing import Any, NamedTuple

from actors.receiver import REMEMBERED
from bench.own_node import completed_runs, own_node
from runtime import Backoff, Baton, RunContext

#: 100 bytes of input, as the other benchmarks use
PAYLOAD = "x" * 100

app = Baton()


@app.job()
async def noop(ctx: RunContext, payload: Any) -> None:
    """Does nothing."""


@app.job()
async def stepped(ctx: RunContext, payload: Any) -> int:
    """Records one step and reports progress."""
    ctx.progress(1, 2)
    return int(await ctx.step("double", _double, len(payload["x"])))


async def _double(n: int) -> int:
    return n * 2


@app.job(max_attempts=2, backoff=Backoff(kind="fixed", initial_s=0.0, jitter=0.0))
async def flaky(ctx: RunContext, payload: Any) -> None:
    """Fails its first attempt (the retry succeeds)."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails (bench.soak)")


def rss_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def one_round(client: Baton, runs: int, done_before: int, worker: Popen[bytes], log: Path) -> None:
    """One round's mix (see the module's docstring), until every run of it completed: the batches
    first, then, to a node with nothing else to do, the runs submitted one at a time."""
    part = runs // 4
    for job in ("noop", "stepped", "flaky"):
        await client.trigger_batch([{"job": job, "input": {"x": PAYLOAD}} for _ in range(part)])
    await until_completed(client, done_before + 3 * part, worker, log)
    for _ in range(runs - 3 * part):  # (one at a time: the node is idle, and is handed each run)
        await client.trigger("noop", {"x": PAYLOAD})
    await until_completed(client, done_before + runs, worker, log)


async def until_completed(client: Baton, n: int, worker: Popen[bytes], log: Path) -> None:
    """Wait until ``n`` runs have completed (at most 120 s; the worker must stay up)."""
    deadline = time.monotonic() + 120
    while await completed_runs(client) < n:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode} (log: {log})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n:,} runs not completed within 120 s (log: {log})")
        await asyncio.sleep(0.05)


def handed_off(metrics_port: int) -> int:
    """Runs the worker took by hand-off so far (its baton_leases_handed_off_total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("baton_leases_handed_off_total "):
                return int(float(line.split()[1]))
    raise RuntimeError("the worker's metrics have no baton_leases_handed_off_total")


async def soak(rounds: int, runs: int, concurrency: int) -> str:
    """Every round's memory, and the summary, as Markdown."""
    from bench.main import free_port  # (not at import: the worker imports this module for its app)

    rows: list[Row] = []
    metrics_port = free_port()
    async with own_node("bench.soak:app", "soak", concurrency, BATON_METRICS_PORT=str(metrics_port),
                        BATON_LOG_LEVEL="WARNING") as node:
        client, worker = node.client, node.worker
        base_redis = int((await client.redis.info("memory"))["used_memory"])
        rows.append(Row(0, 0, rss_bytes(worker.pid), base_redis, 0.0, handed_off(metrics_port)))
        t0 = time.monotonic()
        for r in range(1, rounds + 1):
            await one_round(client, runs, (r - 1) * runs, worker, node.log)
            used = int((await client.redis.info("memory"))["used_memory"])
            rows.append(Row(r, r * runs, rss_bytes(worker.pid), used, time.monotonic() - t0, handed_off(metrics_port)))
    return report(rows, base_redis)


class Row(NamedTuple):
    """The figures after one round."""

    round: int
    runs: int
    rss: int
    redis_used: int
    seconds: float
    handed_off: int


def report(rows: list[Row], base_redis: int) -> str:
    """The table (every few rounds) and how the worker grew once its bounded caches could be full."""
    mb = 1024 * 1024
    every = max(1, (len(rows) - 1) // 10)
    lines = ["| round | runs completed | of them handed off | seconds | worker RSS (MiB) | Redis used_memory (MiB) |",
             "|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        if r.round % every == 0 or r is rows[-1]:
            lines.append(f"| {r.round} | {r.runs:,} | {r.handed_off:,} | {r.seconds:.0f} | {r.rss / mb:.1f} "
                         f"| {r.redis_used / mb:.1f} |")
    last = rows[-1]
    lines += ["", f"- worker RSS: {rows[0].rss / mb:.1f} MiB started, {rows[1].rss / mb:.1f} after round 1, "
                  f"{max(r.rss for r in rows) / mb:.1f} at most, {last.rss / mb:.1f} at the end"]
    # the receiver remembers the last REMEMBERED hand-offs: until it has seen that many, it grows. A
    # leak shows as growth after that, and over the second half of the rounds (allocators settle first)
    full = next((r for r in rows if r.handed_off >= REMEMBERED), None)
    since = None if full is None else max(full, rows[len(rows) // 2], key=lambda r: r.round)
    if since is None or since is last:
        lines.append(f"- the receiver's memory of the last {REMEMBERED:,} hand-offs was not full before the "
                     "second half of the rounds: run more rounds to see whether the worker levels off")
    else:
        growth = (last.rss - since.rss) / (last.runs - since.runs) * 1000
        lines.append(f"- worker growth from round {since.round} to the end: {growth:+.0f} B per 1,000 runs "
                     f"({(last.rss - since.rss) / 1024:+.0f} KiB over {last.runs - since.runs:,} runs; the "
                     f"receiver's memory of {REMEMBERED:,} hand-offs full since round {full.round})")
    lines.append(f"- Redis: {(last.redis_used - base_redis) / max(last.runs, 1):.0f} B per completed run kept "
                 "(retention: finished_ttl_s, finished_cap)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="rounds of runs")
    ap.add_argument("--runs", type=int, default=20_000, help="runs per round")
    ap.add_argument("--concurrency", type=int, default=100, help="the worker's slots (BATON_CONCURRENCY)")
    args = ap.parse_args()
    if args.rounds < 2 or args.runs < 4:
        ap.error("--rounds must be at least 2 and --runs at least 4")
    print(asyncio.run(soak(args.rounds, args.runs, args.concurrency)))


if __name__ == "__main__":
    main()
