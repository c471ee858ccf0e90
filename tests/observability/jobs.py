"""Jobs run by the observability tests' nodes (in-process and child workers).

Settings come from the app's own Settings (in-process) or BATON_* variables
(child processes). Handlers record what they do in Redis under the test's prefix.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio as aioredis

from runtime import Backoff, Baton, PermanentFailure, RunContext

app = Baton()
_clients: dict[str, Any] = {}


def _redis(ctx: RunContext) -> Any:
    url = os.environ.get("BATON_REDIS_URL", "")
    if url not in _clients:
        _clients[url] = aioredis.from_url(url)
    return _clients[url]


@app.job(queue="obs")
async def ok(ctx: RunContext, payload: Any) -> Any:
    """Completes at once."""
    ctx.log.info("ok run handled")
    return payload


@app.job(queue="obs", max_attempts=2, backoff=Backoff("fixed", initial_s=0.05, jitter=0))
async def boom(ctx: RunContext, payload: Any) -> Any:
    """Always fails: retried once, then dead-lettered."""
    raise RuntimeError("boom on purpose")


@app.job(queue="obs")
async def fatal(ctx: RunContext, payload: Any) -> Any:
    """Fails permanently at once."""
    raise PermanentFailure("no point retrying")


@app.job(queue="obs", max_attempts=1, timeout=0.2)
async def stuck(ctx: RunContext, payload: Any) -> Any:
    """Runs past its 0.2 s timeout."""
    await asyncio.sleep(30)


@app.job(queue="obs", max_attempts=3, backoff=Backoff("fixed", initial_s=0.05, jitter=0))
async def hold(ctx: RunContext, payload: Any) -> Any:
    """Sleeps ``payload['seconds']`` on its first attempt (keeps its lease busy); later attempts complete."""
    if ctx.attempt == 1:
        await asyncio.sleep(float(payload["seconds"]))
    return "held"


@app.job(queue="obs")
async def nap(ctx: RunContext, payload: Any) -> Any:
    """Goes into a durable wait of a minute (status waiting, no slot held)."""
    await ctx.sleep(60)
    return "rested"


@app.job(queue="obs")
def chatty(ctx: RunContext, payload: Any) -> str:
    """A plain-def handler: logs from a worker thread."""
    ctx.log.info("chatty handler says %s", payload)
    return "said"


@app.job(queue="obs", max_attempts=3, backoff=Backoff("fixed", initial_s=0.1, jitter=0))
async def long(ctx: RunContext, payload: Any) -> Any:
    """Announces its start in Redis, then sleeps ``payload['seconds']`` on attempt 1 only."""
    key = f"{os.environ['BATON_PREFIX']}:obs:started"
    await _redis(ctx).rpush(key, f"{ctx.run_id}:{ctx.attempt}:{ctx.node_id}")
    if ctx.attempt == 1:
        await asyncio.sleep(float(payload["seconds"]))
    return {"node": ctx.node_id, "attempt": ctx.attempt}
