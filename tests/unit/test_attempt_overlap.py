"""A run's next attempt can be leased to a node while its last attempt there is still ending (its
handler unwinding a cancellation, its outcome being written, a renewal reply about its lease on the
way). What the actors hear about one attempt must not touch the other: they name attempts by lease
token, not by run id. Each test drives the actors (not started) of one node over a real Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from actors.supervisor import Supervisor
from runtime import RunContext
from runtime.messages import CancelRun, Hold, LeaseGranted, Released, RunFinished, SlotsFreed
from runtime.scripts import Claimed


async def _leased(app: Any, job: str) -> Claimed:
    """One run of ``job``, triggered and leased for real (its first attempt)."""
    run_id = await app.trigger(job)
    [claimed], _ = await app.scripts.claim(app.keys.partition_of_run(run_id), app.settings.node_id, 1,
                                           ["default"], [job], 0)
    return claimed


def _next_attempt(c: Claimed) -> Claimed:
    """The same run's next attempt on this node, under a newer lease."""
    return c._replace(token=f"{c.token}-next", attempt=c.attempt + 1)


async def _outcome(supervisor: Supervisor) -> RunFinished:
    msg = await supervisor.reporter.receive(5.0)
    assert isinstance(msg, RunFinished), "the executor reported no outcome within 5s"
    return msg


async def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within 5s"
        await asyncio.sleep(0.005)


def _gated_node(make_app: Any) -> tuple[Any, Supervisor, list[RunContext], asyncio.Event]:
    """An app whose job ``work`` notes each run's context as it starts and then waits for the event,
    and its node's actors (not started)."""
    app = make_app()
    started: list[RunContext] = []
    go = asyncio.Event()

    @app.job()
    async def work(ctx: RunContext, payload: Any) -> int:
        started.append(ctx)
        await go.wait()
        return ctx.attempt

    return app, Supervisor(app), started, go


async def _running_attempt(make_app: Any) -> tuple[Supervisor, list[RunContext], asyncio.Event, Claimed]:
    """A gated node (_gated_node) running the first attempt of one run of ``work``, and that attempt's lease."""
    app, supervisor, started, go = _gated_node(make_app)
    c = await _leased(app, "work")
    supervisor.executor.handle(LeaseGranted(c, time.monotonic() + 30))
    await _until(lambda: len(started) == 1, "the attempt's start")
    return supervisor, started, go, c


async def test_news_of_an_earlier_lease_does_not_stop_the_next_attempt(make_app: Any) -> None:
    # Given a node running a run's second attempt
    app, supervisor, started, go = _gated_node(make_app)
    executor = supervisor.executor
    first = await _leased(app, "work")
    second = _next_attempt(first)
    executor.handle(LeaseGranted(second, time.monotonic() + 30))
    await _until(lambda: [ctx.attempt for ctx in started] == [second.attempt], "the second attempt's start")
    # When a renewal reply says the first attempt's lease is lost (it was sent before the run was given back)
    executor.handle(CancelRun(first.run_id, "lease_lost", "work", first.attempt, first.token))
    # Then the second attempt goes on and completes
    assert not executor.tasks[first.run_id].cancelled() and not executor.cancel_reasons
    go.set()
    finished = await _outcome(supervisor)
    assert (finished.outcome.token, finished.outcome.outcome) == (second.token, "completed")
    # and news about the lease it holds does stop it (the check above is not vacuous)
    go.clear()
    third = _next_attempt(second)
    executor.handle(LeaseGranted(third, time.monotonic() + 30))
    await _until(lambda: len(started) == 2, "the third attempt's start")
    executor.handle(CancelRun(third.run_id, "lease_lost", "work", third.attempt, third.token))
    finished = await _outcome(supervisor)
    assert (finished.outcome.token, finished.outcome.outcome) == (third.token, "failed")


async def test_a_run_cancelled_before_its_handler_started_frees_its_slot_and_is_reported(make_app: Any) -> None:
    # Given a node granted a run
    app, supervisor, started, _go = _gated_node(make_app)
    executor = supervisor.executor
    c = await _leased(app, "work")
    # When a cancel reaches the executor in the same turn, before the run's task took its first step
    executor.handle(LeaseGranted(c, time.monotonic() + 30))
    executor.handle(CancelRun(c.run_id, "canceled"))
    # Then the run is reported canceled and its slot is free, though _execute never ran
    finished = await _outcome(supervisor)
    assert (finished.outcome.run_id, finished.outcome.outcome) == (c.run_id, "canceled")
    assert started == [] and not executor.tasks and not executor.claimed and not executor.cancel_reasons


async def test_an_attempt_ending_after_the_next_one_started_leaves_the_next_ones_slot(make_app: Any) -> None:
    # Given a node whose first attempt of a run was stopped (lease lost) and takes a while to unwind
    app = make_app()
    started: list[int] = []
    unwind = asyncio.Event()
    finish_second = asyncio.Event()

    @app.job()
    async def work(ctx: RunContext, payload: Any) -> int:
        started.append(ctx.attempt)
        if ctx.attempt == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await unwind.wait()  # cleanup that takes its time
                raise
        await finish_second.wait()
        return ctx.attempt

    supervisor = Supervisor(app)
    executor = supervisor.executor
    first = await _leased(app, "work")
    executor.handle(LeaseGranted(first, time.monotonic() + 30))
    await _until(lambda: started == [1], "the first attempt's start")
    executor.handle(CancelRun(first.run_id, "lease_lost", "work", 1, first.token))
    # When the run's second attempt starts here before the first has ended
    second = _next_attempt(first)
    executor.handle(LeaseGranted(second, time.monotonic() + 30))
    await _until(lambda: started == [1, 2], "the second attempt's start")
    unwind.set()
    finished = await _outcome(supervisor)
    assert (finished.outcome.token, finished.outcome.outcome) == (first.token, "failed")
    # Then the second attempt still holds its slot, its lease clock and its context
    assert executor.claimed[first.run_id] is second
    assert not executor.tasks[first.run_id].done()
    assert first.run_id in executor.leases and first.run_id in executor.contexts
    # and completes as the second attempt
    finish_second.set()
    finished = await _outcome(supervisor)
    assert (finished.outcome.token, finished.outcome.outcome) == (second.token, "completed")
    assert not executor.tasks


async def test_the_release_of_an_earlier_lease_leaves_the_next_ones_lease_and_slot(make_app: Any) -> None:
    # Given a node holding the second attempt's lease (and slot) of a run whose first attempt's
    # outcome is still being written
    app = make_app()

    @app.job()
    async def work(ctx: RunContext, payload: Any) -> None:
        return None

    supervisor = Supervisor(app)
    leaser, fetcher = supervisor.leaser, supervisor.fetcher
    first = await _leased(app, "work")
    second = _next_attempt(first)
    leaser.handle(Hold(first.partition, (first,), time.monotonic() + 30))
    leaser.handle(Hold(second.partition, (second,), time.monotonic() + 30))
    fetcher.occupied.add((second.run_id, second.token))
    # When the first attempt's slot is freed and its outcome written
    fetcher.handle(SlotsFreed(((first.run_id, first.token),)))
    released = Released(((first.run_id, first.token),))
    leaser.handle(released)
    fetcher.handle(released)
    # Then the second attempt's lease is still renewed and its slot still taken
    assert leaser.held[first.run_id][0] == second.token
    assert fetcher.occupied == {(second.run_id, second.token)}
    # and the release of its own lease ends both
    fetcher.handle(SlotsFreed(((second.run_id, second.token),)))
    released = Released(((second.run_id, second.token),))
    leaser.handle(released)
    fetcher.handle(released)
    assert first.run_id not in leaser.held and not fetcher.occupied and not fetcher.unreported


async def test_first_attempts_of_two_runs_share_a_token_but_not_a_slot_or_a_cancel(make_app: Any) -> None:
    # Given a node running the first attempts of two runs (their tokens read the same: node/1)
    app, supervisor, started, go = _gated_node(make_app)
    executor, fetcher = supervisor.executor, supervisor.fetcher
    a, b = await _leased(app, "work"), await _leased(app, "work")
    assert a.token == b.token
    for c in (a, b):
        executor.handle(LeaseGranted(c, time.monotonic() + 30))
        fetcher.occupied.add((c.run_id, c.token))
    await _until(lambda: len(started) == 2, "both starts")
    # When the first is cancelled and its slot freed
    executor.handle(CancelRun(a.run_id, "canceled"))
    finished = await _outcome(supervisor)
    fetcher.handle(SlotsFreed(((a.run_id, a.token),)))
    # Then the second still runs, uncancelled, in its own slot, and completes
    assert (finished.outcome.run_id, finished.outcome.outcome) == (a.run_id, "canceled")
    assert fetcher.occupied == {(b.run_id, b.token)} and (b.run_id, b.token) not in executor.cancel_reasons
    go.set()
    finished = await _outcome(supervisor)
    assert (finished.outcome.run_id, finished.outcome.outcome) == (b.run_id, "completed")


async def test_a_second_grant_of_the_running_lease_does_not_start_the_attempt_twice(make_app: Any) -> None:
    # Given a node running a run's attempt
    supervisor, started, go, c = await _running_attempt(make_app)
    executor = supervisor.executor
    task = executor.tasks[c.run_id]
    # When the same lease is granted again (a hand-off entry popped twice, say)
    executor.handle(LeaseGranted(c, time.monotonic() + 30))
    for _ in range(10):
        await asyncio.sleep(0)
    # Then no second task runs the attempt, the first keeps its slot, and the grant is counted
    assert len(started) == 1 and executor.tasks[c.run_id] is task and executor.claimed[c.run_id] is c
    assert executor.metrics.registry.get_sample_value("baton_leases_granted_again_total") == 1
    # and the attempt completes once
    go.set()
    finished = await _outcome(supervisor)
    assert (finished.outcome.token, finished.outcome.outcome) == (c.token, "completed")
    assert not executor.tasks and len(started) == 1


async def test_a_run_created_again_under_its_id_starts_beside_the_attempt_still_ending(make_app: Any) -> None:
    # Given a node running a run's first attempt
    supervisor, started, go, c = await _running_attempt(make_app)
    executor = supervisor.executor
    # When a run created again under the id is granted here (its first attempt: the same token, a later grant)
    again = c._replace(claimed_at_ms=c.claimed_at_ms + 1)
    executor.handle(LeaseGranted(again, time.monotonic() + 30))
    # Then it starts (the guard against a second grant of one lease does not hold it back)
    await _until(lambda: len(started) == 2, "the new run's start")
    assert executor.claimed[c.run_id] is again
    assert not executor.metrics.registry.get_sample_value("baton_leases_granted_again_total")
    go.set()


async def test_a_run_started_late_after_its_grant_reads_the_redis_clock_right(make_app: Any) -> None:
    # Given a run leased for real, whose grant reaches the executor only 0.5 s after the claim was sent
    # (a busy node), with the deadline a node takes before the call
    app, supervisor, started, go = _gated_node(make_app)
    run_id = await app.trigger("work")
    sent = time.monotonic()
    [c], _ = await app.scripts.claim(app.keys.partition_of_run(run_id), app.settings.node_id, 1, ["default"],
                                     ["work"], 0)
    await asyncio.sleep(0.5)
    supervisor.executor.handle(LeaseGranted(c, sent + app.settings.lease_ttl_ms / 1000))
    await _until(lambda: len(started) == 1, "the attempt's start")
    # When its handler reads the Redis clock (what a durable sleep's end and a wait's timeout count from)
    seconds, micros = await app.redis.time()
    redis_now_ms = seconds * 1000 + micros // 1000
    # Then it is Redis's, not half a second behind it (a durable sleep would end that much early)
    assert abs(started[0].now_ms() - redis_now_ms) < 50, started[0].now_ms() - redis_now_ms
    go.set()
    assert (await _outcome(supervisor)).outcome.outcome == "completed"
