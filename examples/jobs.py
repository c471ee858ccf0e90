"""Example jobs: what ``baton worker`` runs in the quick start."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from runtime import Backoff, Baton, RunContext

app = Baton()


@app.job(queue="default", max_attempts=3, timeout=30)
async def hello(ctx: RunContext, payload: Any) -> dict[str, Any]:
    """Greets whoever the input names."""
    name = (payload or {}).get("name", "world") if isinstance(payload, dict) else "world"
    ctx.log.info("saying hello to %s", name)
    return {"greeting": f"hello, {name}"}


@app.job(queue="default", max_attempts=4, backoff=Backoff("exponential", initial_s=0.5))
async def flaky(ctx: RunContext, payload: Any) -> str:
    """Fails on its first two attempts, then succeeds: shows retries with backoff."""
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return f"succeeded on attempt {ctx.attempt}"


@app.job(queue="default", timeout=10)
def resize(ctx: RunContext, payload: Any) -> dict[str, Any]:
    """A plain (blocking) function: runs in a worker thread, off the event loop."""
    time.sleep(0.05)
    return {"resized": payload}


@app.job(queue="default", max_concurrency_per_key=1)
async def per_customer(ctx: RunContext, payload: Any) -> None:
    """At most one run per concurrency key (e.g. customer id) at a time."""
    await asyncio.sleep(0.1)
