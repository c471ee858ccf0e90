"""Durable waits: sleep, events, child runs; the slot is free while a run waits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from runtime import RunContext
from runtime.errors import WaitTimeout
from tests.nodes import eventually, running_node


async def test_sleep_frees_the_slot_and_resumes_after_the_time(make_app: Any) -> None:
    # Given one executor slot and a job that sleeps 2 s between two steps
    app = make_app(concurrency=1)
    times: dict[str, float] = {}
    calls = {"before": 0, "after": 0}

    @app.job()
    async def sleeper(ctx: RunContext, payload: Any) -> str:
        async def before() -> None:
            calls["before"] += 1
            times["slept"] = time.monotonic()
        await ctx.step("before", before)
        await ctx.sleep(2)
        calls["after"] += 1
        times["woke"] = time.monotonic()
        return "rested"

    @app.job()
    async def quick(ctx: RunContext, payload: Any) -> str:
        times["quick"] = time.monotonic()
        return "done"

    async with running_node(app):
        sleeper_id = await app.trigger("sleeper")
        run = await app.wait_for(sleeper_id, 10, statuses={"waiting"})
        assert run.status == "waiting"
        # When another job is submitted during the sleep
        quick_run = await app.wait_for(await app.trigger("quick"), 5)
        done = await app.wait_for(sleeper_id, 10)
    # Then it ran in the freed slot before the sleeper woke, and the sleeper resumed after ~2 s
    assert quick_run.status == "completed" and times["quick"] < times["woke"]
    assert done.status == "completed" and done.output == "rested"
    assert 1.9 <= times["woke"] - times["slept"] < 3.5, times["woke"] - times["slept"]
    # the completed step ran once; the resumed attempt replayed it
    assert calls == {"before": 1, "after": 1}
    assert [a.status for a in done.attempts] == ["waiting", "completed"] and done.attempts_charged == 1


async def test_fan_out_100_children_and_wait_for_all(make_app: Any) -> None:
    # Given one slot, a parent fanning out 100 children, and another job to run meanwhile
    app = make_app(concurrency=1)
    order: list[str] = []

    @app.job()
    async def child(ctx: RunContext, payload: Any) -> int:
        order.append("child")
        return int(payload) * 2

    @app.job()
    async def other(ctx: RunContext, payload: Any) -> None:
        order.append("other")

    @app.job()
    async def parent(ctx: RunContext, payload: Any) -> list[int]:
        order.append("parent")
        results = await ctx.trigger_and_wait_many([("child", i) for i in range(100)])
        return list(results)

    async with running_node(app):
        parent_id = await app.trigger("parent")
        await app.wait_for(parent_id, 10, statuses={"waiting"})
        other_id = await app.trigger("other", priority=10)
        run = await app.wait_for(parent_id, 60)
        other_run = await app.wait_for(other_id, 5)
    # Then the parent completed with the 100 outputs in order
    assert run.status == "completed" and run.output == [i * 2 for i in range(100)]
    # and the other job ran while the parent waited (the parent held no slot)
    assert other_run.status == "completed"
    assert order.index("other") < len(order) - 1 and order[-1] == "parent"
    children = await app.get_children(parent_id)
    assert len(children) == 100
    first = await app.get_run(children[0])
    assert first is not None and first.raw.get("parent_id") == parent_id and first.raw.get("lineage_depth") == "1"


async def test_trigger_and_wait_raises_when_the_child_fails(make_app: Any) -> None:
    app = make_app()

    @app.job(max_attempts=1)
    async def broken(ctx: RunContext, payload: Any) -> None:
        raise RuntimeError("child broke")

    @app.job(max_attempts=1)
    async def parent(ctx: RunContext, payload: Any) -> str:
        try:
            await ctx.trigger_and_wait("broken")
        except Exception as exc:  # noqa: BLE001 - asserting what reaches the handler
            return type(exc).__name__
        return "no error"

    @app.job(max_attempts=3)
    async def careless_parent(ctx: RunContext, payload: Any) -> None:
        await ctx.trigger_and_wait("broken")

    async with running_node(app):
        run = await app.wait_for(await app.trigger("parent"), 10)
        careless = await app.wait_for(await app.trigger("careless_parent"), 10)
    assert run.output == "ChildRunFailed"
    # and a parent that lets it through fails at once: a retry would find the same child failed again
    assert careless.status == "failed" and careless.error is not None and careless.error["type"] == "ChildRunFailed"
    assert [a.status for a in careless.attempts] == ["waiting", "failed"]


async def test_wait_for_event_resumes_with_data(make_app: Any) -> None:
    app = make_app(concurrency=1)

    @app.job()
    async def approval(ctx: RunContext, payload: Any) -> Any:
        data = await ctx.wait_for_event(f"approve:{payload}", timeout=30)
        return {"approved_by": data["by"]}

    async with running_node(app):
        run_id = await app.trigger("approval", "order-1")
        await app.wait_for(run_id, 10, statuses={"waiting"})
        # When the event arrives
        assert await app.send_event("approve:order-1", {"by": "ada"}) == 1
        run = await app.wait_for(run_id, 10)
    # Then the run resumed with the event's data
    assert run.status == "completed" and run.output == {"approved_by": "ada"}
    steps = await app.get_steps(run_id)
    assert [(s["name"], s["status"]) for s in steps] == [("__event#0", "completed")]


async def test_event_sent_before_the_wait_is_not_lost(make_app: Any) -> None:
    app = make_app()
    gate = asyncio.Event()

    @app.job()
    async def late(ctx: RunContext, payload: Any) -> Any:
        await ctx.step("gate", gate.wait)
        return await ctx.wait_for_event("early-key", timeout=30)

    async with running_node(app):
        run_id = await app.trigger("late")
        await eventually(lambda: app.get_run(run_id), 5)
        # When the event is sent before the handler starts waiting
        assert await app.send_event("early-key", {"n": 1}) == 0
        gate.set()
        run = await app.wait_for(run_id, 10)
    # Then the wait receives it at once, in the attempt that was running (it never waited)
    assert run.status == "completed" and run.output == {"n": 1}
    assert [a.status for a in run.attempts] == ["completed"]


@pytest.mark.parametrize("sent", ["before the run starts", "while the run waits"])
async def test_a_run_receives_each_event_once(make_app: Any, sent: str) -> None:
    # Given a run that waits for one key three times, the second time briefly
    app = make_app()

    @app.job()
    async def thrice(ctx: RunContext, payload: Any) -> Any:
        first = await ctx.wait_for_event("tick", timeout=30)
        try:
            second = await ctx.wait_for_event("tick", timeout=0.5)
        except WaitTimeout:
            second = "none"
        return [first, second, await ctx.wait_for_event("tick", timeout=30)]

    async def two_waits_ended() -> bool:
        return sum(s["status"] != "waiting" for s in await app.get_steps(run_id)) == 2

    # When one event is sent (before the run starts, or while it waits), and later a second one
    run_id = await app.trigger("thrice")
    if sent == "before the run starts":
        assert await app.send_event("tick", {"n": 1}) == 0
    async with running_node(app):
        if sent == "while the run waits":
            await app.wait_for(run_id, 10, statuses={"waiting"})
            assert await app.send_event("tick", {"n": 1}) == 1
        await eventually(two_waits_ended, 10)
        await app.wait_for(run_id, 10, statuses={"waiting"})
        assert await app.send_event("tick", {"n": 2}) == 1
        run = await app.wait_for(run_id, 10)
    # Then the first wait got the first event once: the second wait, begun while it was still kept,
    # timed out, and the third got the second event
    assert run.status == "completed" and run.output == [{"n": 1}, "none", {"n": 2}]


async def test_an_uncaught_wait_timeout_fails_the_run_without_a_retry(make_app: Any) -> None:
    app = make_app()
    seen: list[str] = []

    @app.job(max_attempts=3)
    async def impatient(ctx: RunContext, payload: Any) -> str:
        try:
            await ctx.wait_for_event("never", timeout=0.5)
        except WaitTimeout:
            seen.append("timeout")
            raise
        return "unreachable"

    @app.job(max_attempts=1)
    async def tolerant(ctx: RunContext, payload: Any) -> str:
        try:
            await ctx.wait_for_event("never-either", timeout=0.5)
        except WaitTimeout:
            return "gave up politely"
        return "unreachable"

    async with running_node(app):
        a = await app.wait_for(await app.trigger("impatient"), 10)
        b = await app.wait_for(await app.trigger("tolerant"), 10)
    # Then an uncaught timeout fails the run at once (a retry would replay the recorded timeout and raise it
    # again: attempts spent within a backoff or two, nothing waited again), a caught one does not
    assert seen == ["timeout"] and a.status == "failed" and a.error["type"] == "WaitTimeout"  # type: ignore[index]
    assert [x.status for x in a.attempts] == ["waiting", "failed"]
    assert b.status == "completed" and b.output == "gave up politely"


async def test_cancel_parent_cancels_unfinished_children(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def slow_child(ctx: RunContext, payload: Any) -> None:
        await asyncio.sleep(60)

    @app.job()
    async def parent(ctx: RunContext, payload: Any) -> Any:
        return await ctx.trigger_and_wait_many([("slow_child", i) for i in range(3)])

    async with running_node(app):
        parent_id = await app.trigger("parent")
        await app.wait_for(parent_id, 10, statuses={"waiting"})
        children = await app.get_children(parent_id)

        async def all_executing() -> bool:
            runs = [await app.get_run(c) for c in children]
            return all(r is not None and r.status == "executing" for r in runs)

        await eventually(all_executing, 10)
        # When the waiting parent is canceled
        assert await app.cancel(parent_id) == "canceled"
        finished = [await app.wait_for(c, 10) for c in children]
    # Then every unfinished child ends canceled too
    assert [r.status for r in finished] == ["canceled"] * 3
    assert (await app.get_run(parent_id)).status == "canceled"  # type: ignore[union-attr]


async def test_event_sent_through_the_stream(make_app: Any, redis: Any) -> None:
    app = make_app()

    @app.job()
    async def listener(ctx: RunContext, payload: Any) -> Any:
        return await ctx.wait_for_event("from-stream", timeout=30)

    async with running_node(app):
        run_id = await app.trigger("listener")
        await app.wait_for(run_id, 10, statuses={"waiting"})
        # When any producer XADDs an event entry
        await redis.xadd(app.keys.submit_stream, {"event": "from-stream", "data": '{"ok": true}'})
        await redis.xadd(app.keys.submit_stream, {"event": "x", "data": "{broken"})
        run = await app.wait_for(run_id, 10)
        rejected = await eventually(lambda: redis.xrange(app.keys.rejected_stream), 10)
    assert run.output == {"ok": True}
    assert rejected[0][1][b"reason"] == b"bad_json"


@pytest.mark.parametrize("wait", ["sleep", "event timeout", "signal timeout"])
@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 1e300, "5"], ids=["nan", "inf", "1e300", "text"])
async def test_a_wait_of_no_length_baton_can_wait_fails_the_run_at_once(make_app: Any, wait: str, seconds: Any) -> None:
    # Given a wait asked for a length that is no number of seconds, or longer than a century
    app = make_app()

    @app.job(max_attempts=3)
    async def waits(ctx: RunContext, payload: Any) -> None:
        if wait == "sleep":
            await ctx.sleep(seconds)
        elif wait == "event timeout":
            await ctx.wait_for_event("never", timeout=seconds)
        else:
            await ctx.wait_for_signal("never", timeout=seconds)

    async with running_node(app):
        run = await app.wait_for(await app.trigger("waits"), 10)
    # Then the run fails at once with an error that says so (a retry would ask for the same wait), not with
    # Python's own OverflowError or ValueError, retried
    assert run.status == "failed" and len(run.attempts) == 1, (run.status, run.error)
    assert run.error is not None and run.error["type"] == "InvalidDuration", run.error
    assert "must be a number of seconds of at most" in run.error["message"], run.error
