"""Handlers that misbehave do not take their node's slots or other runs with them."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime import RunContext
from tests.nodes import running_node


async def test_a_handler_that_ignores_cancellation_is_abandoned_after_the_grace(make_app: Any) -> None:
    # Given a node with one slot and a job whose handler swallows every cancellation
    app = make_app(concurrency=1)
    stop = asyncio.Event()

    @app.job(timeout=0.3, max_attempts=1)
    async def stubborn(ctx: RunContext, payload: Any) -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                pass  # the poison: cancellation ignored

    @app.job()
    async def after(ctx: RunContext, payload: Any) -> str:
        return "ran"

    async with running_node(app) as node:
        try:
            stubborn_id = await app.trigger("stubborn")
            after_id = await app.trigger("after")
            # When it runs past its timeout, then its attempt is recorded timed_out after the grace
            run = await app.wait_for(stubborn_id, 20)
            # and the only slot is free again: the next run completes
            other = await app.wait_for(after_id, 20)
            abandoned = node.metrics.registry.get_sample_value("baton_handlers_abandoned_total")
        finally:
            stop.set()
    assert run.status == "dead_letter" and [a.status for a in run.attempts] == ["timed_out"]
    assert run.error is not None and run.error["type"] == "JobTimeout"
    assert other.status == "completed" and other.output == "ran"
    assert abandoned == 1
