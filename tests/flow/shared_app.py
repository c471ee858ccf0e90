"""Jobs that share named limits, run by child worker processes in the shared-limit tests.

gpu_a and gpu_b share pool "gpu" (POOL_SIZE); rate_a and rate_b share rate "openai"
(SHARED_RATE starts per second). Handlers record their starts and ends in Redis, on
the Redis clock (TIME), because the test cannot share memory with the workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from runtime import Backoff, Baton, RunContext
from tests.apps import _key, _redis, redis_clock_ms

POOL_SIZE = 2
SHARED_RATE = 20

app = Baton()
app.define_pool("gpu", POOL_SIZE)
app.define_rate_limit("openai", SHARED_RATE, 1.0)


async def _span(ctx: RunContext, payload: Any) -> None:
    """Record "start|end <run> <ms> <node>" around a short sleep (payload: seconds, default 0.05)."""
    r = _redis()
    await r.rpush(_key("pool-events"), f"start {ctx.run_id} {await redis_clock_ms()} {ctx.node_id}")
    await asyncio.sleep(float((payload or {}).get("sleep", 0.05)))
    await r.rpush(_key("pool-events"), f"end {ctx.run_id} {await redis_clock_ms()} {ctx.node_id}")


async def _start(ctx: RunContext, payload: Any) -> None:
    await _redis().rpush(_key("rate-starts"), f"{ctx.job} {ctx.now_ms()}")


for _job in ("gpu_a", "gpu_b"):
    app.job(_job, pool="gpu", max_attempts=5, backoff=Backoff("fixed", initial_s=0.05, jitter=0))(_span)
for _job in ("rate_a", "rate_b"):
    app.job(_job, shared_rate="openai", max_attempts=1)(_start)
