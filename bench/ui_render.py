"""How fast the server answers the dashboard's pages with a real amount of data.

    python -m bench.ui_render                    # 100,000 runs (the issue's figure)
    python -m bench.ui_render --runs 20000 --samples 100 --out -

Starts its own redis-server, creates ``--runs`` runs and executes them on a node in this process (each
run records a step, a log line and progress; 2 % fail into the dead-letter queue), then stops the node
and starts ``baton api`` as its own process. It then asks, one request at a time, for what the
dashboard's pages ask for, ``--samples`` times each, and reports the latency percentiles seen by the
client over loopback (so an upper bound of the server's time):

- the runs page: the first page, a page 100 pages deep (cursor), a selective status filter (which
  scans up to api_scan_limit index entries) and a job filter;
- a run page: each of the 8 requests it makes for a random run, and the whole page (the 8 requests
  at once, as the browser sends them) until the last answer.

The table goes to bench/results/ui_render.md (``--out -``: only printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from actors.supervisor import Supervisor
from bench.chaos.processes import RedisServer, free_port, stop_group
from runtime import Baton, RunContext, Settings
from runtime.api import hash_key, new_key
from runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "ui_render.md"
FAIL_EVERY = 50  # 2 % of runs fail and are dead-lettered


def define_jobs(app: Baton) -> None:
    """The bench's job: one step, a log line and progress per run; every FAIL_EVERY-th fails."""

    async def fetch(n: int) -> dict[str, int]:
        return {"n": n, "rows": n % 97}

    @app.job(max_attempts=1, queue="bench")
    async def ingest(ctx: RunContext, payload: Any) -> dict[str, int]:
        out = await ctx.step("fetch", fetch, payload["n"])
        ctx.log.info("fetched %d rows", out["rows"], n=payload["n"])
        ctx.progress(1, 1, "done")
        if payload["n"] % FAIL_EVERY == 0:
            raise RuntimeError(f"record {payload['n']} is malformed")
        return out


async def load(app: Baton, node_app: Baton, runs: int) -> list[str]:
    """Create ``runs`` runs through ``app`` and execute them on a node of ``node_app`` (its own connection
    pool, so the node's executors and this process's triggers do not compete for connections)."""
    ids: list[str] = []
    node = Supervisor(node_app, Metrics())
    task = asyncio.create_task(node.run())
    async with asyncio.timeout(30):
        await node.started.wait()
    started = time.monotonic()
    for first in range(0, runs, 1000):
        items = [{"job": "ingest", "input": {"n": n}, "tags": [f"t{n % 10}"]}
                 for n in range(first, min(first + 1000, runs))]
        ids.extend(await app.trigger_batch(items))
    print(f"created {len(ids)} runs in {time.monotonic() - started:.1f}s", file=sys.stderr)
    while True:
        counts = await app.count_by_status()
        done = sum(counts.get(s, 0) for s in ("completed", "dead_letter"))
        if done >= runs:
            break
        print(f"  executed {done}/{runs}", file=sys.stderr)
        await asyncio.sleep(2)
    print(f"executed in {time.monotonic() - started:.1f}s: {counts}", file=sys.stderr)
    node.request_shutdown()
    async with asyncio.timeout(60):
        await task
    return ids


def percentiles(samples_ms: list[float]) -> tuple[float, float, float, float]:
    """p50, p95, p99 and max of samples (ms)."""
    q = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return q[49], q[94], q[98], max(samples_ms)


async def measure(http: aiohttp.ClientSession, samples: int, call: Callable[[int], Awaitable[None]]) -> list[float]:
    out = []
    for i in range(samples):
        started = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


async def run_bench(runs: int, samples: int) -> tuple[list[tuple[str, list[float]]], dict[str, Any]]:
    server = RedisServer().start()
    key = new_key()
    prefix = "uibench"
    settings = Settings(redis_url=server.url, prefix=prefix, concurrency=50, metrics_port=0, api_port=0,
                        finished_ttl_s=7 * 86400)
    app, node_app = Baton(settings), Baton(settings)
    define_jobs(app)
    define_jobs(node_app)
    api_proc: subprocess.Popen[bytes] | None = None
    try:
        ids = await load(app, node_app, runs)
        port = free_port()
        env = {**os.environ, "BATON_REDIS_URL": server.url, "BATON_PREFIX": prefix, "BATON_API_PORT": str(port),
               "BATON_API_HOST": "127.0.0.1", "BATON_API_KEYS": f"default:{hash_key(key)}",
               "BATON_METRICS_PORT": "0", "BATON_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
        api_proc = subprocess.Popen([sys.executable, "-m", "runtime", "api"], cwd=ROOT, env=env,
                                    start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        results: list[tuple[str, list[float]]] = []
        async with aiohttp.ClientSession(headers=auth) as http:
            for _ in range(300):
                try:
                    async with http.get(url + "/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

            async def get(path: str, params: dict[str, str] | None = None) -> Any:
                async with http.get(url + path, params=params) as resp:
                    body = await resp.json() if resp.content_type == "application/json" else await resp.read()
                    assert resp.status == 200, (path, resp.status, body)
                    return body

            # a cursor 100 pages deep, for the "deep page" case
            cursor = None
            for _ in range(100):
                cursor = (await get("/v1/runs", {"limit": "50", **({"cursor": cursor} if cursor else {})}))[
                    "next_cursor"]
            first = await get("/v1/runs", {"limit": "50"})
            assert len(first["data"]) == 50
            selective = await get("/v1/runs", {"limit": "50", "status": "dead_letter"})
            runs_page: dict[str, Callable[[int], Awaitable[Any]]] = {
                "runs page: first page (GET /v1/runs?limit=50)": lambda i: get("/v1/runs", {"limit": "50"}),
                "runs page: 100 pages deep (cursor)": lambda i: get("/v1/runs", {"limit": "50", "cursor": cursor}),
                "runs page: status=dead_letter (2 % of runs)": lambda i: get(
                    "/v1/runs", {"limit": "50", "status": "dead_letter"}),
                "runs page: job=ingest&tag=t3": lambda i: get("/v1/runs", {"limit": "50", "job": "ingest",
                                                                            "tag": "t3"}),
                "runs page: job names (GET /v1/jobs)": lambda i: get("/v1/jobs"),
            }
            for name, call in runs_page.items():
                results.append((name, await measure(http, samples, call)))
            rng = random.Random(7)
            picks = [rng.choice(ids) for _ in range(samples)]
            run_paths = ["", "/events", "/steps", "/usage", "/tool-calls", "/outputs", "/checkpoints",
                         "/children?limit=100"]
            for sub in run_paths:
                results.append((f"run page: GET /v1/runs/{{id}}{sub}",
                                await measure(http, samples, lambda i, sub=sub: get(f"/v1/runs/{picks[i]}{sub}"))))

            async def whole_page(i: int) -> None:
                await asyncio.gather(*(get(f"/v1/runs/{picks[i]}{sub}") for sub in run_paths))

            results.append(("run page: all 8 requests at once (as the browser)", await measure(http, samples,
                                                                                                 whole_page)))
            results.append(("dashboard files: GET /ui/", await measure(http, samples, lambda i: get("/ui/"))))
        counts = {str(getattr(k, "value", k)): v for k, v in (await app.count_by_status()).items()}
        info = {"runs": runs, "samples": samples, "counts": counts, "selective_scanned": selective["scanned"],
                "selective_found": len(selective["data"]),
                "redis_used_memory": (await app.redis.info("memory"))["used_memory_human"]}
        return results, info
    finally:
        if api_proc is not None:
            stop_group(api_proc)
        await app.close()
        await node_app.close()
        server.stop()


def render(results: list[tuple[str, list[float]]], info: dict[str, Any]) -> str:
    cpu = os.cpu_count()
    lines = [
        "# Dashboard pages, server answer times (bench/ui_render.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {info['runs']:,} runs in Redis "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(info['counts'].items()))}; used memory "
        f"{info['redis_used_memory']}) · {info['samples']} sequential samples per row · `baton api` in its own "
        f"process, client over loopback · {cpu} cores shared with other work, so treat figures as indicative.",
        "",
        "| request | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, samples in results:
        p50, p95, p99, top = percentiles(samples)
        lines.append(f"| {name} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {top:.1f} |")
    lines += ["", f"The status=dead_letter page examined {info['selective_scanned']:,} index entries and found "
              f"{info['selective_found']} runs (a page stops at api_scan_limit entries; the dashboard follows "
              "next_cursor).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--out", default=str(RESULT), help="markdown file to write ('-': print only)")
    ns = parser.parse_args(argv)
    results, info = asyncio.run(run_bench(ns.runs, ns.samples))
    text = render(results, info)
    print(text)
    if ns.out != "-":
        Path(ns.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
