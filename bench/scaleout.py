"""Scale-out benchmark: one Baton queue over a Redis Cluster of 1, 2 and 3 masters.

    .venv/bin/python -m bench.scaleout                 # (or bench/.venv/bin/python once bench/run made it)
    .venv/bin/python -m bench.scaleout --masters 1,2,3 --partitions 6 --runs 20000 --reps 3

For each number of masters M: a cluster on loopback (free ports, no persistence,
no replicas unless ``--replicas-per-master``) whose slots are assigned so that the partitions' hash tags
(``{scale:p0}`` ... ) are spread evenly over the masters (bench/cluster.py puts
the slot of tag i on master i % M), and M worker processes (``--workers-per-master``).
N no-op runs are XADDed round robin to the partitions' own submission streams
(``{scale:pN}:submit``, each in its partition's slot; ``--submit batch``:
``trigger_batch`` instead) while the workers run, and timed until all are
completed. Measured:

- runs/s: N / (last completion - first submission); submitted/s: N / (the last
  XADD pipeline or trigger_batch call returned - the first submission);
  trigger() one at a time: 1,000
  calls, each awaited before the next, with no worker running;
- Redis CPU per run per shard: each master's ``used_cpu_user + used_cpu_sys``
  delta over the window / the runs whose partition that master owns (the
  node-wide keys, heartbeats and the job registry, live on master 0 as well);
- worker CPU per run (the worker processes' user+sys delta / N) and the
  submitting client's CPU per run;
- network bytes per run (``total_net_input_bytes + total_net_output_bytes`` of
  every master / N);
- memory per queued run (``used_memory`` delta of every master / runs queued
  with no worker running, after the timed part).

``--plain --masters 1 --replicas-per-master 1 --durable-replicas 0`` and ``1``
(one master and one replica, no Cluster) give the cost of durable writes
(README, "What durable writes guarantee, and what they cost").

The issue's goal: Redis CPU per run per shard flat (within 15%) from 1 to 3
masters, so throughput grows with masters where cores exist (this machine has
2 cores: throughput cannot grow here). Writes bench/results/scaleout-LATEST.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis

from bench.chaos.processes import ClusterSet, RedisServer
from bench.cluster import SLOTS, keyslot
from bench.common import BENCH, ROOT, group_cpu_s, spawn, stop
from runtime import Baton, RunContext, Settings
from runtime.keys import Keys

__all__ = ["app", "main"]

#: the worker processes' app (``--app bench.scaleout:app``)
app = Baton()


@app.job()
async def noop(ctx: RunContext, payload: Any) -> None:
    """Does nothing: the benchmark measures Baton and Redis, not a handler."""


PREFIX = "scale"
#: runs per trigger_batch call
BATCH = 1000
#: submitting coroutines (trigger_batch calls in flight)
SUBMITTERS = 4
#: trigger() calls timed one after the other (no worker running)
ONE_AT_A_TIME = 1000


@dataclass
class Sample:
    """One repetition with M masters."""

    masters: int
    runs: int
    seconds: float
    #: from the first submission until the last XADD pipeline or trigger_batch call returned
    submit_seconds: float
    #: per master: (runs whose partition it owns, Redis CPU seconds)
    shards: list[tuple[int, float]]
    worker_cpu_s: float
    client_cpu_s: float
    net_bytes: int
    memory_per_queued_run: float
    #: used_memory delta of the timed window per run: a completed run kept by retention
    memory_per_completed_run: float
    #: trigger() calls per second, one at a time (each waits for its reply; durable: for its WAIT too)
    one_at_a_time_per_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.seconds

    @property
    def cpu_us_per_run_per_shard(self) -> list[float]:
        """Each shard's Redis CPU per run it handled, in µs."""
        return [cpu / n * 1e6 if n else float("nan") for n, cpu in self.shards]


def _info(port: int) -> dict[str, Any]:
    client = redis.Redis(port=port)
    try:
        info: dict[str, Any] = client.info("all")
        return info
    finally:
        client.close()


def _cpu(info: dict[str, Any]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _net(info: dict[str, Any]) -> int:
    return int(info["total_net_input_bytes"]) + int(info["total_net_output_bytes"])


class Cluster:
    """M masters on loopback, stopped by pid; ``plain``: one master and its replicas, no cluster."""

    def __init__(self, masters: int, partitions: int, replicas: int = 0, plain: bool = False) -> None:
        self.servers: list[RedisServer] = []
        if plain:
            try:
                self._start_plain(masters, replicas)
            except BaseException:
                self.stop()
                raise
            return
        tags = [p.tag for p in Keys(PREFIX, partitions).partitions]
        cluster = ClusterSet().start(tags, masters, masters * replicas, node_timeout_ms=5000)
        self.servers = cluster.servers()
        self.layout = cluster.layout

    def _start_plain(self, masters: int, replicas: int) -> None:
        if masters != 1:
            raise SystemExit("--plain measures one master (and its replicas)")
        master = RedisServer(args=["--repl-diskless-sync-delay", "0"]).start()
        self.servers.append(master)
        for _ in range(replicas):
            self.servers.append(RedisServer(args=["--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1",
                                                  str(master.port)]).start())
        for replica in self.servers[1:]:
            while _info(replica.port).get("master_link_status") != "up":
                time.sleep(0.05)
        self.layout = [list(range(SLOTS))]

    def owner(self, tag: str) -> int:
        """Index of the master that owns a hash tag."""
        slot = keyslot("{" + tag + "}")
        return next(i for i, slots in enumerate(self.layout) if slot in slots)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


async def _wait_nodes(baton: Baton, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while int(await baton.redis.zcard(baton.keys.nodes)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} worker node(s) not up after {timeout_s}s")
        await asyncio.sleep(0.05)


def _check_alive(workers: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Stop the benchmark, with the worker's last log lines, when a worker has exited: its runs
    would never complete and the wait for them would not end."""
    for w, log in zip(workers, logs, strict=True):
        if w.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"a worker exited with code {w.returncode} before the runs completed; "
                               f"its log {log} ends:\n{tail}")


async def _completed(baton: Baton) -> int:
    return sum([int(await baton.redis.zcard(p.status("completed"))) for p in baton.keys.partitions])


async def _submit(baton: Baton, n: int) -> list[str]:
    """N no-op runs in batches, SUBMITTERS calls in flight."""
    ids: list[str] = []
    batches = [range(s, min(n, s + BATCH)) for s in range(0, n, BATCH)]

    async def one(chunk: range) -> list[str]:
        return await baton.trigger_batch([{"job": "noop", "input": {"i": i}} for i in chunk])

    for start in range(0, len(batches), SUBMITTERS):
        for part in await asyncio.gather(*(one(b) for b in batches[start:start + SUBMITTERS])):
            ids.extend(part)
    return ids


async def _submit_to_streams(baton: Baton, n: int) -> list[str]:
    """N no-op runs XADDed round robin to the partitions' own submission streams, one pipeline of
    up to BATCH entries per partition in flight at a time; their run ids (``<entry id>.p<N>``)."""
    ids: list[str] = []
    partitions = baton.keys.partitions
    payload = orjson.dumps({"i": 0}).decode()

    async def one(partition_index: int, count: int) -> list[str]:
        partition = partitions[partition_index]
        pipe = baton.redis.pipeline(transaction=False)
        for _ in range(count):
            pipe.xadd(partition.submit_stream, {"job": "noop", "input": payload})
        return [partition.entry_ref(e.decode() if isinstance(e, bytes) else e) for e in await pipe.execute()]

    per_round = BATCH * len(partitions)
    for start in range(0, n, per_round):
        left = min(per_round, n - start)
        counts = [left // len(partitions) + (1 if i < left % len(partitions) else 0) for i in range(len(partitions))]
        for part in await asyncio.gather(*(one(i, c) for i, c in enumerate(counts) if c)):
            ids.extend(part)
    return ids


async def measure(masters: int, args: argparse.Namespace, log_dir: Path) -> Sample:
    """One repetition with ``masters`` masters."""
    cluster = Cluster(masters, args.partitions, args.replicas_per_master, args.plain)
    ports = [s.port for s in cluster.servers[:masters]]
    # (plain: the submitters' concurrent create calls, 24 per trigger_batch of 1,000 runs over 6
    # partitions, each hold a connection; redis-py's pool stops at 100 by default)
    url = f"{cluster.servers[0].url}?max_connections=1000" if args.plain else cluster.servers[0].url
    settings = Settings(redis_url=url, redis_cluster=not args.plain, prefix=PREFIX,
                        partitions=args.partitions, metrics_port=0, durable_replicas=args.durable_replicas,
                        durable_timeout_ms=5000)
    baton = Baton(settings)
    for job in app.jobs:  # the workers' jobs, for trigger_batch's checks
        baton.jobs.add(job.name, job.handler, job.options)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATON_REDIS_URL": settings.redis_url,
           "BATON_REDIS_CLUSTER": "0" if args.plain else "1", "BATON_PREFIX": PREFIX,
           "BATON_PARTITIONS": str(args.partitions),
           "BATON_CONCURRENCY": str(args.concurrency), "BATON_METRICS_PORT": "0", "BATON_LOG_LEVEL": "WARNING",
           "BATON_DURABLE_REPLICAS": str(args.durable_replicas), "BATON_DURABLE_TIMEOUT_MS": "5000"}
    workers: list[subprocess.Popen[bytes]] = []
    node_ids = [f"m{masters}w{i}" for i in range(masters * args.workers_per_master)]
    logs = [log_dir / f"{node}.log" for node in node_ids]
    try:
        await baton.register_jobs()
        for node, log in zip(node_ids, logs, strict=True):
            workers.append(spawn([sys.executable, "-m", "runtime", "worker", "--app", "bench.scaleout:app"],
                                 {**env, "BATON_NODE_ID": node}, log))
        await _wait_nodes(baton, len(workers))
        before = [_info(p) for p in ports]
        worker_cpu0 = group_cpu_s({w.pid for w in workers})
        client_cpu0 = time.process_time()
        t0 = time.perf_counter()
        ids = await (_submit_to_streams(baton, args.runs) if args.submit == "streams" else _submit(baton, args.runs))
        submit_seconds = time.perf_counter() - t0
        while await _completed(baton) < args.runs:
            _check_alive(workers, logs)
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - t0
        client_cpu = time.process_time() - client_cpu0
        worker_cpu = group_cpu_s({w.pid for w in workers}) - worker_cpu0
        after = [_info(p) for p in ports]
        for w in workers:
            stop(w)
        workers = []
        # memory per queued run: runs created with no worker running
        mem0 = sum(int(i["used_memory"]) for i in (_info(p) for p in ports))
        await _submit(baton, args.mem_runs)
        mem1 = sum(int(i["used_memory"]) for i in (_info(p) for p in ports))
        started = time.perf_counter()
        for i in range(ONE_AT_A_TIME):
            await baton.trigger("noop", {"i": i})
        one_at_a_time_per_s = ONE_AT_A_TIME / (time.perf_counter() - started)
        per_partition = Counter(baton.keys.partition_of_run(r).index for r in ids)
        runs_of = Counter({cluster.owner(p.tag): 0 for p in baton.keys.partitions})
        for index, n in per_partition.items():
            runs_of[cluster.owner(baton.keys.partitions[index].tag)] += n
        return Sample(
            masters=masters, runs=args.runs, seconds=seconds, submit_seconds=submit_seconds,
            shards=[(runs_of[m], _cpu(after[m]) - _cpu(before[m])) for m in range(masters)],
            worker_cpu_s=worker_cpu, client_cpu_s=client_cpu,
            net_bytes=sum(_net(a) - _net(b) for a, b in zip(after, before, strict=True)),
            memory_per_queued_run=(mem1 - mem0) / args.mem_runs,
            memory_per_completed_run=sum(int(a["used_memory"]) - int(b["used_memory"])
                                         for a, b in zip(after, before, strict=True)) / args.runs,
            one_at_a_time_per_s=one_at_a_time_per_s,
        )
    finally:
        for w in workers:
            stop(w)
        await baton.close()
        cluster.stop()


def _median(values: list[float]) -> float:
    return statistics.median(values)


def render(samples: dict[int, list[Sample]], args: argparse.Namespace, command: str) -> str:
    """The results as Markdown (medians of the repetitions)."""
    rows = []
    base: float | None = None
    for masters, reps in sorted(samples.items()):
        per_shard = [_median([s.cpu_us_per_run_per_shard[m] for s in reps]) for m in range(masters)]
        mean_shard = statistics.fmean(per_shard)
        base = base if base is not None else mean_shard
        runs = [n for n, _ in reps[0].shards]
        rows.append(
            f"| {masters} | {_median([s.runs_per_s for s in reps]):,.0f} | "
            f"{_median([s.runs / s.submit_seconds for s in reps]):,.0f} | "
            f"{_median([s.one_at_a_time_per_s for s in reps]):,.0f} | "
            f"{' / '.join(f'{v:.1f}' for v in per_shard)} | {mean_shard:.1f} | {mean_shard / base:.2f} | "
            f"{' / '.join(str(n) for n in runs)} | "
            f"{_median([s.worker_cpu_s / s.runs * 1e6 for s in reps]):.0f} | "
            f"{_median([s.client_cpu_s / s.runs * 1e6 for s in reps]):.0f} | "
            f"{_median([s.net_bytes / s.runs for s in reps]):,.0f} | "
            f"{_median([s.memory_per_queued_run for s in reps]):,.0f} | "
            f"{_median([s.memory_per_completed_run for s in reps]):,.0f} |")
    uname = platform.uname()
    how = (f"by XADD to the partitions' own streams, round robin, one pipeline of up to {BATCH} entries per "
           "partition in flight" if args.submit == "streams" else
           f"with `trigger_batch` ({BATCH} per call, {SUBMITTERS} calls in flight)")
    return "\n".join([
        f"# Durable writes: one master and {args.replicas_per_master} replica(s), no Cluster" if args.plain else
        f"# Scale-out: one Baton queue over 1-{max(samples)} Redis Cluster masters",
        "",
        f"- command: `{command}`",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; commit {_commit()}",
        f"- machine: {os.cpu_count()} cores, {uname.system} {uname.release}, Python {platform.python_version()}, "
        f"redis-server {_server_version()}, redis-py {redis.__version__}",
        f"- {args.partitions} partitions, their hash tags' slots spread evenly over the masters; "
        f"{args.workers_per_master} worker process(es) per master, concurrency {args.concurrency}; "
        f"{args.runs:,} no-op runs per repetition, submitted while the workers run {how}; "
        f"medians of {args.reps} repetitions; {args.replicas_per_master} replica(s) per master, "
        f"durable_replicas={args.durable_replicas}{'; no Cluster (--plain)' if args.plain else ''}",
        "",
        "| masters | runs/s | submitted/s | trigger() one at a time /s | Redis CPU per run, each shard (µs) | "
        "mean per shard (µs) | vs 1 master | "
        "runs per shard | worker CPU per run (µs) | client CPU per run (µs) | network bytes per run | "
        "memory per queued run (B) | memory per completed run (B) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Redis CPU per run per shard is each master's `used_cpu_user + used_cpu_sys` delta over the timed "
        "window divided by the runs whose partition it owns; master 0 also holds the node-wide keys "
        "(heartbeats, the job registry). Network bytes are every master's `total_net_input_bytes + "
        "total_net_output_bytes` delta per run. Memory per queued run is the `used_memory` delta of every "
        f"master per run created by `trigger_batch` with no worker running ({args.mem_runs:,} runs, input "
        "`{\"i\": n}`); "
        "memory per completed run the `used_memory` delta of the timed window per run (a completed run is kept, "
        "with its timeline, until `finished_ttl_s` or `finished_cap`). "
        "On 2 cores the masters, the workers and the client share the CPUs, so runs/s cannot grow with masters "
        "here; what must hold is that the Redis CPU per run per shard stays flat.",
        "",
    ])


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _server_version() -> str:
    from bench.chaos.processes import server_binary

    out = subprocess.run([server_binary(), "--version"], capture_output=True, text=True).stdout
    return next((w.split("=")[1] for w in out.split() if w.startswith("v=")), out.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masters", default="1,2,3", help="numbers of masters to measure (comma-separated)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--runs", type=int, default=20_000, help="runs per repetition")
    parser.add_argument("--mem-runs", type=int, default=20_000, help="runs queued for the memory figure")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers-per-master", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--replicas-per-master", type=int, default=0)
    parser.add_argument("--durable-replicas", type=int, default=0, help="BATON_DURABLE_REPLICAS of every node")
    parser.add_argument("--plain", action="store_true", help="one master and its replicas without Cluster")
    parser.add_argument("--submit", choices=["streams", "batch"], default="streams",
                        help="XADD to the partitions' own streams (default) or trigger_batch")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "scaleout-LATEST.md")
    args = parser.parse_args()
    command = "python -m bench.scaleout" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"baton-scaleout-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    samples: dict[int, list[Sample]] = {}
    for rep in range(args.reps):
        for masters in (int(m) for m in args.masters.split(",")):
            sample = asyncio.run(measure(masters, args, log_dir))
            samples.setdefault(masters, []).append(sample)
            print(f"rep {rep + 1}: {masters} master(s): {sample.runs_per_s:,.0f} runs/s, Redis CPU per run per "
                  f"shard {[round(v, 1) for v in sample.cpu_us_per_run_per_shard]} µs", flush=True)
    text = render(samples, args, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
