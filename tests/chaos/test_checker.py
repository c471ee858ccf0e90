"""The chaos checker flags each invariant it is meant to check (so a clean verdict means something)."""

from __future__ import annotations

from typing import Any

import orjson

from bench.chaos.checker import UNDER_WAY, check
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
    # a step started at 3000 although completed at 2000; and one under way (started at 1500) when
    # another attempt completed it at 2000, its note delayed: not a re-run
    reruns = marks.reruns(app.keys.partition_of_run(queued))
    for step, started in (("s0", 3000), ("s1", 1500)):
        entry = {"run": queued, "step": step, "node": "n", "attempt": 1, "started_ms": started}
        await redis.rpush(reruns, orjson.dumps({"entry": entry, "completed_at": 2000,
                                                "record": ["executing", "2", "m"]}))
    await redis.zadd(p.leased, {"not-executing": 1})  # an index entry no record backs
    # When the checker reads them, with one acknowledged id that was never created
    verdict = await check(app, {queued: "work", twice: "work", "never-created": "work"}, marks)
    # Then each broken invariant is reported with the run it concerns
    v = verdict.violations
    assert v["runs lost"] == ["never-created"]
    assert sorted(v["runs stuck (not terminal after the quiesce wait)"]) == ["queued-1 queued", "twice-1 queued"]
    assert [e.split()[0] for e in v["results recorded twice"]] == ["twice-1"]
    assert v["steps re-run after completing"] == [
        "queued-1 step s0 on n attempt 1 at 3000, completed at 2000; the run record said ['executing', '2', 'm']"]
    assert verdict.notes[UNDER_WAY] == 1
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


def test_a_step_noted_after_it_was_completed_is_a_re_run_only_if_it_started_after() -> None:
    # Given a step completed at Redis ms 2000 (by its node's clock), the run on attempt 2 on node m since
    from bench.chaos.checker import _under_way_when_completed
    moved_on = ["executing", "2", "m"]

    def entry(started_ms: int | None) -> dict[str, Any]:
        return {"run": "r", "step": "s0", "node": "n", "attempt": 1, "started_ms": started_ms}

    # Then an execution of attempt 1 that started before (its node stopped between the step's start and
    # its note) was under way, as after a crash mid-step; so it is once the run has ended, too
    assert _under_way_when_completed(entry(1999), 2000, moved_on)
    assert _under_way_when_completed(entry(1999), 2000, ["completed", "2", "m"])
    # And one that started at or after it re-ran a completed step, as does one whose times are unknown
    assert not _under_way_when_completed(entry(2000), 2000, moved_on)
    assert not _under_way_when_completed(entry(None), 2000, moved_on)
    assert not _under_way_when_completed(entry(1999), None, moved_on)
    # And so does one noted while its own attempt still held the run: no other attempt completed the step
    assert not _under_way_when_completed(entry(1999), 2000, ["executing", "1", "n"])
