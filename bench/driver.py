"""Measure one system: ``<system venv>/bin/python -m bench.driver --system NAME --redis-url URL --config JSON``.

Runs in that system's own virtualenv (started by bench.main), owns nothing but
the worker processes it starts (stopped by pid), and writes its results as JSON
to --out. The Redis server is flushed between repetitions. Every phase is
independent: one that fails is recorded with its error and the others go on.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import redis

from bench import pickup
from bench.adapters.base import Adapter, NotSupported
from bench.baton_extra import PHASES as BATON_PHASES
from bench.common import (
    COMMON_PHASES,
    FIRST_KEY,
    HARNESS_COMMANDS,
    commandstats,
    package_versions,
    payload,
    redis_cpu,
    stop,
    summarize,
)

#: the namespace length of the memory phase: that of Baton's default key prefix, "baton" (the driver
#: also runs in the peers' environments, without Baton's dependencies: tests/unit/test_bench_goals.py
#: checks it against runtime.settings)
MEMORY_NS_LEN = 5

ADAPTERS = {
    "baton": "bench.adapters.baton:BatonAdapter",
    "arq": "bench.adapters.arq:ArqAdapter",
    "saq": "bench.adapters.saq:SaqAdapter",
    "streaq": "bench.adapters.streaq:StreaqAdapter",
    "taskiq": "bench.adapters.taskiq:TaskiqAdapter",
    "taskiq-cli": "bench.adapters.taskiq:TaskiqCliAdapter",
    "bullmq": "bench.adapters.bullmq:BullmqAdapter",
    "rq": "bench.adapters.rq:RqAdapter",
    "rq-fork": "bench.adapters.rq:RqForkAdapter",
    "huey": "bench.adapters.huey:HueyAdapter",
    "huey-greenlet": "bench.adapters.huey:HueyGreenletAdapter",
    "dramatiq": "bench.adapters.dramatiq:DramatiqAdapter",
    "dramatiq-default": "bench.adapters.dramatiq:DramatiqDefaultAdapter",
    "celery": "bench.adapters.celery:CeleryAdapter",
}

#: the phases every system can run (in this order), then Baton's own (bench/baton_extra.py)
PHASES = COMMON_PHASES + BATON_PHASES


def adapter_class(name: str) -> type[Adapter]:
    module, _, attr = ADAPTERS[name].partition(":")
    cls: type[Adapter] = getattr(importlib.import_module(module), attr)
    return cls


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Driver:
    def __init__(self, system: str, redis_url: str, cfg: dict[str, Any], log_dir: Path) -> None:
        self.system = system
        self.redis_url = redis_url
        self.cfg = cfg
        self.log_dir = log_dir
        self.cls = adapter_class(system)
        self.r = redis.Redis.from_url(redis_url)
        self.result: dict[str, Any] = {
            "system": system,
            "versions": package_versions(("baton", *self.cls.packages)),
            "notes": {
                "one": self.cls.one_api, "in_flight": self.cls.in_flight_api, "bulk": self.cls.bulk_api,
                "worker": self.cls.worker_note, "completion": self.cls.completion_note,
            },
            "metrics": {}, "raw": {}, "errors": {},
        }
        self.seq = 0

    # -- helpers ---------------------------------------------------------------

    async def fresh(self, tag: str, ns_len: int | None = None) -> Adapter:
        """Flush the server, make an adapter on a new namespace (of ``ns_len`` characters when given),
        connect, warm up with one run."""
        self.r.flushall()
        self.seq += 1
        ns = f"b{self.seq}{tag}{uuid.uuid4().hex[:6]}" if ns_len is None else ("m" + uuid.uuid4().hex)[:ns_len]
        a = self.cls(self.redis_url, ns, self.log_dir)
        await a.setup()
        await a.enqueue_one("noop", payload(-1))  # connects, loads scripts; counted as a run
        return a

    async def first_start(self, a: Adapter) -> float | None:
        custom = getattr(a, "first_start", None)
        if custom is not None:
            return await custom()  # type: ignore[no-any-return]
        values = [float(x) for x in self.r.lrange(FIRST_KEY, 0, -1)]
        return min(values) if values else None

    def items(self, n: int) -> list[dict[str, Any]]:
        return [payload(i) for i in range(n)]

    async def phase(self, name: str, coro: Any) -> None:
        log(f"{self.system}: {name}")
        t0 = time.time()
        try:
            await coro
        except NotSupported as exc:
            self.result["errors"][name] = f"n/a: {exc}"
        except Exception as exc:  # noqa: BLE001 - recorded, the other phases go on
            self.result["errors"][name] = f"{type(exc).__name__}: {exc}"
            log(f"{self.system}: {name} FAILED: {exc}\n{traceback.format_exc()}")
        log(f"{self.system}: {name} took {time.time() - t0:.1f}s")

    def metric(self, name: str, values: list[float], **extra: Any) -> None:
        self.result["metrics"][name] = {**summarize(values), **extra}

    # -- 1. enqueue ------------------------------------------------------------

    async def enqueue(self) -> None:
        reps, n_one, n_many, k = self.cfg["reps"], self.cfg["n_one"], self.cfg["n_many"], self.cfg["in_flight"]
        one, many = [], []
        for rep in range(reps):
            a = await self.fresh("one")
            items = self.items(n_one)
            t0 = time.perf_counter()
            for d in items:
                await a.enqueue_one("noop", d)
            one.append(n_one / (time.perf_counter() - t0))
            await a.teardown()
            a = await self.fresh("many")
            items = self.items(n_many)
            t0 = time.perf_counter()
            await a.enqueue_many("noop", items, k)
            many.append(n_many / (time.perf_counter() - t0))
            await a.teardown()
            log(f"{self.system}: enqueue rep {rep}: one {one[-1]:.0f}/s, {k} in flight {many[-1]:.0f}/s")
        self.metric("enqueue_one", one, n=n_one)
        self.metric("enqueue_many", many, n=n_many)

    # -- 2./4. drain, bulk enqueue, Redis CPU and commands ---------------------------

    async def drain_once(self, a: Adapter, n: int, concurrency: int, processes: int, tag: str) -> dict[str, Any]:
        """Fill n runs (bulk API if any, else 100 in flight), then time one drain."""
        items = self.items(n)
        bulk_rate = None
        self.r.config_resetstat()
        mem0 = int(self.r.info("memory")["used_memory"])
        t0 = time.perf_counter()
        try:
            await a.enqueue_bulk("noop", items)
            bulk_rate = n / (time.perf_counter() - t0)
        except NotSupported:
            await a.enqueue_many("noop", items, self.cfg["in_flight"])
        submit = {k: v for k, v in commandstats(self.r).items() if k not in HARNESS_COMMANDS}
        del items
        mem_per_run = (int(self.r.info("memory")["used_memory"]) - mem0) / n
        expected = n + 1
        self.r.config_resetstat()
        cpu0 = redis_cpu(self.r)
        a.polls = 0
        procs = a.start_worker(concurrency, processes, tag=tag)
        try:
            t_done, done, capped = await a.wait_drained(expected, self.cfg["drain_cap_s"], procs)
            cpu1 = redis_cpu(self.r)
            stats = commandstats(self.r)
            first = await self.first_start(a)
            extra: dict[str, Any] = {}
            if hasattr(a, "run_finish_span"):
                extra["by_records"] = await a.run_finish_span()
        finally:
            for p in procs:
                stop(p, timeout=a.stop_timeout)
        if first is None:
            raise RuntimeError("no job recorded its start")
        elapsed = t_done - first
        own = {k: v for k, v in stats.items() if k not in HARNESS_COMMANDS}
        # the harness's completion polls and the first-start markers (one per OS process) are not the system's work
        harness = a.polls * a.poll_commands + processes * a.processes
        calls = sum(own.values()) - harness
        return {
            "worker_cpu_us_per_run": (a.worker_cpu_per_run or float("nan")) * 1e6,
            "worker_busy_cores": getattr(a, "worker_busy", float("nan")),
            "rate": done / elapsed, "elapsed_s": elapsed, "completed": done, "expected": expected,
            "capped": capped, "bulk_rate": bulk_rate, "redis_cpu_s": cpu1 - cpu0,
            "redis_cpu_per_10k": (cpu1 - cpu0) / max(done, 1) * 10_000, "calls_per_run": calls / max(done, 1),
            "commands": own, "harness_calls": harness, "submit_commands": submit,
            "submit_calls_per_run": sum(submit.values()) / n, "memory_per_run_fill": mem_per_run, **extra,
        }

    async def drain(self, concurrency: int, processes: int, key: str) -> None:
        runs = []
        for rep in range(self.cfg["reps"]):
            a = await self.fresh(f"d{processes}x{concurrency}")
            try:
                res = await self.drain_once(a, self.cfg["n_drain"], concurrency, processes, tag=f"{key}-{rep}-")
            finally:
                await a.teardown()
            runs.append(res)
            note = ", CAPPED" if res["capped"] else ""
            log(f"{self.system}: drain {key} rep {rep}: {res['rate']:.0f} runs/s "
                f"({res['completed']}/{res['expected']} in {res['elapsed_s']:.2f}s{note}),"
                f" redis cpu {res['redis_cpu_per_10k']:.2f}s/10k, {res['calls_per_run']:.2f} calls/run")
        self.result["raw"][key] = [{k: v for k, v in r.items() if not k.endswith("commands")} for r in runs]
        capped = any(r["capped"] for r in runs)
        self.metric(key, [r["rate"] for r in runs], capped=capped, n=self.cfg["n_drain"],
                    concurrency=concurrency, processes=processes * self.cls.processes)
        if key == "drain":
            bulk = [r["bulk_rate"] for r in runs if r["bulk_rate"] is not None]
            if bulk:
                self.metric("enqueue_bulk", bulk, n=self.cfg["n_drain"])
            else:
                self.result["errors"]["enqueue_bulk"] = f"n/a: {self.system} has no bulk enqueue API"
            self.metric("redis_cpu_per_10k", [r["redis_cpu_per_10k"] for r in runs])
            self.metric("worker_cpu_us_per_run", [r["worker_cpu_us_per_run"] for r in runs
                                                  if r["worker_cpu_us_per_run"] == r["worker_cpu_us_per_run"]])
            self.metric("worker_busy_cores", [r["worker_busy_cores"] for r in runs
                                              if r["worker_busy_cores"] == r["worker_busy_cores"]])
            self.metric("memory_per_run_fill", [r["memory_per_run_fill"] for r in runs], n=self.cfg["n_drain"])
            self.metric("calls_per_run", [r["calls_per_run"] for r in runs])
            # per-command calls per run (median over the repetitions)
            names = sorted({c for r in runs for c in r["commands"]})
            per_cmd = {c: summarize([r["commands"].get(c, 0) / max(r["completed"], 1) for r in runs])["median"]
                       for c in names}
            self.result["raw"]["commands_per_run"] = dict(sorted(per_cmd.items(), key=lambda kv: -kv[1]))
            names = sorted({c for r in runs for c in r["submit_commands"]})
            per_cmd = {c: summarize([r["submit_commands"].get(c, 0) / self.cfg["n_drain"] for r in runs])["median"]
                       for c in names}
            self.result["raw"]["submit_commands_per_run"] = dict(sorted(per_cmd.items(), key=lambda kv: -kv[1]))
            self.metric("submit_calls_per_run", [r["submit_calls_per_run"] for r in runs])
            if "by_records" in runs[0]:
                self.metric("drain_by_records", [r["by_records"]["rate"] for r in runs])

    # -- 4. memory per queued run ---------------------------------------------------

    async def memory(self) -> None:
        n = self.cfg["n_mem"]
        per_run = []
        for _rep in range(self.cfg["mem_reps"]):
            # every key names the namespace, so it counts in the bytes per run: every system is
            # measured in one as long as Baton's default prefix ("baton"), not the harness's longer ones
            a = await self.fresh("mem", MEMORY_NS_LEN)
            await a.teardown()  # the producer's connections are not counted: measure with them closed
            await asyncio.sleep(0.3)
            m0 = int(self.r.info("memory")["used_memory"])
            a = self.cls(self.redis_url, a.ns, self.log_dir)
            await a.setup()
            try:
                # the quickest way in: the bulk API, else the sync API one at a time, else 100 in flight
                items = self.items(n)
                try:
                    await a.enqueue_bulk("noop", items)
                except NotSupported:
                    if a.sync:
                        for d in items:
                            await a.enqueue_one("noop", d)
                    else:
                        await a.enqueue_many("noop", items, self.cfg["in_flight"])
                del items
            finally:
                await a.teardown()
            await asyncio.sleep(0.5)
            m1 = int(self.r.info("memory")["used_memory"])
            per_run.append((m1 - m0) / n)
            log(f"{self.system}: memory {per_run[-1]:.0f} B per queued run")
        self.metric("memory_per_run", per_run, n=n)

    # -- run everything -----------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        c = self.cfg
        skipped = set(c.get("skip_phases") or ())  # (an interleaved run's later repetitions: bench/interleave.py)
        named = set(c.get("phases") or ())
        wanted = (named or set(PHASES)) - skipped
        named -= skipped
        common = {
            "enqueue": self.enqueue, "drain": lambda: self.drain(c["concurrency"], 1, "drain"),
            "latency": lambda: pickup.latency(self), "latency_load": lambda: pickup.latency_load(self),
            "memory": self.memory,
        }
        for name in COMMON_PHASES:
            if name in named or (name in wanted and name in self.cls.phases):
                await self.phase(name, common[name]())
        if self.system == "baton":
            from bench import baton_extra

            await baton_extra.run(self, wanted)
        self.r.flushall()
        from bench.common import UNREAPED_CPU_S

        self.result["unreaped_worker_cpu_s"] = UNREAPED_CPU_S[0]
        return self.result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", required=True, choices=sorted(ADAPTERS))
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--config", required=True, help="JSON")
    ap.add_argument("--out", required=True)
    ap.add_argument("--log-dir", required=True)
    ns = ap.parse_args()
    driver = Driver(ns.system, ns.redis_url, json.loads(ns.config), Path(ns.log_dir))
    result = asyncio.run(driver.run())
    Path(ns.out).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
