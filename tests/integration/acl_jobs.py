"""Jobs of the ACL test's worker process: they touch Redis only through Baton (no keys of their own),
and use what reaches Redis from a handler: steps, logs, progress, checkpoints, outputs, child runs,
durable sleeps and events, retries, cancellation, a cron schedule."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime import Backoff, Baton, RunContext

app = Baton()


@app.job(max_attempts=1)
async def echo(ctx: RunContext, payload: Any) -> Any:
    """Returns its input."""
    return payload


@app.job(max_attempts=3, backoff=Backoff("fixed", initial_s=0.1, jitter=0))
async def flaky(ctx: RunContext, payload: Any) -> Any:
    """Fails its first attempt (a retry through the delayed set), then completes."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return {"attempt": ctx.attempt}


@app.job(timeout=60)
async def busy(ctx: RunContext, payload: Any) -> Any:
    """Steps, logs, progress, a checkpoint, an output, a child run, a durable sleep and an event."""
    ctx.log.info("starting", items=2)
    first = await ctx.step("first", _double, 1)
    second = await ctx.step("second", _double, first)
    ctx.progress(1, 2, "half way")
    await ctx.checkpoint({"second": second})
    ctx.output("total", {"value": second})
    ctx.record_usage("test", "model", prompt_tokens=1, completion_tokens=2)
    child = await ctx.trigger_and_wait("echo", {"from": "busy"})
    await ctx.sleep(0.2)
    event = await ctx.wait_for_event(payload["event"], timeout=30)
    return {"second": second, "child": child, "event": event}


@app.job(timeout=60)
async def messenger(ctx: RunContext, payload: Any) -> Any:
    """A waitpoint token and published state, then a signal (sent before it waits) and the token."""
    token = await ctx.create_token(timeout=60)
    await ctx.set_state({"token": token.id})
    return {"signal": await ctx.wait_for_signal("go"), "token": await ctx.wait_for_token(token)}


@app.job(timeout=120, max_attempts=1)
async def sleepy(ctx: RunContext, payload: Any) -> None:
    """Sleeps until cancelled."""
    ctx.log.info("sleeping")
    await asyncio.sleep(120)


@app.job(cron="* * * * *")
async def ticking(ctx: RunContext, payload: Any) -> None:
    """A cron job: the node runs the scheduler (its lease and ticks) under the worker's user."""


async def _double(x: int) -> int:
    return x * 2
