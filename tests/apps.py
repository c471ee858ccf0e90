"""Jobs run by child worker processes in tests. Settings come from BATON_* variables.

Handlers count what they do in Redis (the test reads the counts), because a
child process cannot share memory with the test.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio as aioredis

from runtime import Baton, RunContext

app = Baton()
_client: Any = None


def _redis() -> Any:
    global _client
    if _client is None:
        _client = aioredis.from_url(os.environ["BATON_REDIS_URL"])
    return _client


def _key(name: str) -> str:
    return f"{os.environ['BATON_PREFIX']}:test:{name}"


@app.job(max_attempts=3)
async def noop(ctx: RunContext, payload: Any) -> Any:
    """Counts its executions per run id and returns its input."""
    await _redis().hincrby(_key("executions"), ctx.run_id, 1)
    return payload


@app.job(max_attempts=3, timeout=120, backoff="fixed", backoff_initial=0.1, backoff_jitter=0)
async def long(ctx: RunContext, payload: Any) -> Any:
    """Announces its start, then sleeps ``payload['seconds']`` on attempt 1 only."""
    r = _redis()
    await r.rpush(_key("started"), f"{ctx.run_id}:{ctx.attempt}:{ctx.node_id}")
    if ctx.attempt == 1 or payload.get("every_attempt"):
        await asyncio.sleep(float(payload["seconds"]))
    await r.rpush(_key("finished"), f"{ctx.run_id}:{ctx.attempt}:{ctx.node_id}")
    return {"node": ctx.node_id, "attempt": ctx.attempt}
