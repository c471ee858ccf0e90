"""Baton-only measurements, run by the Baton driver after the common phases.

- enqueue through the submission stream: pipelined XADD, timed until the intake
  of a running node (serving no queue of these runs) has created them all;
- pickup latency of runs submitted by a plain redis-py client's XADD to the
  submission stream (same method as the common pickup phase, bench/pickup.py);
- the pickup floors of the paths' shapes, with no job system (bench/pickup_floor.py);
- the drain with 2 and 4 worker processes, and at executor concurrency 10 and 1000;
- Redis calls per run, submit to completion, split into client calls and calls
  made inside Lua and Lua calls (FCALL or EVALSHA) by script, from a MONITOR capture (trigger_batch
  path and XADD path);
- renewal calls per node per interval and the idle background calls of a node;
- a py-spy profile of a worker during a drain (with --profile).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.common import stop

if TYPE_CHECKING:
    from bench.adapters.base import Adapter
    from bench.adapters.baton import BatonAdapter
    from bench.driver import Driver


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


#: Baton's own phases (--phases selects among these and the common ones)
PHASES = ("baton_xadd", "latency_xadd", "latency_floor", "scaling", "monitor_calls", "renewals", "profile")


async def run(d: Driver, wanted: set[str]) -> None:
    from bench import pickup, pickup_floor

    c = d.cfg
    if "baton_xadd" in wanted:
        await d.phase("baton_xadd", xadd_bulk(d))
    if "latency_xadd" in wanted:
        await d.phase("latency_xadd", pickup.latency(d, "latency_xadd", submit=xadd_one))
    if "latency_floor" in wanted:
        await d.phase("latency_floor", pickup_floor.floors(d))
    if "scaling" in wanted:
        for procs in c["scaling_processes"]:
            if procs != 1:
                await d.phase(f"drain_p{procs}", d.drain(c["concurrency"], procs, f"drain_p{procs}"))
        for conc in c["scaling_concurrency"]:
            if conc != c["concurrency"]:
                await d.phase(f"drain_c{conc}", d.drain(conc, 1, f"drain_c{conc}"))
    if "monitor_calls" in wanted:
        await d.phase("monitor_calls", monitor_calls(d))
    if "renewals" in wanted:
        await d.phase("renewals", renewals(d))
    if c.get("profile") and "profile" in wanted:
        await d.phase("profile", profile(d))


async def xadd_one(a: Adapter, job: str, data: dict[str, Any]) -> None:
    """A probe submitted the way any producer can: one XADD by a plain redis-py client."""
    await cast("BatonAdapter", a).xadd_one(job, data)


# -- submission stream ------------------------------------------------------------


async def xadd_bulk(d: Driver) -> None:
    n = d.cfg["n_drain"]
    rates, xadd_only = [], []
    for rep in range(d.cfg["reps"]):
        a: BatonAdapter = await d.fresh("xadd")  # type: ignore[assignment]
        # a node that serves only queue "other": its intake creates the runs, nobody executes them
        procs = a.start_worker(d.cfg["concurrency"], 1, tag=f"intake-{rep}-", BATON_QUEUES="other")
        try:
            await a.wait_nodes(1)
            items = d.items(n)
            t0 = time.perf_counter()
            await a.xadd_bulk("noop", items)
            xadd_only.append(n / (time.perf_counter() - t0))
            deadline = time.time() + 120
            while await a.queued_count() < n + 1:
                if time.time() > deadline:
                    raise RuntimeError("intake did not create every run within 120 s")
                await asyncio.sleep(0.01)
            rates.append(n / (time.perf_counter() - t0))
        finally:
            for p in procs:
                stop(p)
            await a.teardown()
        log(f"baton: XADD rep {rep}: {rates[-1]:.0f} runs/s until created (XADD alone {xadd_only[-1]:.0f}/s)")
    d.metric("enqueue_xadd", rates, n=n)
    d.metric("enqueue_xadd_client_only", xadd_only, n=n)


# -- MONITOR: calls per run by command, client vs Lua, Lua calls by script ---------------------

#: the commands that run one of Baton's scripts (runtime/lua_calls.py)
_LUA_CALLS = ("fcall", "evalsha")
_LINE = re.compile(r'^[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"(?: "([^"]*)")?')


def script_names() -> dict[str, str]:
    """What a call names (an EVALSHA's SHA1, an FCALL's function) -> the script's name, for
    every script in runtime/lua."""
    from runtime.lua_source import LUA_DIR, library, load_source

    names = {}
    for path in sorted(LUA_DIR.glob("*.lua")):
        try:
            names[hashlib.sha1(load_source(path.stem).encode()).hexdigest()] = path.stem
            names[library(path.stem).name] = path.stem
        except OSError:
            continue
    return names


class Monitor:
    """``redis-cli monitor`` into a file; ECHO markers split the capture into phases."""

    def __init__(self, d: Driver, path: Path) -> None:
        self.d = d
        self.path = path
        host, port = d.r.connection_pool.connection_kwargs["host"], d.r.connection_pool.connection_kwargs["port"]
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        # names of the scripts as they are now (the worker loaded them moments ago)
        self.names = script_names()
        self.out = open(path, "wb")
        self.proc = subprocess.Popen([cli, "-h", str(host), "-p", str(port), "monitor"], stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    async def started(self) -> None:
        for _ in range(200):
            self.d.r.echo("bench:monitor-probe")
            await asyncio.sleep(0.02)
            self.out.flush()
            if b"bench:monitor-probe" in self.path.read_bytes():
                return
        raise RuntimeError("redis-cli monitor did not start")

    def mark(self, name: str) -> None:
        self.d.r.echo(f"bench:phase:{name}")

    async def close(self) -> None:
        await asyncio.sleep(0.3)
        stop(self.proc, timeout=5)
        self.out.close()

    def phases(self) -> dict[str, Counter[tuple[str, str]]]:
        """Counter of (source, command) per phase; source is 'client' or 'lua';
        FCALL and EVALSHA calls are counted as ('script', name) as well. ``self.script_times``
        gets the timestamps of each script's calls per phase."""
        names = self.names
        phase = "pre"
        out: dict[str, Counter[tuple[str, str]]] = {}
        self.script_times: dict[str, dict[str, list[float]]] = {}
        with open(self.path, "rb") as f:
            for raw in f:
                m = _LINE.match(raw[:400].decode(errors="replace"))
                if not m:
                    continue
                source, cmd, arg1 = m.group(1), m.group(2).lower(), m.group(3) or ""
                if cmd in _LUA_CALLS:
                    ts = float(raw.split(b" ", 1)[0])
                    self.script_times.setdefault(phase, {}).setdefault(names.get(arg1, arg1[:12]), []).append(ts)
                if cmd == "echo" and arg1.startswith("bench:phase:"):
                    phase = arg1[len("bench:phase:"):]
                    continue
                if cmd in ("echo", "info", "config", "monitor", "flushall", "client", "hello"):
                    continue
                counter = out.setdefault(phase, Counter())
                counter[("lua" if source == "lua" else "client", cmd)] += 1
                if cmd in _LUA_CALLS:
                    counter[("script", names.get(arg1, arg1[:12]))] += 1
        return out


def per_run(counter: Counter[tuple[str, str]], runs: int, minus: dict[tuple[str, str], int] | None = None
            ) -> dict[str, Any]:
    minus = minus or {}
    counts = {k: v - minus.get(k, 0) for k, v in counter.items()}
    client = {cmd: v / runs for (src, cmd), v in counts.items() if src == "client" and v > 0}
    lua = {cmd: v / runs for (src, cmd), v in counts.items() if src == "lua" and v > 0}
    scripts = {cmd: v / runs for (src, cmd), v in counts.items() if src == "script" and v > 0}
    srt = lambda m: dict(sorted(m.items(), key=lambda kv: -kv[1]))  # noqa: E731
    return {
        "client_calls_per_run": sum(client.values()), "lua_calls_per_run": sum(lua.values()),
        "client": srt(client), "lua": srt(lua), "evalsha_by_script": srt(scripts),
    }


async def monitor_calls(d: Driver) -> None:
    n = d.cfg["n_monitor"]
    out: dict[str, Any] = {"runs": n}
    for path_name in ("trigger_batch", "xadd"):
        a: BatonAdapter = await d.fresh("mon")  # type: ignore[assignment]
        mon = Monitor(d, d.log_dir / f"monitor-{path_name}.txt")
        procs: list[Any] = []
        polls = 0
        try:
            await mon.started()
            items = d.items(n)
            if path_name == "trigger_batch":
                mon.mark("submit")
                await a.enqueue_bulk("noop", items)
                mon.mark("drain")
                procs = a.start_worker(d.cfg["concurrency"], 1, tag="mon-tb-")
            else:
                procs = a.start_worker(d.cfg["concurrency"], 1, tag="mon-xadd-")
                await a.wait_nodes(1)
                await asyncio.sleep(0.5)
                mon.mark("drain")  # submit and drain overlap on this path: one phase
                await a.xadd_bulk("noop", items)
            deadline = time.time() + 120
            while await a.completed_count(n + 1) < n + 1:
                polls += 1
                if time.time() > deadline:
                    raise RuntimeError("monitor drain did not finish in 120 s")
                await asyncio.sleep(0.05)
            polls += 1
            mon.mark("end")
        finally:
            for p in procs:
                stop(p)
            await mon.close()
            await a.teardown()
        phases = mon.phases()
        harness = {("client", "zcard"): polls, ("client", "multi"): 0}
        drain = phases.get("drain", Counter())
        # the harness's completion polls are pipelines of one ZCARD; the first-start marker is one RPUSH
        harness[("client", "rpush")] = 1
        res: dict[str, Any] = {"drain": per_run(drain, n, harness)}
        if "submit" in phases:
            res["submit"] = per_run(phases["submit"], n)
            total = phases["submit"] + drain
            res["total"] = per_run(total, n, harness)
        else:
            res["total"] = res["drain"]
        out[path_name] = res
        t = res["total"]
        log(f"baton: MONITOR {path_name}: {t['client_calls_per_run']:.3f} client calls/run, "
            f"{t['lua_calls_per_run']:.2f} calls inside Lua/run; scripts {t['evalsha_by_script']}")
    d.result["raw"]["monitor_calls"] = out


# -- renewals and idle background calls -------------------------------------------


async def renewals(d: Driver) -> None:
    from runtime.keys import LEASED_RANGE

    window, interval_ms, held = d.cfg["renew_window_s"], 1000, 100
    a: BatonAdapter = await d.fresh("renew")
    procs = a.start_worker(held, 1, tag="renew-", BATON_RENEW_INTERVAL_MS=interval_ms, BATON_LEASE_TTL_MS=5000,
                           BATON_SHUTDOWN_GRACE_S=1)
    mon = None
    try:
        await a.wait_nodes(1)
        await a.app.trigger_batch([{"job": "hold", "input": {"s": window + 30}} for _ in range(held)])
        deadline = time.time() + 30
        while int(await a.redis.zcount(a.keys.partitions[0].leased, *LEASED_RANGE)) < held:
            if time.time() > deadline:
                raise RuntimeError("the hold runs were not all leased within 30 s")
            await asyncio.sleep(0.05)
        # past the first renewal (its first call also loads the script), then watch
        await asyncio.sleep(1.5 * interval_ms / 1000)
        mon = Monitor(d, d.log_dir / "monitor-renewals.txt")
        await mon.started()
        mon.mark("window")
        t0 = time.time()
        await asyncio.sleep(window)
        mon.mark("end")
        elapsed = time.time() - t0
    finally:
        for p in procs:
            stop(p)
        if mon is not None:
            await mon.close()
        await a.teardown()
    counts = mon.phases().get("window", Counter())
    renew_calls = counts.get(("script", "leases_renew"), 0)
    # per interval from the calls' own spacing (a window boundary can catch one call more or less)
    times = sorted(mon.script_times.get("window", {}).get("leases_renew", []))
    spacing = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else float("nan")
    intervals = elapsed / (interval_ms / 1000)
    client = {cmd: v / elapsed for (src, cmd), v in counts.items() if src == "client"}
    scripts = {cmd: v / elapsed for (src, cmd), v in counts.items() if src == "script"}
    res = {
        "renew_interval_ms": interval_ms, "leases_held": held, "window_s": elapsed,
        "renew_calls": renew_calls, "renew_calls_per_interval": (interval_ms / 1000) / spacing,
        "renew_calls_per_interval_by_window": renew_calls / intervals, "renew_call_spacing_s": spacing,
        "client_calls_per_s": sum(client.values()), "client_per_s": dict(sorted(client.items(), key=lambda kv: -kv[1])),
        "evalsha_per_s_by_script": dict(sorted(scripts.items(), key=lambda kv: -kv[1])),
        "lua_calls_per_s": sum(v for (src, _), v in counts.items() if src == "lua") / elapsed,
    }
    d.result["raw"]["renewals"] = res
    log(f"baton: renewals: {res['renew_calls_per_interval']:.2f} renew calls per node per interval "
        f"({held} leases); idle node client calls/s {res['client_calls_per_s']:.1f}: {res['client_per_s']}")


# -- py-spy profile -------------------------------------------------------------------


async def profile(d: Driver) -> None:
    n, seconds = d.cfg["n_profile"], d.cfg["profile_s"]
    pyspy = Path(d.cfg["py_spy"])
    if not pyspy.exists():
        raise RuntimeError(f"py-spy not found at {pyspy}")
    a: BatonAdapter = await d.fresh("prof")
    await a.enqueue_bulk("noop", d.items(n))
    procs = a.start_worker(d.cfg["concurrency"], 1, tag="prof-")
    raw = d.log_dir / "baton-worker-profile.txt"
    svg = d.log_dir / "baton-worker-profile.svg"
    try:
        deadline = time.time() + 90
        while not d.r.llen("bench:first"):
            if procs[0].poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the profiled worker ran no run within 90 s (exit code {procs[0].poll()})")
            await asyncio.sleep(0.01)
        pid = str(procs[0].pid)
        before = await a.completed_count(n + 1)
        # two samplers at once (collapsed stacks for the summary, an SVG flame graph to look at);
        # --nonblocking: read the process's memory without pausing it
        results = await asyncio.gather(*(asyncio.to_thread(
            subprocess.run, [str(pyspy), "record", "--pid", pid, "--duration", str(seconds), "--rate", "100",
                             "--nonblocking", "--format", fmt, "--output", str(path)],
            capture_output=True, text=True, timeout=seconds + 60) for fmt, path in (("raw", raw), ("flamegraph", svg))))
        for r in results:
            if r.returncode != 0:
                raise RuntimeError(f"py-spy failed: {r.stderr.strip()[-500:]}")
        done = await a.completed_count(n + 1)
        if done >= n + 1:
            log("baton: profile: the drain ended before the profile did (raise n_profile)")
    finally:
        for p in procs:
            stop(p)
        await a.teardown()
    summary = summarize_profile(raw)
    summary.update({"collapsed": str(raw), "flamegraph": str(svg), "completed_during_profile": done - before,
                    "drain_rate_while_profiled": (done - before) / seconds})
    d.result["raw"]["profile"] = summary
    log("baton: profile self-time top: " + ", ".join(f"{f} {p:.1f}%" for f, p in summary["self"][:8]))


def _frame(frame: str) -> tuple[str, str]:
    """('function (path:line)') -> (short function label, area)."""
    m = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    func, path = (m.group(1), m.group(2)) if m else (frame, "")
    area = "other"
    for key, name in (("runtime/", "baton runtime"), ("actors/", "baton actors"), ("redis/", "redis-py"),
                      ("asyncio/", "asyncio"), ("uvloop/", "uvloop"), ("bench/", "bench job"),
                      ("prometheus_client/", "prometheus_client"), ("logging/", "logging"),
                      ("hiredis", "hiredis"), ("orjson", "orjson"), ("concurrent/", "threads")):
        if path.startswith(key) or f"/{key}" in path:
            area = name
            break
    short = path.split("/site-packages/")[-1].split("/main/")[-1]
    return f"{func} ({short})", area


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        labels = [_frame(f) for f in frames]
        self_t[labels[-1][0]] += count
        # attribute each sample to the innermost frame that is not plain asyncio/uvloop machinery
        area = next((ar for _, ar in reversed(labels) if ar not in ("asyncio", "uvloop", "other")), labels[-1][1])
        areas[area] += count
        for lab in {lab for lab, _ in labels}:
            incl[lab] += count
    pct = lambda c: 100 * c / max(total, 1)  # noqa: E731
    return {
        "samples": total,
        "self": [(f, pct(c)) for f, c in self_t.most_common(top)],
        "inclusive": [(f, pct(c)) for f, c in incl.most_common(top * 2)],
        "areas": [(a, pct(c)) for a, c in areas.most_common()],
    }

