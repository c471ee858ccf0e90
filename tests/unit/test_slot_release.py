"""A node's slot and its lease end at different times: a handler that ended frees its slot at once
(the next claim need not wait for the outcome's write), while its lease is held until the outcome is
written, and a shutdown waiting for every outcome still waits for that write."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.supervisor import Supervisor
from runtime import RunContext
from runtime.messages import Released, RunFinished, SlotsFreed, WhenReleased
from runtime.scripts import Outcome


async def test_an_ended_handler_frees_its_slot_before_its_lease(make_app: Any) -> None:
    # Given a node (its actors, not started) holding the lease of one run at concurrency 1
    app = make_app(concurrency=1)

    @app.job()
    async def work(ctx: RunContext, x: int) -> int:
        return x

    supervisor = Supervisor(app)
    fetcher, reporter, leaser = supervisor.fetcher, supervisor.reporter, supervisor.leaser
    run_id = await app.trigger("work", 1)
    part = app.keys.partition_of_run(run_id)
    [claimed], _ = await app.scripts.claim(part, app.settings.node_id, 1, ["default"], ["work"], 0)
    fetcher.occupied.add((run_id, claimed.token))
    all_reported: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fetcher.handle(WhenReleased(all_reported))
    # When its handler's outcome reaches the reporter
    outcome = Outcome(run_id, claimed.token, "completed", "1")
    await reporter.send(RunFinished(outcome, part.index, "work", 0.0))
    writing = asyncio.create_task(reporter.run())
    try:
        # Then the fetcher hears first that the slot is free: it may claim, but the outcome is unreported
        first = await fetcher.receive(5.0)
        assert first == SlotsFreed(((run_id, claimed.token),))
        fetcher.handle(first)
        assert fetcher.slots - len(fetcher.occupied) == 1 and fetcher.maybe_work
        assert not all_reported.done()
        # And only once the outcome is written, that the lease is gone (the leaser too)
        second = await fetcher.receive(5.0)
        assert second == Released(((run_id, claimed.token),))
        assert await app.redis.hget(part.run(run_id), "status") in (b"completed", "completed")
        assert await leaser.receive(5.0) == Released(((run_id, claimed.token),))
        fetcher.maybe_work = False  # the claim the freed slot asked for was made
        fetcher.handle(second)
        assert all_reported.done() and not fetcher.unreported
        # and the written outcome asks for no second claim for the same slot (an idle
        # runs_claim per run on a quiet node)
        assert not fetcher.maybe_work
    finally:
        writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)
