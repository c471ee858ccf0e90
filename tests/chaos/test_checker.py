"""The chaos checker flags each invariant it is meant to check (so a clean verdict means something)."""

from __future__ import annotations

from typing import Any

import orjson

from bench.chaos.checker import check
from bench.chaos.jobs import Marks
from bench.chaos.jobs import app as chaos_app
from runtime import Baton


async def test_checker_reports_lost_stuck_twice_rerun_and_drift(make_app: Any, redis: Any) -> None:
    # Given runs of the harness's job that no node executes, and state that breaks each invariant
    app: Baton = make_app()
    for job in chaos_app.jobs:
        app.jobs.add(job.name, job.handler, job.options)
    await app.register_jobs()
    queued = await app.trigger("work", {}, id="queued-1")
    twice = await app.trigger("work", {}, id="twice-1")
    p = app.keys.partition_of_run(twice)
    for _ in range(2):  # two terminal status events in one run's timeline
        await redis.xadd(p.events(twice), {"type": "status", "data": '{"status":"completed"}', "ts": 1})
    marks = Marks(app.keys)
    rerun = orjson.dumps({"run": queued, "step": "s0", "node": "n", "attempt": 1})
    await redis.rpush(marks.reruns(app.keys.partition_of_run(queued)), rerun)
    await redis.zadd(p.leased, {"not-executing": 1})  # an index entry no record backs
    # When the checker reads them, with one acknowledged id that was never created
    verdict = await check(app, {queued: "work", twice: "work", "never-created": "work"}, marks)
    # Then each broken invariant is reported with the run it concerns
    v = verdict.violations
    assert v["runs lost"] == ["never-created"]
    assert sorted(v["runs stuck (not terminal after the quiesce wait)"]) == ["queued-1 queued", "twice-1 queued"]
    assert [e.split()[0] for e in v["results recorded twice"]] == ["twice-1"]
    assert v["steps re-run after completing"] == ["queued-1 step s0 on n attempt 1"]
    assert verdict.drift["leased"] == 1 and "index drift (reconcile repaired)" in v
    assert "submission stream unreadable" in v  # no node ever created the intake group
    assert not verdict.ok and verdict.submitted == 3


def test_a_step_noted_after_its_lease_ended_is_a_violation_only_if_it_started_after() -> None:
    # Given a first attempt of a run on node n, reaped (its lease ended) at Redis ms 2000
    from bench.chaos.checker import _started_under_its_lease
    from runtime.records import Attempt
    attempts = [Attempt(1, "crashed", 1000, 2000, "n", None), Attempt(2, "completed", 2500, 2600, "m", None)]

    def entry(started_ms: int | None, node: str = "n", attempt: int = 1) -> dict[str, Any]:
        return {"run": "r", "step": "s1", "node": node, "attempt": attempt, "started_ms": started_ms}

    # Then a step of that attempt that started before the end (its note reached Redis late: a failover
    # held the call) started under its lease
    assert _started_under_its_lease(entry(1900), attempts)
    # And one that started at or after the end did not, nor one whose start or attempt is unknown
    assert not _started_under_its_lease(entry(2000), attempts)
    assert not _started_under_its_lease(entry(None), attempts)
    assert not _started_under_its_lease(entry(1900, node="m"), attempts)
    assert not _started_under_its_lease(entry(1900, attempt=3), attempts)
