"""A node never runs out of Redis connections at its own concurrency (redis-py's pool stops at 100)."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime import RunContext
from tests.nodes import running_node

SLOTS = 150


async def test_every_slot_recording_a_step_at_once_gets_a_connection(make_app: Any) -> None:
    # Given a node with more handler slots than redis-py's default pool size, whose handlers
    # all record a step at the same moment (each step holds a connection while Redis answers)
    app = make_app(concurrency=SLOTS)
    arrived = 0
    all_in = asyncio.Event()

    @app.job(max_attempts=1)
    async def stepper(ctx: RunContext, payload: Any) -> int:
        nonlocal arrived
        arrived += 1
        if arrived == SLOTS:
            all_in.set()
        await all_in.wait()
        return int(await ctx.step("double", lambda: payload * 2))

    async with running_node(app):
        ids = await app.trigger_batch([{"job": "stepper", "input": i} for i in range(SLOTS)])
        runs = [await app.wait_for(run_id, 60) for run_id in ids]
    # Then every run completed in its first attempt (no "Too many connections" anywhere)
    assert [r.status for r in runs] == ["completed"] * SLOTS, {r.status for r in runs}
    assert [r.output for r in runs] == [i * 2 for i in range(SLOTS)]
    assert {len(r.attempts) for r in runs} == {1}
