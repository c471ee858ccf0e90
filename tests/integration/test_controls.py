"""Cancel, idempotency, delays, priorities and concurrency limits, end to end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from runtime import RunContext, RunNotFound, SubmissionError, UnknownJob
from tests.nodes import eventually, running_node


async def test_cancel_queued_run(make_app: Any) -> None:
    # Given a run queued while no node is running
    app = make_app()

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        return None

    run_id = await app.trigger("noop")
    # When it is canceled
    assert await app.cancel(run_id) == "canceled"
    # Then it never runs, even once a node starts
    async with running_node(app):
        other = await app.wait_for(await app.trigger("noop"), 10)
    run = await app.get_run(run_id)
    assert other.status == "completed"
    assert run is not None and run.status == "canceled" and run.attempts == []
    with pytest.raises(RunNotFound):
        await app.cancel("no-such-run")


async def test_cancel_executing_run_cancels_the_handler(make_app: Any) -> None:
    # Given a long handler that is executing
    app = make_app()
    started = asyncio.Event()
    saw_cancel = asyncio.Event()

    @app.job(max_attempts=3)
    async def long(ctx: RunContext, payload: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    async with running_node(app):
        run_id = await app.trigger("long")
        await asyncio.wait_for(started.wait(), 10)
        # When it is canceled
        assert await app.cancel(run_id) == "cancel_requested"
        run = await app.wait_for(run_id, 10)
    # Then the handler got asyncio cancellation and the run ended canceled, not retried
    assert saw_cancel.is_set()
    assert run.status == "canceled" and [a.status for a in run.attempts] == ["canceled"]


async def test_idempotency_key_returns_existing_run(make_app: Any, redis: Any) -> None:
    app = make_app()

    @app.job()
    async def charge(ctx: RunContext, payload: Any) -> None:
        return None

    first = await app.trigger("charge", {"amount": 5}, idempotency_key="order-1")
    second = await app.trigger("charge", {"amount": 5}, idempotency_key="order-1")
    third = await app.trigger("charge", {"amount": 5}, idempotency_key="order-2")
    assert first == second != third
    counts = await app.count_by_status()
    assert counts["queued"] == 2


async def test_delayed_run_waits_for_its_time(make_app: Any) -> None:
    app = make_app()
    started_at: dict[str, float] = {}

    @app.job()
    async def later(ctx: RunContext, payload: Any) -> None:
        started_at[ctx.run_id] = time.time()

    async with running_node(app):
        t0 = time.time()
        run_id = await app.trigger("later", delay=1.0)
        run = await app.get_run(run_id)
        assert run is not None and run.status == "delayed"
        done = await app.wait_for(run_id, 10)
    assert done.status == "completed"
    assert started_at[run_id] - t0 >= 0.95
    assert done.scheduled_at_ms is not None and done.started_at_ms is not None
    assert done.started_at_ms >= done.scheduled_at_ms


async def test_priority_orders_queued_runs(make_app: Any) -> None:
    # Given runs queued before a one-slot node starts, with mixed priorities
    app = make_app(concurrency=1)
    order: list[int] = []

    @app.job()
    async def step(ctx: RunContext, payload: Any) -> None:
        order.append(payload)

    for p in [0, 5, -3, 10, 5, 0]:
        await app.trigger("step", p, priority=p)
    async with running_node(app):
        await eventually(lambda: len(order) == 6, 10)
    # Then higher priorities ran first, FIFO within one priority
    assert order == [10, 5, 5, 0, 0, -3]


async def test_concurrency_limits_hold_under_load(make_app: Any) -> None:
    # Given a job limited to 3 at once and 1 per key, on a node with 20 slots
    app = make_app(concurrency=20)
    running: dict[str, int] = {}
    total = 0
    peak = 0
    peak_per_key: dict[str, int] = {}

    @app.job(max_concurrency=3, max_concurrency_per_key=1)
    async def limited(ctx: RunContext, payload: Any) -> None:
        nonlocal total, peak
        key = payload["key"]
        running[key] = running.get(key, 0) + 1
        total += 1
        peak = max(peak, total)
        peak_per_key[key] = max(peak_per_key.get(key, 0), running[key])
        await asyncio.sleep(0.02)
        running[key] -= 1
        total -= 1

    @app.job()
    async def free(ctx: RunContext, payload: Any) -> None:
        await asyncio.sleep(0.01)

    ids = await app.trigger_batch(
        [{"job": "limited", "input": {"key": f"k{i % 5}"}, "concurrency_key": f"k{i % 5}"} for i in range(100)]
        + [{"job": "free"} for _ in range(50)]
    )
    async with running_node(app):
        for run_id in ids:
            assert (await app.wait_for(run_id, 30)).status == "completed"
    # Then the limits were never exceeded, as counted by the handler itself
    assert peak == 3
    assert max(peak_per_key.values()) == 1


async def test_invalid_triggers_raise_clear_errors(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        return None

    with pytest.raises(UnknownJob):
        await app.trigger("nope")
    with pytest.raises(SubmissionError, match="priority"):
        await app.trigger("noop", priority=5000)
    with pytest.raises(SubmissionError, match="JSON"):
        await app.trigger("noop", {"x": object()})
    with pytest.raises(SubmissionError, match="limit"):
        await app.trigger("noop", "x" * (app.settings.max_input_bytes + 1))
    assert (await app.count_by_status()).get("queued", 0) == 0


async def test_counts_by_status_take_no_lease_for_the_leased_sets_anchor(make_app: Any) -> None:
    # Given a node holding one run executing (the leased set then holds it and the anchor)
    app = make_app()
    release = asyncio.Event()
    started = asyncio.Event()

    @app.job()
    async def held(ctx: RunContext, payload: Any) -> None:
        started.set()
        await release.wait()

    async with running_node(app):
        run_id = await app.trigger("held", None)
        await asyncio.wait_for(started.wait(), 20)
        # Then it counts one executing run
        assert (await app.count_by_status())["executing"] == 1
        release.set()
        await app.wait_for(run_id, 20)
    # And none once it completed, though the anchor stays in the set
    counts = await app.count_by_status()
    assert (counts["executing"], counts["completed"]) == (0, 1)
    assert await app.redis.zcard(app.keys.partitions[0].leased) == 1
