"""A claim that comes back after the claim rounds went on without it (actors/fetcher.py SLOW_CLAIM_S)
may find the node's slots taken meanwhile: the runs past them are given back, uncharged, not run over
the node's concurrency."""

from __future__ import annotations

from typing import Any

from actors.base import Mailbox
from actors.fetcher import Fetcher
from runtime.messages import Hold, LeaseGranted
from runtime.metrics import Metrics
from runtime.script_replies import RELEASED_BECAUSE
from runtime.scripts import new_incarnation


async def test_runs_a_late_claim_leased_past_the_free_slots_are_given_back_uncharged(make_app: Any) -> None:
    # Given a fetcher of 2 slots, one of them taken, and 3 runs a claim of its node leased
    app = make_app(concurrency=2)

    @app.job()
    async def noop(ctx: Any, payload: Any) -> None:
        return None

    ids = await app.trigger_batch([{"job": "noop", "input": i} for i in range(3)])
    executor: Mailbox[LeaseGranted] = Mailbox(10)
    leaser: Mailbox[Hold] = Mailbox(10)
    metrics = Metrics()
    fetcher = Fetcher(app, metrics, Mailbox(10), executor, leaser, incarnation=new_incarnation())
    # (as a node wires it: the attempts given back outside the reporter are counted too)
    app.scripts.on_released = lambda runs: metrics.count_released(c.job for c in runs)
    fetcher.occupied.add(("some-run", "some-token"))
    [p] = app.keys.partitions
    claimed, _ = await app.scripts.claim(p, app.settings.node_id, 3, ["default"], ["noop"], 0)
    assert len(claimed) == 3
    # When it grants them (the claim came back late)
    await fetcher._grant(p, claimed, -1, 0.0)
    # Then one run goes to the executor, and the two past the free slot are queued again, their attempt
    # released (uncharged), not run over the limit
    assert executor.qsize() == 1 and len(fetcher.occupied) == 2
    started = executor.get_nowait().claimed.run_id
    assert started == claimed[0].run_id
    for run_id in ids:
        run = await app.get_run(run_id)
        assert run is not None
        if run_id == started:
            assert run.status == "executing"
        else:
            assert run.status == "queued" and [a.status for a in run.attempts] == ["released"], run
            assert run.attempts[0].error == {"message": RELEASED_BECAUSE["late_claim"], "type": "Released"}
    # And the node's attempts metric counts both as released
    released = metrics.registry.get_sample_value("baton_attempts_total", {"job_name": "noop", "outcome": "released"})
    assert released == 2, released
