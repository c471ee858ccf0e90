"""A run leaves no reference cycles behind: what an attempt made is freed as it ends.

A cycle per run (an attempt's context holding a closure that holds the context) made every
finished run's objects wait for Python's cyclic collector. At a few thousand runs per second
that was ~18 objects per run for it to find, and its full passes were the longest pauses of a
busy node's event loop: pickup latency's tail. This runs each kind of attempt (async and plain
def handlers, steps, logs and progress, failures, retries, timeouts, a hook, a continuation, runs
submitted through the stream) through a node while the collector keeps what it finds
(gc.DEBUG_SAVEALL), and requires that none of it is Baton's.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from typing import Any

import pytest

from runtime import Backoff, RunContext
from runtime.errors import PermanentFailure
from runtime.hooks import hook_run_id
from tests.garbage import ours
from tests.nodes import running_node

#: the jobs below, each a kind of attempt (the last one's completion starts a hook run)
JOBS = ("plain", "threaded", "durable", "fails", "refuses", "overruns", "hooked", "continues")


@pytest.mark.usefixtures("cyclic_garbage")
async def test_finished_runs_leave_no_cycles_for_the_collector(make_app: Any) -> None:
    app = make_app(concurrency=20)
    log = logging.getLogger("tests.cycles")

    @app.job()
    async def plain(ctx: RunContext, payload: Any) -> Any:
        return payload

    @app.job()
    def threaded(ctx: RunContext, payload: Any) -> Any:
        ctx.log.info("from a thread")
        return payload

    @app.job()
    async def durable(ctx: RunContext, payload: Any) -> Any:
        one = await ctx.step("one", lambda: 1)
        ctx.log.info("after step one")
        log.info("through the logging module")
        ctx.progress(0.5)
        ctx.set_metadata(seen=payload)
        return one + await ctx.step("two", lambda: 1)

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.01))
    async def fails(ctx: RunContext, payload: Any) -> Any:
        raise RuntimeError(f"attempt {ctx.attempt} fails")

    @app.job()
    async def refuses(ctx: RunContext, payload: Any) -> Any:
        raise PermanentFailure("no")

    @app.job(timeout=0.05)
    async def overruns(ctx: RunContext, payload: Any) -> Any:
        await asyncio.sleep(5)

    @app.job(on_success=plain)  # its completion starts a hook run (the notifier's outbox)
    async def hooked(ctx: RunContext, payload: Any) -> Any:
        return payload

    @app.job()
    async def continues(ctx: RunContext, payload: Any) -> Any:
        if payload < 100:
            ctx.continue_as_new(payload + 100)  # ends the run, starts its continuation
        return payload

    async with running_node(app):
        # the first runs of each kind warm caches that live as long as the process
        warm = {job: await app.wait_for(await app.trigger(job, 0), 20) for job in JOBS}
        await app.wait_for(hook_run_id(warm["hooked"].id, "on_success"), 20)
        await app.wait_for(warm["continues"].raw["continued_as"], 20)
        gc.collect()
        gc.garbage.clear()
        started = time.monotonic()
        ids = [await app.trigger(job, i) for i in range(10) for job in JOBS]
        ids += [hook_run_id(run_id, "on_success") for run_id in ids[JOBS.index("hooked")::len(JOBS)]]
        # and through the submission stream, the path producers in other languages take
        ids += [(await app.redis.xadd(app.keys.submit_stream, {"job": "plain", "input": str(i)})).decode()
                for i in range(10)]
        runs = [await app.wait_for(run_id, 30) for run_id in ids]
        runs += [await app.wait_for(r.raw["continued_as"], 30) for r in runs if r.job == "continues"]
        gc.collect()
        found = ours(gc.garbage)
    assert Counter(r.status for r in runs) == {"completed": 80, "dead_letter": 20, "failed": 10}, \
        f"runs did not end as expected ({time.monotonic() - started:.1f}s)"
    assert not found, f"Baton objects left in reference cycles by 110 runs: {found.most_common(10)}"
