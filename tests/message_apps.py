"""Jobs of the signal and token crash test's worker processes. Settings come from BATON_* variables.

The handler counts its step executions in Redis (the test reads them): a child
process cannot share memory with the test.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from runtime import Backoff, Baton, RunContext
from runtime.connection import connect

app = Baton()
_client: Any = None


def _key(name: str) -> str:
    return f"{os.environ['BATON_PREFIX']}:test:{name}"


def _redis() -> Any:
    global _client
    if _client is None:
        _client = connect(os.environ["BATON_REDIS_URL"])
    return _client


@app.job(max_attempts=3, timeout=120, backoff=Backoff("fixed", initial_s=0.1, jitter=0))
async def inbox(ctx: RunContext, payload: Any) -> Any:
    """Creates a token (published as its state), takes ``payload['n']`` signals "item", runs step "after"
    (whose first execution hangs, to be killed there), then waits for the token."""
    r = _redis()

    async def count(step: str) -> int:
        return int(await r.hincrby(_key("step-runs"), f"{ctx.run_id}:{step}", 1))

    token = await ctx.create_token(timeout=120)
    await ctx.set_state({"token": token.id})
    await ctx.step("before", count, "before")
    items = [await ctx.wait_for_signal("item") for _ in range(int(payload["n"]))]

    async def after() -> None:
        if await count("after") == 1:
            await r.rpush(_key("in-after"), ctx.run_id)
            await asyncio.sleep(60)

    await ctx.step("after", after)
    return {"items": items, "token": await ctx.wait_for_token(token), "node": ctx.node_id}
