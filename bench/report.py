"""The results as Markdown: one main table with ratios against Baton, then Baton's own details."""

from __future__ import annotations

from typing import Any

from bench.adapters import base_system
from bench.goals import goals_table
from bench.pickup_floor import SHAPES as FLOOR_SHAPES

COLUMNS = [
    # key, header, kind (rate: higher is better; cost: lower is better), format
    ("enqueue_one", "enqueue, one at a time (runs/s)", "rate", "int"),
    ("enqueue_many", "enqueue, 100 in flight (runs/s)", "rate", "int"),
    ("enqueue_bulk", "enqueue, bulk API (runs/s)", "rate", "int"),
    ("drain", "drain, 1 worker process (runs/s)", "rate", "int"),
    ("latency_p50_ms", "pickup p50 (ms)", "cost", "ms"),
    ("latency_p95_ms", "pickup p95 (ms)", "cost", "ms"),
    ("latency_p99_ms", "pickup p99 (ms)", "cost", "ms"),
    ("latency_load_p50_ms", "pickup p50 under load (ms)", "cost", "ms"),
    ("latency_load_p99_ms", "pickup p99 under load (ms)", "cost", "ms"),
    ("redis_cpu_per_10k", "Redis CPU (s / 10k runs)", "cost", "f2"),
    ("memory_per_run", "Redis memory (B / queued run)", "cost", "int"),
    ("calls_per_run", "Redis commands / run (drain)", "cost", "f1"),
    ("worker_cpu_us_per_run", "worker CPU (µs / run, drain)", "cost", "int"),
    ("latency_worker_cpu_us", "worker CPU (µs / run, one at a time)", "cost", "int"),
    ("latency_redis_cpu_us", "Redis CPU (µs / run, one at a time)", "cost", "int"),
]


def fmt(v: float | None, kind: str) -> str:
    if v is None or v != v:  # None or NaN
        return "–"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "ms":
        return f"{v:.1f}" if v >= 10 else f"{v:.2f}"
    if kind == "f1":
        return f"{v:.1f}"
    return f"{v:.2f}"


def cell(m: dict[str, Any] | None, kind: str, base: dict[str, Any] | None, show_ratio: bool) -> str:
    if not m or m.get("median") is None:
        return "–"
    text = fmt(m["median"], kind)
    if m.get("n", 1) and m.get("min") is not None and m["min"] != m["max"]:
        text += f" [{fmt(m['min'], kind)}–{fmt(m['max'], kind)}]"
    if m.get("capped"):
        text += " (capped)"
    if show_ratio and base and base.get("median"):
        text += f" **{m['median'] / base['median']:.2f}×**"
    return text


def _err(res: dict[str, Any], key: str) -> str | None:
    errors = res.get("errors", {})
    phase = {"enqueue_one": "enqueue", "enqueue_many": "enqueue", "drain": "drain", "redis_cpu_per_10k": "drain",
             "calls_per_run": "drain", "latency_p50_ms": "latency", "latency_p95_ms": "latency",
             "latency_p99_ms": "latency", "memory_per_run": "memory", "enqueue_bulk": "enqueue_bulk",
             "latency_load_p50_ms": "latency_load", "latency_load_p99_ms": "latency_load",
             "latency_worker_cpu_us": "latency", "latency_redis_cpu_us": "latency"}.get(key, key)
    e = errors.get(key) or errors.get(phase)
    if e is None:
        return None
    return "n/a" if e.startswith("n/a") else "failed"


def main_table(results: list[dict[str, Any]]) -> list[str]:
    baton = next((r for r in results if r.get("system") == "baton" and "failed" not in r), None)
    bm = baton["metrics"] if baton else {}
    # pickup under load is Baton's unless peers were measured too (--phases latency_load)
    peers_loaded = any("latency_load_p99_ms" in r.get("metrics", {}) for r in results if r is not baton)
    columns = [c for c in COLUMNS if peers_loaded or not c[0].startswith("latency_load")]
    head = ["system", *[c[1] for c in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        name = res["system"]
        if "failed" in res:
            lines.append(f"| {name} | " + " | ".join(["failed"] + ["–"] * (len(columns) - 1)) + " |")
            continue
        cells = []
        for key, _h, _kind, f in columns:
            m = res["metrics"].get(key)
            if m is None:
                cells.append(_err(res, key) or "–")
            else:
                cells.append(cell(m, f, bm.get(key), show_ratio=name != "baton"))
        label = f"**{name}**" if name == "baton" else name
        processes = int((res["metrics"].get("drain") or {}).get("processes", 1))
        if processes > 1:  # dramatiq-default: its default is one worker process per CPU
            label += f" ({processes} processes)"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def render(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    cfg, mach = meta["config"], meta["machine"]
    out = [f"# Baton side-by-side benchmark, {meta['started'][:10]}{' (quick)' if meta.get('quick') else ''}", ""]
    out += goals_table(results)
    out += [
        f"- Command: `{meta['command']}` (from the repository root; took {meta['duration_s'] / 60:.1f} min)",
        f"- Baton revision: {meta['git']['head']} ({meta['git']['subject']})"
        + (f", with uncommitted changes in {len(meta['git']['engine_uncommitted'])} file(s) of runtime/ and actors/"
           if meta["git"]["engine_uncommitted"] else ""),
        f"- Machine: {mach['nproc']} CPUs ({mach['cpu']}), {mach['ram_gib']} GiB RAM, {mach['os']}",
        f"- Redis: {meta['redis_server']}, one server owned by the run on 127.0.0.1 "
        "(`--save \"\" --appendonly no`), shared by producer, workers and Redis on the same machine",
        f"- Method: no-op jobs with a ~100-byte JSON input; every figure is the median of {cfg['reps']} "
        "repetition(s) [min–max]"
        + (", interleaved across systems (every system's first repetition, then every system's second, ...: "
           "each system's median spans the whole run)" if cfg.get("interleaved") else "")
        + "; **bold** = ratio to Baton (system ÷ Baton: above 1 is better for rates, worse for latency and costs)",
        f"- Enqueue: {cfg['n_one']:,} runs one at a time (each awaited), {cfg['n_many']:,} with {cfg['in_flight']} "
        f"in flight, {cfg['n_drain']:,} with the bulk API; timed until the runs exist in Redis, no worker running",
        f"- Drain: {cfg['n_drain']:,} runs queued, then one worker process (concurrency {cfg['concurrency']} where "
        "the system has it); time from the first job's start to the poll (every 20 ms) that sees the last "
        f"completion in the system's own state; capped at {cfg['drain_cap_s']} s (rate over what finished)",
        f"- Pickup latency: idle worker, {cfg['latency_n']} runs submitted {cfg['latency_gap_ms']} ms apart, "
        "start time minus submit time recorded by the job; under load (Baton; a peer when named with --phases "
        "latency_load): the same probes while the worker drains a steady load of no-op runs at half the drain "
        "rate this run measured for it (submitted every 10 ms by a process of its own, with the bulk API where "
        "there is one)",
        "- Redis CPU: INFO cpu (user+sys) from worker start to drained, per 10,000 runs; commands: INFO "
        "commandstats over the drain (includes commands run inside Lua scripts; harness polls excluded); "
        "worker CPU: user+sys of the worker's processes (/proc) from 5% of the drain to its end, per run; "
        "one at a time: the worker's CPU and Redis's over each round of idle pickup probes, per probe run "
        "(its submit, pickup, completion and whatever else the system does meanwhile)",
        f"- Memory: INFO used_memory delta with {cfg['n_mem']:,} queued runs, ÷ {cfg['n_mem']:,} (no worker running), "
        "every system in a namespace as long as Baton's default prefix \"baton\" (each key holds it)",
        "",
    ]
    out += main_table(results)
    out.append("")
    out += [f"Notes: memory is from {cfg['mem_reps']} fill(s) of {cfg['n_mem']:,} runs (a deterministic quantity), "
            "measured with the producer's connections closed. \"capped\": the drain did not finish within "
            f"{cfg['drain_cap_s']} s; the rate is over the runs that finished. Pickup latency includes queueing "
            f"when a system's capacity is below the submission rate ({1000 / cfg['latency_gap_ms']:.0f} runs/s).", ""]

    # notes per system
    out += ["## Systems", "", "Other load: CPU used on the machine by processes outside the benchmark while the "
            f"system ran, in cores (of {mach['nproc']}); 0 on a quiet machine.", "",
            "| system | version | worker | one / in flight / bulk | completion read from | time | other load |",
            "|---|---|---|---|---|---|---|"]
    for res in results:
        name = res["system"]
        if "failed" in res:
            out.append(f"| {name} | – | **failed**: {res['failed']} | – | – | – | – |")
            continue
        v = res.get("versions", {})
        base = base_system(name)
        pkg = {"taskiq": "taskiq-redis"}.get(base)
        ver = v.get(base, "?") + (f" ({pkg} {v[pkg]})" if pkg and pkg in v else "")
        n = res["notes"]
        apis = f"{n['one']} / {n['in_flight']} / {n['bulk'] or 'n/a (no bulk API)'}"
        out.append(f"| {name} | {ver} | {n['worker']} | {apis} | {n['completion']} | {res.get('seconds', '?')} s "
                   f"| {res.get('other_load_cores', '?')} |")
    out.append("")
    errs = [(r["system"], k, e) for r in results if "failed" not in r for k, e in r.get("errors", {}).items()
            if not e.startswith("n/a")]
    failed = [r for r in results if "failed" in r]
    if errs or failed:
        out += ["## Failures", ""]
        out += [f"- **{r['system']}**: {r['failed']}" for r in failed]
        out += [f"- **{s}** phase `{k}`: {e}" for s, k, e in errs]
        out.append("")

    # versions
    out += ["## Versions", "", f"- redis-server: {meta['redis_server']}"]
    for res in results:
        if "versions" in res:
            vs = ", ".join(f"{k} {v}" for k, v in res["versions"].items())
            out.append(f"- {res['system']}: {vs}")
    out.append("")

    baton = next((r for r in results if r.get("system") == "baton" and "failed" not in r), None)
    if baton:
        out += baton_sections(baton, cfg)
    return "\n".join(out) + "\n"


def _m(res: dict[str, Any], key: str, kind: str = "int") -> str:
    m = res["metrics"].get(key)
    if not m:
        e = res.get("errors", {}).get(key)
        return f"failed ({e})" if e else "–"
    return cell(m, kind, None, show_ratio=False)


def baton_sections(b: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    out = ["## Baton in detail", ""]
    out += ["### Enqueue through the submission stream", "",
            f"Pipelined `XADD` of {cfg['n_drain']:,} entries (1,000 per pipeline) to `{{<prefix>}}:submit`, "
            "timed until a running node's intake has created every run (the node serves another queue, "
            "so the runs stay queued):", "",
            f"- until the runs exist: {_m(b, 'enqueue_xadd')} runs/s",
            f"- the XADD pipelines alone: {_m(b, 'enqueue_xadd_client_only')} entries/s",
            f"- for comparison, `app.trigger_batch` (1,000 per call): {_m(b, 'enqueue_bulk')} runs/s", ""]
    out += ["### Pickup latency by submit path", "",
            f"{cfg['latency_n']} probe runs {cfg['latency_gap_ms']} ms apart, p50 / p95 / p99 in ms:", "",
            "| submitted by | worker | p50 | p95 | p99 |", "|---|---|---|---|---|"]
    for key, who, worker in (("latency", "`app.trigger`", "idle"),
                             ("latency_xadd", "plain redis-py `XADD` to the submission stream", "idle"),
                             ("latency_load", "`app.trigger`", "draining a background load")):
        out.append(f"| {who} | {worker} | {_m(b, key + '_p50_ms', 'ms')} | {_m(b, key + '_p95_ms', 'ms')} | "
                   f"{_m(b, key + '_p99_ms', 'ms')} |")
    if any(f"floor_{shape}_p50_ms" in b["metrics"] for shape in FLOOR_SHAPES):
        out += ["", "The same probes with no job system (bench/pickup_floor.py: a plain redis-py consumer on uvloop, "
                "one held connection), by the shape of the path; what any system of that shape pays here:", "",
                "| path shape | hops | p50 | p95 | p99 |", "|---|---|---|---|---|"]
        for shape, (label, hops) in FLOOR_SHAPES.items():
            key = f"floor_{shape}"
            out.append(f"| {label} | {hops} | {_m(b, key + '_p50_ms', 'ms')} | {_m(b, key + '_p95_ms', 'ms')} | "
                       f"{_m(b, key + '_p99_ms', 'ms')} |")
    load = b["metrics"].get("latency_load_p99_ms") or {}
    if load.get("load_target"):
        out += ["", f"Background load: {load.get('load_rate') or float('nan'):,.0f} runs/s submitted "
                f"(target {load['load_target']:,.0f}, half the measured drain rate)."]
        ping = b["metrics"].get("latency_load_ping_p99_ms") or {}
        if ping.get("median") is not None:
            p50, p99 = _m(b, "latency_load_ping_p50_ms", "ms"), _m(b, "latency_load_ping_p99_ms", "ms")
            out[-1] += (" A PING sent after each probe (the round trip any call to the server had meanwhile), "
                        f"ms: p50 {p50}, p99 {p99}.")
        if load.get("load_backlog"):
            out[-1] += (" Runs waiting in the ready set as each round of probes ended: "
                        f"{', '.join(f'{n:,}' for n in load['load_backlog'])} (near 0 while the worker keeps up).")
    out.append("")
    out += ["### Drain scaling", "", f"{cfg['n_drain']:,} queued no-op runs, runs/s:", "",
            "| worker processes × concurrency | runs/s | Redis CPU s/10k | worker CPU µs/run | worker busy (cores) |",
            "|---|---|---|---|---|"]
    rows = [("drain", "1 × 100")]
    rows += [(f"drain_p{p}", f"{p} × {cfg['concurrency']}") for p in cfg["scaling_processes"] if p != 1]
    rows += [(f"drain_c{c}", f"1 × {c}") for c in cfg["scaling_concurrency"] if c != cfg["concurrency"]]
    for key, label in rows:
        raw = b.get("raw", {}).get(key) or []

        def med(field: str, f: str, raw: list[dict[str, Any]] = raw) -> str:
            vals = sorted(r[field] for r in raw if r.get(field) is not None and r[field] == r[field])
            return format(vals[len(vals) // 2], f) if vals else "–"

        out.append(f"| {label} | {_m(b, key)} | {med('redis_cpu_per_10k', '.2f')} | "
                   f"{med('worker_cpu_us_per_run', '.0f')} | {med('worker_busy_cores', '.2f')} |")
    if "drain_by_records" in b["metrics"]:
        out += ["", f"Cross-check of the 1 × 100 drain from Baton's own records (first run's `started_at` to the "
                f"newest `completed` index entry): {_m(b, 'drain_by_records')} runs/s."]
    out.append("")

    mon = b.get("raw", {}).get("monitor_calls")
    if mon:
        out += ["### Redis calls per run, submit to completion (concurrency 100)", "",
                f"From a `MONITOR` capture of {mon['runs']:,} runs (client calls are round-trip commands sent by "
                "Baton; calls inside Lua are the commands its scripts run; harness polls excluded):", "",
                "| path | phase | client calls / run | calls inside Lua / run | Lua calls by script (per run) |",
                "|---|---|---|---|---|"]
        for path, label in (("trigger_batch", "`trigger_batch` + worker"), ("xadd", "`XADD` stream + intake")):
            res = mon.get(path)
            if not res:
                continue
            for phase in ("submit", "drain", "total"):
                if phase not in res or (path == "xadd" and phase != "total"):
                    continue
                p = res[phase]
                scripts = ", ".join(f"{k} {v:.2g}" for k, v in p["evalsha_by_script"].items() if v >= 0.0005)
                out.append(f"| {label} | {phase} | {p['client_calls_per_run']:.3f} | {p['lua_calls_per_run']:.2f} "
                           f"| {scripts} |")
        out.append("")
        for path in ("trigger_batch", "xadd"):
            res = mon.get(path)
            if not res:
                continue
            t = res["total"]
            out.append(f"- {path}, client commands per run: "
                       + ", ".join(f"{k} {v:.3f}" for k, v in list(t["client"].items())[:10]))
            out.append(f"- {path}, inside Lua per run: "
                       + ", ".join(f"{k} {v:.2f}" for k, v in list(t["lua"].items())[:14]))
        out.append("")
    cs = b.get("raw", {}).get("commands_per_run")
    if cs:
        sub = b.get("raw", {}).get("submit_commands_per_run", {})
        out += ["INFO commandstats, per run (median of the drain repetitions; includes Lua-internal calls): "
                f"submit (`trigger_batch`) {sum(sub.values()):.2f}, drain {sum(cs.values()):.2f}. Drain: "
                + ", ".join(f"{k} {v:.2f}" for k, v in list(cs.items())[:14]), ""]
    ren = b.get("raw", {}).get("renewals")
    if ren:
        out += ["### Lease renewal and idle background calls", "",
                f"A node holding {ren['leases_held']} leases of sleeping runs, renew interval "
                f"{ren['renew_interval_ms']} ms, watched for {ren['window_s']:.1f} s with `MONITOR`:", "",
                f"- renewal calls per node per interval: {ren['renew_calls_per_interval']:.2f} "
                f"(`leases_renew` called every {ren['renew_call_spacing_s']:.3f} s; {ren['renew_calls']} calls in "
                f"the window, each renewing all {ren['leases_held']} leases in one Lua call)",
                f"- all client calls of the busy-but-idle node: {ren['client_calls_per_s']:.1f}/s: "
                + ", ".join(f"{k} {v:.2f}" for k, v in ren["client_per_s"].items()),
                "- Lua calls per second by script: "
                + ", ".join(f"{k} {v:.2f}" for k, v in ren["evalsha_per_s_by_script"].items()),
                f"- calls inside Lua: {ren['lua_calls_per_s']:.1f}/s", ""]
    prof = b.get("raw", {}).get("profile")
    if prof:
        out += ["### Where a worker's time goes (py-spy)", "",
                f"py-spy (`--nonblocking`, 100 Hz, {cfg['profile_s']} s) on a worker draining {cfg['n_profile']:,} "
                f"queued no-op runs at concurrency {cfg['concurrency']} ({prof['samples']} samples; it drained "
                f"{prof.get('drain_rate_while_profiled', 0):,.0f} runs/s while profiled; flame graph "
                f"{prof['flamegraph']}):", "",
                "- by area (innermost frame outside asyncio/uvloop): "
                + ", ".join(f"{a} {p:.1f}%" for a, p in prof["areas"]), "",
                "| self time | % | | inclusive time | % |", "|---|---|---|---|---|"]
        top = prof["inclusive"][0][1] if prof["inclusive"] else 100.0
        # leave out the frames every sample passes through (runpy, cli, the event loop's run)
        inc = [x for x in prof["inclusive"] if "<module>" not in x[0] and x[1] < 0.95 * top]
        for i in range(15):
            s = prof["self"][i] if i < len(prof["self"]) else ("", 0.0)
            n = inc[i] if i < len(inc) else ("", 0.0)
            out.append(f"| `{s[0]}` | {s[1]:.1f} | | `{n[0]}` | {n[1]:.1f} |")
        out.append("")
    return out
