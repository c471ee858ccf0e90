"""Jobs with worker labels, sticky children and batch handlers, run by child worker processes in tests.

Each node's labels come from BATON_LABELS; handlers report the node they ran on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from runtime import Backoff, Batch, Baton, RunContext
from tests.apps import _key, _redis

app = Baton()
_retry = Backoff("fixed", initial_s=0.05, jitter=0)


@app.job(node_labels={"gpu": "a100"}, max_attempts=3, backoff=_retry)
async def on_gpu(ctx: RunContext, payload: Any) -> Any:
    """Requires gpu=a100; with ``hang`` it blocks on its first attempt (to be killed there)."""
    if isinstance(payload, dict) and payload.get("hang") and ctx.attempt == 1:
        await _redis().rpush(_key("hanging"), ctx.node_id)
        await asyncio.sleep(60)
    return ctx.node_id


@app.job(prefer_labels={"region": "eu"}, prefer_wait_s=5)
async def near_eu(ctx: RunContext, payload: Any) -> Any:
    """Prefers region=eu for up to 5 s."""
    return ctx.node_id


@app.job()
async def anywhere(ctx: RunContext, payload: Any) -> Any:
    """No labels: any node."""
    return ctx.node_id


@app.job()
async def sticky_parent(ctx: RunContext, payload: Any) -> Any:
    """Starts a child sticky to this node (``payload``: the sticky mode); returns its node and the child."""
    child = await ctx.trigger("anywhere", None, sticky=payload)
    return {"parent": ctx.node_id, "child": child}


@app.job(batch_size=10, batch_wait_s=0.2, max_attempts=3, backoff=_retry)
async def batch_hang(batch: Batch, inputs: list[Any]) -> list[Any]:
    """A batch handler that blocks on the first attempt of its runs (to be killed mid-batch)."""
    r = _redis()
    for ctx in batch:
        await r.hincrby(_key("batch-executions"), ctx.run_id, 1)
    if any(ctx.attempt == 1 for ctx in batch):
        await r.rpush(_key("batch-hanging"), len(batch))
        await asyncio.sleep(60)
    return [x * 2 for x in inputs]
