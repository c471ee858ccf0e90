"""Runs due later start when due, not at the leaser's next regular tick.

A delayed trigger, a retry's backoff, a durable sleep, a wait's timeout and a queued run's TTL are
announced on the wake channel by the script that schedules them, when the run
becomes the first due of its partition (runtime/lua/includes/common.lua,
add_due), and every node's leaser promotes it then. Before, such a run waited
for the next tick: up to a reap interval (1 s by default) late.
"""

from __future__ import annotations

import time
from typing import Any

from runtime import Backoff, RunContext, WaitTimeout
from tests.nodes import eventually, running_node

#: far longer than the waits below: a run promoted by a regular tick would start ~20 s late
REAP_INTERVAL_MS = 20_000
#: how late a due run may start here (a busy 2-core machine); a regular tick would be far later
LATE_S = 1.5


async def test_delayed_runs_retries_sleeps_and_wait_timeouts_start_when_due(make_app: Any) -> None:
    # Given a node whose regular ticks are 20 s apart (its first one runs as it starts)
    app = make_app(reap_interval_ms=REAP_INTERVAL_MS)
    marks: dict[str, list[float]] = {}

    def mark(ctx: RunContext) -> None:
        marks.setdefault(ctx.run_id, []).append(time.monotonic())

    @app.job()
    async def marked(ctx: RunContext, payload: Any) -> None:
        mark(ctx)

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.3, jitter=0))
    async def fails_once(ctx: RunContext, payload: Any) -> None:
        mark(ctx)
        if ctx.attempt == 1:
            raise RuntimeError("once")

    @app.job()
    async def sleeps(ctx: RunContext, payload: Any) -> None:
        if ctx.run_id not in marks:  # (the handler runs again from the top after the sleep)
            mark(ctx)
        await ctx.sleep(0.4)
        mark(ctx)

    @app.job()
    async def waits(ctx: RunContext, payload: Any) -> str:
        if ctx.run_id not in marks:
            mark(ctx)
        try:
            await ctx.wait_for_event(f"never-{ctx.run_id}", timeout=0.4)
        except WaitTimeout:
            mark(ctx)
            return "timed out"
        return "event"

    async with running_node(app):
        # (its first tick has run once the partition's reaper record exists)
        await eventually(lambda: app.redis.exists(app.keys.partitions[0].reaper), 10)
        # When each kind of later run is scheduled in turn, nothing else being due
        t0 = time.monotonic()
        delayed = await app.wait_for(await app.trigger("marked", delay=0.5), 10)
        retried = await app.wait_for(await app.trigger("fails_once"), 10)
        slept = await app.wait_for(await app.trigger("sleeps"), 10)
        waited = await app.wait_for(await app.trigger("waits"), 10)
    # Then each ran when due, long before the next regular tick
    runs = [delayed, retried, slept, waited]
    assert [r.status for r in runs] == ["completed"] * 4, [(r.id, r.status, r.error) for r in runs]
    assert waited.output == "timed out"
    late = {
        "delayed trigger": marks[delayed.id][0] - t0 - 0.5,
        "retry backoff": marks[retried.id][1] - marks[retried.id][0] - 0.3,
        "durable sleep": marks[slept.id][1] - marks[slept.id][0] - 0.4,
        "wait timeout": marks[waited.id][1] - marks[waited.id][0] - 0.4,
    }
    assert all(-0.05 <= s < LATE_S for s in late.values()), late


async def test_a_due_run_is_promoted_between_ticks_without_reaping_more_often(make_app: Any) -> None:
    # Given a node whose regular ticks (promote and reap) are 20 s apart, its calls counted
    app = make_app(reap_interval_ms=REAP_INTERVAL_MS)
    calls = {"promote": 0, "reap": 0}
    for name in calls:
        real = getattr(app.scripts, name)

        def counted(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)
        setattr(app.scripts, name, counted)

    @app.job()
    async def marked(ctx: RunContext, payload: Any) -> None:
        return None

    async with running_node(app):
        await eventually(lambda: app.redis.exists(app.keys.partitions[0].reaper), 10)
        reaps_at_start = calls["reap"]
        # When five delayed runs are triggered in turn, each due before the next regular tick
        runs = [await app.wait_for(await app.trigger("marked", delay=0.2), 10) for _ in range(5)]
    # Then each was promoted when due (a promote call of its own), and none of them made the node
    # reap: reaping keeps its interval
    assert [r.status for r in runs] == ["completed"] * 5
    assert calls["promote"] >= reaps_at_start + 5
    assert calls["reap"] == reaps_at_start


async def test_a_due_notice_makes_nodes_promote_its_partition_alone(make_app: Any) -> None:
    # Given a node with eight partitions whose regular ticks are 20 s apart, its promote calls
    # counted by partition
    app = make_app(reap_interval_ms=REAP_INTERVAL_MS, partitions=8)
    promoted: list[int] = []
    real = app.scripts.promote

    def counted(p: Any, *args: Any) -> Any:
        promoted.append(p.index)
        return real(p, *args)
    app.scripts.promote = counted  # type: ignore[method-assign]

    @app.job()
    async def marked(ctx: RunContext, payload: Any) -> None:
        return None

    async with running_node(app):
        # (its first tick, which promotes in every partition, is over once each has its reaper record)
        for p in app.keys.partitions:
            await eventually(lambda p=p: app.redis.exists(p.reaper), 10)
        at_start = len(promoted)
        # When three delayed runs are triggered in turn, each due before the next regular tick
        runs = [await app.wait_for(await app.trigger("marked", delay=0.2), 10) for _ in range(3)]
    # Then each was promoted when due, and only the partitions that held one were promoted since:
    # a notice names its partition (before, each notice made every node promote all eight)
    assert [r.status for r in runs] == ["completed"] * 3
    holding = {app.keys.partition_of_run(r.id).index for r in runs}
    since = promoted[at_start:]
    assert set(since) == holding, (since, holding)
    assert len(since) >= len(runs)


async def test_a_queued_run_past_its_ttl_ends_expired_when_it_is_over(make_app: Any) -> None:
    # Given a node whose regular ticks are 20 s apart, and a queue it does not serve
    app = make_app(reap_interval_ms=REAP_INTERVAL_MS, queues="default")

    @app.job()
    async def marked(ctx: RunContext, payload: Any) -> None:
        return None

    @app.job(queue="nobody-serves")
    async def unserved(ctx: RunContext, payload: Any) -> None:
        return None

    async with running_node(app):
        await eventually(lambda: app.redis.exists(app.keys.partitions[0].reaper), 10)
        # When a run that nobody will lease is triggered with a TTL of 0.5 s
        t0 = time.monotonic()
        run = await app.wait_for(await app.trigger("unserved", ttl=0.5), 10)
        ended = time.monotonic()
    # Then it ended expired when its TTL was over, long before the next regular tick
    assert run.status == "expired", (run.status, run.error)
    assert 0.45 <= ended - t0 < 0.5 + LATE_S, ended - t0
