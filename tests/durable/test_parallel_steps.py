"""Steps in parallel branches (asyncio.gather): each branch numbers its own steps, so a replay that
reaches them in another order finds every recorded step again (runtime/step_positions.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from runtime import Backoff, PermanentFailure, RunContext
from tests.nodes import running_node


def fail_first_attempt(ctx: RunContext) -> None:
    """Fail the run's first attempt here, after what it did before (the retry replays it)."""
    if ctx.attempt == 1:
        raise RuntimeError("fail once")


def order(ctx: RunContext, branch: str) -> float:
    """How long ``branch`` waits before each of its steps: x first on attempt 1, y first afterwards."""
    first = "x" if ctx.attempt == 1 else "y"
    return 0.0 if branch == first else 0.05


async def test_branches_of_several_steps_replay_in_another_order(make_app: Any) -> None:
    # Given a handler whose two branches each do three steps, and whose first attempt fails after them
    app = make_app()
    executed: Counter[str] = Counter()

    def bump(name: str) -> str:
        executed[name] += 1
        return f"{name}-out"

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def fan(ctx: RunContext, payload: Any) -> Any:
        async def branch(name: str) -> list[str]:
            outputs = []
            for k in range(3):
                await asyncio.sleep(order(ctx, name))  # the branches interleave differently on each attempt
                outputs.append(await ctx.step(f"{name}{k}", bump, f"{name}{k}"))
            return outputs

        results = await asyncio.gather(branch("x"), branch("y"))
        after = await ctx.step("after", bump, "after")
        fail_first_attempt(ctx)
        return [results, after]

    async with running_node(app):
        run = await app.wait_for(await app.trigger("fan"), 15)
    # Then the second attempt replays every step in its new order and the run completes
    assert run.status == "completed", run.error
    assert run.output == [[["x0-out", "x1-out", "x2-out"], ["y0-out", "y1-out", "y2-out"]], "after-out"]
    # and no step ran twice
    assert executed == Counter({f"{b}{k}": 1 for b in "xy" for k in range(3)} | {"after": 1})
    assert run.attempt == 2


async def test_durable_waits_inside_branches_are_found_again(make_app: Any) -> None:
    # Given branches that each do a step, then a durable sleep, then another step, reaching them in
    # an order that changes between executions (every sleep ends the attempt, and the run resumes)
    app = make_app()
    executed: Counter[str] = Counter()

    def bump(name: str) -> str:
        executed[name] += 1
        return name

    @app.job(max_attempts=1)
    async def napping(ctx: RunContext, payload: Any) -> Any:
        async def branch(name: str) -> list[str]:
            await asyncio.sleep(order(ctx, name))
            first = await ctx.step(f"{name}-before", bump, f"{name}-before")
            await asyncio.sleep(order(ctx, name))
            await ctx.sleep(0.2)
            await asyncio.sleep(order(ctx, name))
            return [first, await ctx.step(f"{name}-after", bump, f"{name}-after")]

        return await asyncio.gather(branch("x"), branch("y"))

    async with running_node(app):
        run = await app.wait_for(await app.trigger("napping"), 15)
    # Then each branch's sleep is one step, found again on every replay, and nothing ran twice
    assert run.status == "completed", run.error
    assert run.output == [["x-before", "x-after"], ["y-before", "y-after"]]
    assert executed == Counter(["x-before", "y-before", "x-after", "y-after"])
    sleeps = [s for s in await app.get_steps(run.id) if s["name"].startswith("__sleep#")]
    assert len(sleeps) == 2 and all(s["status"] == "completed" for s in sleeps)


async def test_children_triggered_in_branches_are_started_once(make_app: Any) -> None:
    # Given branches that each trigger a child after a step, in an order that changes on the retry
    app = make_app()
    executed: Counter[str] = Counter()

    @app.job()
    async def child(ctx: RunContext, payload: Any) -> Any:
        executed[f"child-{payload}"] += 1
        return payload

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def parent(ctx: RunContext, payload: Any) -> Any:
        async def branch(name: str) -> str:
            await asyncio.sleep(order(ctx, name))
            await ctx.step(f"{name}-first", lambda: None)
            await asyncio.sleep(order(ctx, name))
            return await ctx.trigger("child", name)

        ids = await asyncio.gather(branch("x"), branch("y"))
        fail_first_attempt(ctx)
        return ids

    async with running_node(app):
        run = await app.wait_for(await app.trigger("parent"), 15)
        assert run.status == "completed", run.error
        x_child, y_child = run.output
        for child_id in (x_child, y_child):
            assert (await app.wait_for(child_id, 10)).status == "completed"
        # Then the retry got the same child ids back and no third child was made
        assert x_child != y_child
        assert sorted(await app.get_children(run.id)) == sorted([x_child, y_child])
        assert len([r for r in await app.list_status("completed") if r.job == "child"]) == 2
    assert executed == Counter({"child-x": 1, "child-y": 1})

async def test_a_step_moved_to_another_branch_is_still_caught(make_app: Any) -> None:
    # Given a handler whose retry reaches a recorded step from another branch than before
    app = make_app()

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def moved(ctx: RunContext, payload: Any) -> None:
        async def branch(names: list[str]) -> None:
            for name in names:
                await ctx.step(name, lambda: None)

        if ctx.attempt == 1:
            await asyncio.gather(branch(["a", "b"]), branch(["c"]))
            raise RuntimeError("retry me")
        await asyncio.gather(branch(["a"]), branch(["c", "b"]))

    async with running_node(app):
        run = await app.wait_for(await app.trigger("moved"), 15)
    # Then the run fails with NonDeterminism naming the step
    assert run.status == "failed"
    assert run.error is not None and run.error["type"] == "NonDeterminism" and "'b'" in run.error["message"]


async def test_a_failing_branch_lets_the_others_steps_finish_first(make_app: Any) -> None:
    # Given two branches: one fails while the other is inside a slow step, which another step follows
    app = make_app()
    executed: Counter[str] = Counter()

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def split(ctx: RunContext, payload: Any) -> Any:
        async def slow() -> str:
            executed["slow"] += 1
            await asyncio.sleep(0.3)
            return "slow-out"

        async def following() -> str:
            executed["following"] += 1
            return "following-out"

        async def stepping() -> list[str]:
            return [await ctx.step("slow", slow), await ctx.step("following", following)]

        async def failing() -> str:
            await asyncio.sleep(0.05)
            if ctx.attempt == 1:
                raise RuntimeError("this branch fails once")
            return "ok"

        return await asyncio.gather(stepping(), failing())

    async with running_node(app):
        run = await app.wait_for(await app.trigger("split"), 15)
    # Then the slow step was recorded before the attempt ended (the retry did not run it again), and the
    # step after it began only on the retry: the ended attempt began no more steps
    assert run.status == "completed", run.error
    assert run.output == [["slow-out", "following-out"], "ok"] and run.attempt == 2
    assert executed == Counter({"slow": 1, "following": 1})
    steps = {s["name"]: s for s in await app.get_steps(run.id)}
    assert steps["slow"]["status"] == "completed" and steps["following"]["status"] == "completed"


async def test_branches_that_begin_with_a_wait_after_an_await_keep_their_own_waits(make_app: Any) -> None:
    # Given two branches that reach their first durable call, a short and a long sleep, after awaits
    # that let a different branch go first on every execution
    app = make_app()
    executions: list[int] = []
    after: dict[str, float] = {}

    @app.job(max_attempts=1)
    async def sleepers(ctx: RunContext, payload: Any) -> Any:
        executions.append(1)
        first = "x" if len(executions) % 2 else "y"

        async def branch(name: str, seconds: float) -> str:
            await asyncio.sleep(0.0 if name == first else 0.05)
            await ctx.sleep(seconds)
            return await ctx.step(f"{name}-after", lambda: after.setdefault(name, time.time()) and name)

        return await asyncio.gather(branch("x", 0.1), branch("y", 1.0))

    async with running_node(app):
        created = time.time()
        run = await app.wait_for(await app.trigger("sleepers"), 20)
    # Then each branch slept its own sleep: the long one was not given the short one's record
    assert run.status == "completed", run.error
    assert run.output == ["x", "y"] and len(executions) >= 3
    assert after["y"] - created >= 1.0, after["y"] - created
    sleeps = [s for s in await app.get_steps(run.id) if s["name"].startswith("__sleep#")]
    assert len(sleeps) == 2


async def test_nested_branches_replay_after_a_checkpoint_and_awaits(make_app: Any) -> None:
    # Given branches that checkpoint, await, and then gather leaves that each trigger a child at once,
    # a different branch going first on the retry
    app = make_app()
    started: Counter[str] = Counter()

    @app.job()
    async def leaf_child(ctx: RunContext, payload: Any) -> Any:
        started[payload] += 1
        return payload

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def nested(ctx: RunContext, payload: Any) -> Any:
        async def mid(name: str) -> list[str]:
            await ctx.checkpoint({"mid": name})
            await asyncio.sleep(order(ctx, name))

            async def leaf(k: int) -> str:
                return await ctx.trigger("leaf_child", f"{name}{k}")

            return list(await asyncio.gather(leaf(0), leaf(1)))

        ids = await asyncio.gather(mid("x"), mid("y"))
        fail_first_attempt(ctx)
        return ids

    async with running_node(app):
        run = await app.wait_for(await app.trigger("nested"), 15)
        assert run.status == "completed", run.error
        children = [child for pair in run.output for child in pair]
        outputs = [(await app.wait_for(child, 10)).output for child in children]
    # Then the retry found each leaf's child again: four children, each started once, in place
    assert outputs == ["x0", "x1", "y0", "y1"]
    assert started == Counter({"x0": 1, "x1": 1, "y0": 1, "y1": 1})


async def test_a_branch_begins_no_durable_call_once_the_handler_has_ended(make_app: Any) -> None:
    # Given a branch that would trigger a child after its sibling failed the run for good
    app = make_app()
    started: Counter[str] = Counter()

    @app.job()
    async def late_child(ctx: RunContext, payload: Any) -> None:
        started["late_child"] += 1

    @app.job(max_attempts=1)
    async def doomed(ctx: RunContext, payload: Any) -> None:
        async def failing() -> None:
            await asyncio.sleep(0.05)
            raise PermanentFailure("this run fails")

        async def late() -> None:
            await asyncio.sleep(0.3)
            await ctx.trigger("late_child")

        async def slow() -> None:
            await ctx.step("slow", asyncio.sleep, 0.6)

        await asyncio.gather(slow(), failing(), late())

    async with running_node(app):
        run = await app.wait_for(await app.trigger("doomed"), 15)
        # Then the run failed, its running step was recorded, and no child was made (the late branch's
        # moment came while the slow step was being recorded, before the run's outcome was written)
        assert run.status == "failed"
        names = [s["name"] for s in await app.get_steps(run.id)]
        assert names == ["slow"]
        assert await app.get_children(run.id) == []
    assert started["late_child"] == 0


async def test_a_wait_or_a_permanent_failure_inside_a_task_group_ends_the_attempt_as_it_would_outside(
        make_app: Any) -> None:
    # Given handlers whose TaskGroup tasks begin a durable sleep, or raise a PermanentFailure (a TaskGroup
    # gathers its tasks' errors into a group)
    app = make_app()

    @app.job(max_attempts=1)
    async def grouped_sleep(ctx: RunContext, payload: Any) -> str:
        async def nap(name: str) -> str:
            await ctx.sleep(0.2)
            return await ctx.step(name, lambda: name)

        async with asyncio.TaskGroup() as group:
            naps = [group.create_task(nap(n)) for n in ("x", "y")]
        return "".join(t.result() for t in naps)

    @app.job(max_attempts=3, backoff=Backoff("fixed", initial_s=0.05))
    async def grouped_failure(ctx: RunContext, payload: Any) -> None:
        async def hopeless() -> None:
            raise PermanentFailure("no retry helps")

        async with asyncio.TaskGroup() as group:
            group.create_task(hopeless())

    async with running_node(app):
        slept = await app.wait_for(await app.trigger("grouped_sleep"), 15)
        failed = await app.wait_for(await app.trigger("grouped_failure"), 15)
    # Then the sleeping run waited and completed; the failing one failed at once, with the task's own error
    assert slept.status == "completed" and slept.output == "xy", slept.error
    assert failed.status == "failed" and failed.attempt == 1
    assert failed.error is not None and failed.error["type"] == "PermanentFailure", failed.error


async def test_a_branch_running_new_code_logs_while_a_sibling_still_replays(make_app: Any) -> None:
    # Given a retry on which branch a goes past its recorded step into new code while branch b, slower to
    # start, has not replayed its recorded steps yet
    app = make_app()

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def logging_branches(ctx: RunContext, payload: Any) -> None:
        async def a() -> None:
            await ctx.step("a1", lambda: 1)
            ctx.log.info("a after a1 on attempt %d", ctx.attempt)

        async def b() -> None:
            await asyncio.sleep(0.05)
            await ctx.step("b1", lambda: 1)
            await ctx.step("b2", lambda: 2)

        await asyncio.gather(a(), b())
        fail_first_attempt(ctx)

    async with running_node(app):
        run = await app.wait_for(await app.trigger("logging_branches"), 15)
        messages = [e["data"]["message"] for e in await app.get_events(run.id) if e["type"] == "log"]
    # Then the retry logged a's line too: a replays only up to its own furthest step, a1 (counting the
    # whole run's steps, b's included, held the line back as if a still replayed)
    assert run.status == "completed", run.error
    assert messages.count("a after a1 on attempt 1") == 1 and messages.count("a after a1 on attempt 2") == 1
