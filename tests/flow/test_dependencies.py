"""Declarative dependencies (depends_on, workflows) and admission control (max_queued), on real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runtime import RunContext
from runtime.errors import QueueFull, SubmissionError, UnknownParent
from tests.nodes import running_node


async def test_dependent_waits_for_its_parents_and_reads_their_outputs(make_app: Any) -> None:
    app = make_app()
    gate = asyncio.Event()
    order: list[str] = []

    @app.job()
    async def fetch(ctx: RunContext, payload: Any) -> Any:
        await gate.wait()
        order.append(f"fetch{payload}")
        return {"rows": payload}

    @app.job()
    async def merge(ctx: RunContext, payload: Any) -> Any:
        order.append("merge")
        return await ctx.parent_outputs()

    async with running_node(app):
        a = await app.trigger("fetch", 1)
        b = await app.trigger("fetch", 2)
        # Given a run that depends on two running parents
        dep = await app.trigger("merge", None, depends_on=[a, {"id": b, "name": "second"}])
        waiting = await app.get_run(dep)
        # Then it waits for them (not queued) until both finished
        assert waiting is not None and waiting.status == "waiting" and waiting.wait_kind == "parents"
        # (a restart while it waits makes a copy that waits for the same parents)
        copy = await app.restart(dep)
        assert (await app.get_run(dep)).status == "canceled"  # type: ignore[union-attr]
        assert (await app.get_run(copy)).status == "waiting"  # type: ignore[union-attr]
        gate.set()
        done = await app.wait_for(copy, 10)
    # and then runs once, after them, with their outputs by id or name
    assert done.status == "completed" and order[-1] == "merge" and order.count("merge") == 1
    assert done.output == {a: {"rows": 1}, "second": {"rows": 2}}


async def test_finished_parent_counts_at_once_and_failed_parent_applies_the_policy(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def ok(ctx: RunContext, payload: Any) -> Any:
        return payload

    @app.job(max_attempts=1)
    async def boom(ctx: RunContext, payload: Any) -> Any:
        raise RuntimeError("no")

    async with running_node(app):
        good = await app.trigger("ok", 7)
        bad = await app.trigger("boom")
        await app.wait_for(good, 10)
        await app.wait_for(bad, 10)
        # Given parents that already finished, one completed and one dead-lettered
        ran = await app.trigger("ok", "x", depends_on=[good, {"id": bad, "on_failure": "ignore"}])
        failed = await app.trigger("ok", "y", depends_on=[good, bad])
        canceled = await app.trigger("ok", "z", depends_on=[{"id": bad, "on_failure": "cancel"}])
        # Then each follows its edge's policy at once: no lost wake-up
        assert (await app.wait_for(ran, 10)).status == "completed"
        f = await app.wait_for(failed, 10)
        c = await app.wait_for(canceled, 10)
    assert f.status == "failed" and "ended dead_letter" in str(f.error)
    assert c.status == "canceled"


async def test_failure_cascades_through_a_chain_by_policy(make_app: Any) -> None:
    app = make_app()
    gate = asyncio.Event()

    @app.job(max_attempts=1)
    async def first(ctx: RunContext, payload: Any) -> Any:
        await gate.wait()
        raise RuntimeError("first failed")

    @app.job()
    async def later(ctx: RunContext, payload: Any) -> Any:
        return payload

    async with running_node(app):
        root = await app.trigger("first")
        mid = await app.trigger("later", 1, depends_on=[root])
        leaf = await app.trigger("later", 2, depends_on=[mid])
        tolerant = await app.trigger("later", 3, depends_on=[{"id": leaf, "on_failure": "ignore"}])
        gate.set()
        statuses = [(await app.wait_for(r, 10)).status for r in (root, mid, leaf, tolerant)]
    assert statuses == ["dead_letter", "failed", "failed", "completed"]


async def test_a_delay_still_ahead_when_the_parents_finish_holds_the_dependent_until_then(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def ok(ctx: RunContext, payload: Any) -> Any:
        return payload

    parent = await app.trigger("ok", 1)
    dep = await app.trigger("ok", 2, depends_on=[parent], delay=0.5)
    async with running_node(app):
        # When the parent finishes before the dependent's delay is over, the dependent turns delayed
        await app.wait_for(parent, 10)
        held = await app.wait_for(dep, 10, statuses=["delayed", "completed"])
        done = await app.wait_for(dep, 10)
    assert held.status == "delayed" and done.status == "completed"
    assert done.started_at_ms is not None and done.started_at_ms >= done.created_at_ms + 500


async def test_unknown_parent_and_bad_depends_on_are_clear_errors(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def ok(ctx: RunContext, payload: Any) -> Any:
        return payload

    with pytest.raises(UnknownParent, match="no-such-run"):
        await app.trigger("ok", depends_on=["no-such-run"])
    for bad in ("x", [{"id": "a", "on_failure": "maybe"}], ["a", "a"], [{"nope": 1}]):
        with pytest.raises(SubmissionError) as info:
            await app.trigger("ok", depends_on=bad)
        assert info.value.reason == "bad_depends_on"
    # nothing was created by the refused triggers, not even the input the script writes first
    assert not any((await app.count_by_status()).values())
    assert await app.redis.keys(app.keys.partitions[0].input("*")) == []


async def test_workflow_runs_tasks_after_their_parents(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def extract(ctx: RunContext, payload: Any) -> Any:
        return [payload, payload + 1]

    @app.job()
    async def double(ctx: RunContext, payload: Any) -> Any:
        return [x * 2 for x in (await ctx.parent_outputs())["extract"]]

    @app.job()
    async def total(ctx: RunContext, payload: Any) -> Any:
        outs = await ctx.parent_outputs()
        return sum(outs["double"]) + sum(outs["extract"])

    wf = app.workflow("etl")
    e = wf.task(extract)
    d = wf.task(double, parents=[e])
    wf.task("total", parents=[e, d])
    async with running_node(app):
        run = await app.run_workflow(wf, 10)
        results = await run.wait(10)
    assert {n: r.status for n, r in results.items()} == {"extract": "completed", "double": "completed",
                                                          "total": "completed"}
    assert results["total"].output == (20 + 22) + (10 + 11)
    assert results["double"].raw["workflow_run_id"] == run.id


async def test_max_queued_rejects_past_the_cap_and_admits_again_once_runs_start(make_app: Any) -> None:
    app = make_app()
    gate = asyncio.Event()

    @app.job(max_queued=2, max_concurrency=1)
    async def slow(ctx: RunContext, payload: Any) -> Any:
        await gate.wait()

    @app.job(queue="mail")
    async def mail(ctx: RunContext, payload: Any) -> Any:
        return None

    await app.register_jobs()
    # Given a job capped at two runs not yet started
    first = [await app.trigger("slow", i) for i in range(2)]
    with pytest.raises(QueueFull) as info:
        await app.trigger("slow", 3)
    assert (info.value.reason, info.value.scope, info.value.max_queued) == ("queue_full", "job", 2)
    # and a queue capped at runtime
    await app.set_max_queued(1, queue="mail")
    await app.trigger("mail")
    with pytest.raises(QueueFull, match="queue 'mail'"):
        await app.trigger("mail")
    # a batch is decided run by run, inside the one script call
    with pytest.raises(QueueFull):
        await app.trigger_batch([{"job": "slow"}])
    async with running_node(app):
        # When one run starts (max_concurrency 1 holds the other back), one place frees up
        await app.wait_for(first[0], 10, statuses=["executing"])
        third = await app.trigger("slow", 3)
        with pytest.raises(QueueFull):
            await app.trigger("slow", 4)
        gate.set()
        for run_id in (*first, third):
            assert (await app.wait_for(run_id, 10)).status == "completed"
        # a runtime override lifts the cap; clearing the queue's does too
        await app.set_max_queued(None, queue="mail")
        await app.trigger("mail")


async def test_with_several_partitions_dependents_follow_their_parents_partition(make_app: Any) -> None:
    app = make_app(partitions=4)

    @app.job()
    async def ok(ctx: RunContext, payload: Any) -> Any:
        return payload

    @app.job(max_concurrency=2)
    async def pinned(ctx: RunContext, payload: Any) -> Any:
        return payload

    parents = [await app.trigger("ok", i) for i in range(12)]
    by_partition: dict[int, list[str]] = {}
    for p in parents:
        by_partition.setdefault(app.keys.partition_of_run(p).index, []).append(p)
    assert len(by_partition) > 1
    (first, *_), (second, *_) = list(by_partition.values())[:2]
    # A dependent lives in its parents' partition
    dep = await app.trigger("ok", "d", depends_on=[first])
    assert app.keys.partition_of_run(dep) == app.keys.partition_of_run(first)
    # Parents of two partitions are refused, and so is a job routed to another partition than its parents'
    with pytest.raises(SubmissionError) as info:
        await app.trigger("ok", depends_on=[first, second])
    assert info.value.reason == "depends_on_partitions"
    pinned_home = app.keys.partition_for("job:pinned")
    stranger = next(ids[0] for index, ids in by_partition.items() if index != pinned_home.index)
    with pytest.raises(SubmissionError, match="another partition"):
        await app.trigger("pinned", depends_on=[stranger])
    # A workflow puts every task in one partition
    wf = app.workflow("wide")
    roots = [wf.task("ok", name=f"r{i}", input=i) for i in range(6)]
    wf.task("ok", name="join", parents=roots)
    async with running_node(app):
        run = await app.run_workflow(wf)
        results = await run.wait(10)
        assert (await app.wait_for(dep, 10)).status == "completed"
    assert len({app.keys.partition_of_run(r).index for r in run.runs.values()}) == 1
    assert results["join"].status == "completed" and results["join"].raw["workflow"] == "wide"


async def test_max_queued_is_exact_under_concurrent_producers(make_app: Any) -> None:
    apps = [make_app() for _ in range(4)]
    for app in apps:
        @app.job(max_queued=10)
        async def capped(ctx: RunContext, payload: Any) -> None:
            return None
    await apps[0].register_jobs()
    # When four producers trigger 60 runs at once against a cap of ten
    outcomes = await asyncio.gather(*(apps[i % 4].trigger("capped", i) for i in range(60)), return_exceptions=True)
    # Then exactly ten were admitted and the rest refused with QueueFull
    assert sum(isinstance(o, str) for o in outcomes) == 10
    assert sum(isinstance(o, QueueFull) for o in outcomes) == 50
    assert (await apps[0].count_by_status())["queued"] == 10


async def test_a_dependent_starts_as_soon_as_its_parent_ends_on_an_idle_node(make_app: Any) -> None:
    # Given an idle node that claims on its own only every 10 s (idle_poll_ms), so a run queued
    # without a wake-up waits that long
    app = make_app(idle_poll_ms=10_000)
    ended: dict[int, float] = {}
    started: dict[int, float] = {}

    @app.job()
    async def parent(ctx: RunContext, payload: Any) -> None:
        await asyncio.sleep(0.05)
        ended[payload] = asyncio.get_running_loop().time()

    @app.job()
    async def child(ctx: RunContext, payload: Any) -> None:
        started[payload] = asyncio.get_running_loop().time()

    async with running_node(app):
        for i in range(3):
            # When a parent runs and ends while its dependent waits for it (the finish queues it)
            first = await app.trigger("parent", i)
            dependent = await app.trigger("child", i, depends_on=[first])
            assert (await app.wait_for(dependent, 8)).status == "completed"
    # Then the dependent started at once: the finish that queued it woke the nodes (it waited for
    # the next idle poll before, ~0.5 s on average with the default 1 s)
    assert all(started[i] - ended[i] < 2.0 for i in range(3)), {i: started[i] - ended[i] for i in range(3)}
