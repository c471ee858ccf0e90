"""Jobs with completion hooks, for the hook tests (in-process nodes and worker processes).

Hook handlers count their executions per run id in Redis and keep their input, so a test in another
process can check that each qualifying outcome made exactly one hook run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from runtime import Backoff, Baton, PermanentFailure, RunContext
from runtime.connection import connect


def counts_key(prefix: str) -> str:
    """Hook run id -> executions (HASH), written by the hook handlers."""
    return f"{prefix}:test:hook_executions"


def inputs_key(prefix: str) -> str:
    """Hook run id -> its input (HASH)."""
    return f"{prefix}:test:hook_inputs"


def define(app: Baton) -> Baton:
    """Register the test jobs on ``app``: ``source`` with its three hooks."""
    client: list[Any] = []
    prefix = app.settings.prefix

    async def count(ctx: RunContext, payload: Any) -> None:
        if not client:
            client.append(connect(app.settings.redis_url))
        await client[0].hincrby(counts_key(prefix), ctx.run_id, 1)
        await client[0].hset(inputs_key(prefix), ctx.run_id, orjson.dumps(payload))

    quick = Backoff("fixed", initial_s=0.05, jitter=0)

    @app.job(max_attempts=3, backoff=quick)
    async def record_hook(ctx: RunContext, payload: Any) -> None:
        await count(ctx, payload)

    @app.job(max_attempts=3, backoff=quick)
    async def record_dead_letter(ctx: RunContext, payload: Any) -> None:
        await count(ctx, payload)

    @app.job(max_attempts=2, backoff=quick, on_success=record_hook, on_failure="record_hook",
             on_dead_letter=record_dead_letter)
    async def source(ctx: RunContext, payload: Any) -> Any:
        # completes (returning its input), fails for good ({"fail": "permanent"}) or always fails
        # ({"fail": "always"}: dead-lettered after two attempts); sleeps `sleep` seconds first
        payload = payload or {}
        await asyncio.sleep(payload.get("sleep", 0))
        if payload.get("fail") == "permanent":
            raise PermanentFailure("no")
        if payload.get("fail") == "always":
            raise RuntimeError("boom")
        return payload

    return app


#: what `baton worker --app tests.hooks.jobs:app` runs (settings from BATON_* variables)
app = define(Baton())
