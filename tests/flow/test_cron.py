"""Cron: exactly one firing per tick across nodes, overlap policy, catch-up, pause, parsing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from runtime import ConfigError, RunContext
from runtime.cron import CronExpression, CronSchedule
from runtime.records import iso
from runtime.schedules import upsert_schedule
from tests.nodes import eventually, running_node


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_expressions() -> None:
    utc = ZoneInfo("UTC")
    every_5_min = CronExpression.parse("*/5 * * * *")
    assert every_5_min.next_after(at("2026-01-01T10:02:30"), utc) == at("2026-01-01T10:05:00")
    weekdays_9 = CronExpression.parse("0 9 * * MON-FRI")
    assert weekdays_9.next_after(at("2026-01-02T09:00:00"), utc) == at("2026-01-05T09:00:00")  # Fri -> Mon
    seconds = CronExpression.parse("*/15 * * * * *")
    assert seconds.next_after(at("2026-01-01T00:00:14"), utc) == at("2026-01-01T00:00:15")
    monthly = CronExpression.parse("0 0 31 * *")
    assert monthly.next_after(at("2026-02-01T00:00:00"), utc) == at("2026-03-31T00:00:00")
    # in a timezone: 09:00 in New York is 14:00 UTC in winter
    ny = CronExpression.parse("0 9 * * *").next_after(at("2026-01-10T00:00:00"), ZoneInfo("America/New_York"))
    assert ny == at("2026-01-10T14:00:00")
    # (a ConfigError each, never another error: what refuses a stored schedule is its parse)
    for bad in ("* * *", "61 * * * *", "* * * * MOO", "*/0 * * * *", "*/61 * * * *", "*/99999999999999999999 * * * *",
                "*/² * * * *", "²³ * * * *", "١ * * * *", "0 0 1-٣ * *"):
        with pytest.raises(ConfigError):
            CronExpression.parse(bad)
    assert CronExpression.parse("*/60 * * * *").minutes == {0}  # (a step as long as the field: its start)
    # a day no month of the expression has never comes: refused when parsed (as when stored), not at a tick
    for never in ("0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"):
        with pytest.raises(ConfigError, match="never fires"):
            CronExpression.parse(never)
    leap = CronExpression.parse("0 0 29 2 *").next_after(at("2026-03-01T00:00:00"), utc)
    assert leap == at("2028-02-29T00:00:00")
    assert CronExpression.parse("0 0 31 2 MON").next_after(at("2026-03-01T00:00:00"), utc).weekday() == 0
    with pytest.raises(ConfigError):
        CronSchedule(name="x", job="j", expression="* * * * *", timezone="Mars/Olympus")


@contextlib.asynccontextmanager
async def nodes(apps: list[Any]) -> Any:
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(running_node(app))
        yield


async def test_each_tick_fires_exactly_once_across_three_nodes(make_app: Any) -> None:
    # Given three nodes running one every-second schedule
    seen: list[str] = []

    def make(node: str) -> Any:
        app = make_app(node_id=node)

        @app.job(cron=CronSchedule(name="pulse", job="", expression="* * * * * *"))
        async def pulse(ctx: RunContext, payload: Any) -> None:
            seen.append(ctx.run_id)

        return app

    apps = [make(f"n{i}") for i in range(3)]
    async with nodes(apps):
        # When at least 11 ticks have been run
        await eventually(lambda: len(seen) >= 11, 25, interval=0.1)
        schedules = await apps[0].list_schedules()
    # Then every tick ran exactly once, and consecutive ticks are one second apart (none lost)
    ticks = sorted(int(run_id.rsplit(".", 1)[1]) for run_id in seen)
    assert max(Counter(seen).values()) == 1 and len(set(ticks)) == len(ticks)
    assert all(b - a == 1000 for a, b in itertools.pairwise(ticks)), ticks
    [pulse] = schedules
    assert pulse["name"] == "pulse" and pulse["fired_count"] >= 11 and pulse["next_fire_at"] is not None
    run = await apps[0].get_run(seen[0])
    assert run is not None and run.raw["triggered_by"] == "cron" and run.raw["schedule"] == "pulse"


async def test_skip_overlap_skips_while_a_run_is_going(make_app: Any) -> None:
    app = make_app()
    spans: list[tuple[float, float]] = []

    @app.job(cron=CronSchedule(name="long", job="", expression="* * * * * *", overlap="skip"))
    async def long(ctx: RunContext, payload: Any) -> None:
        start = time.monotonic()
        await asyncio.sleep(2.2)
        spans.append((start, time.monotonic()))

    async with running_node(app):
        await eventually(lambda: len(spans) >= 2, 15, interval=0.1)
        [state] = await app.list_schedules()
    # Then runs never overlapped and the ticks that came during a run were skipped
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans)), spans
    assert state["skipped_count"] >= 2


async def test_pause_and_resume_a_schedule(make_app: Any) -> None:
    app = make_app()
    seen: list[str] = []

    @app.job(cron="* * * * * *")
    async def beat(ctx: RunContext, payload: Any) -> None:
        seen.append(ctx.run_id)

    async with running_node(app):
        await eventually(lambda: len(seen) >= 1, 10, interval=0.05)
        await app.pause_schedule("beat")
        [state] = await app.list_schedules()
        assert state["paused"] is True
        count = len(seen)
        # a control schedule-free run proves the node keeps working while the schedule is paused
        t0 = time.monotonic()
        await eventually(lambda: time.monotonic() - t0 > 2.2, 5, interval=0.1)
        assert len(seen) <= count + 1  # at most a tick already in flight when paused
        paused_count = len(seen)
        await app.resume_schedule("beat")
        await eventually(lambda: len(seen) > paused_count, 10, interval=0.05)


async def test_catch_up_run_once_after_downtime(make_app: Any, redis: Any) -> None:
    # Given a schedule whose next tick is long past (the nodes were down)
    app = make_app()
    seen: list[str] = []

    @app.job(cron=CronSchedule(name="nightly", job="", expression="0 3 * * *", catch_up="run_once"))
    async def nightly(ctx: RunContext, payload: Any) -> None:
        seen.append(ctx.run_id)

    await app.register_jobs()
    three_days_ago = int(time.time() * 1000) - 3 * 86_400_000
    await redis.hset(app.keys.schedule_state("nightly"), mapping={"next_fire_at": three_days_ago})
    async with running_node(app):
        # Then exactly one run fires for the missed ticks
        await eventually(lambda: len(seen) == 1, 10, interval=0.05)
        [state] = await app.list_schedules()
    run = await app.get_run(seen[0])
    assert run is not None and int(run.raw["caught_up_ticks"]) >= 3
    assert state["next_fire_at"] > datetime.now(UTC).isoformat()[:19]


async def test_skip_overlap_counts_a_paused_run_as_still_going(make_app: Any) -> None:
    # Given a schedule that skips overlapping ticks, whose first run is paused before it starts
    # (the live statuses once left `paused` out, so the paused run did not hold the next ticks back)
    app = make_app(handoff=False)
    started: list[str] = []

    @app.job(cron=CronSchedule(name="held", job="", expression="* * * * * *", overlap="skip"))
    async def held(ctx: RunContext, payload: Any) -> None:
        started.append(ctx.run_id)

    await app.pause_queue("default")  # nothing is claimed: every fired run stays queued until paused below
    async with running_node(app, intake=False):

        async def first_run() -> str | None:
            [state] = await app.list_schedules()
            return state.get("last_run_id")
        run_id = await eventually(first_run, 15, interval=0.05)
        await app.pause(run_id)
        assert (await app.get_run(run_id)).status == "paused"  # type: ignore[union-attr]
        [before] = await app.list_schedules()
        # When several more ticks come while it is paused
        await eventually(lambda: _skipped_since(app, before["skipped_count"], 2), 15, interval=0.1)
        [after] = await app.list_schedules()
    # Then they were skipped: the paused run still counts as going, and no second run was fired
    assert after["last_run_id"] == run_id
    assert started == []


async def _skipped_since(app: Any, before: int, more: int) -> bool:
    [state] = await app.list_schedules()
    return int(state["skipped_count"]) >= before + more


async def test_a_schedule_just_set_shows_its_next_tick(make_app: Any) -> None:
    # Given a schedule set while no node has taken it up yet (as `baton schedules set` prints it at once)
    app = make_app()

    @app.job()
    async def report(ctx: RunContext, payload: Any) -> None:
        return None

    await app.register_jobs()
    await upsert_schedule(app, CronSchedule(name="nightly", job="report", expression="0 3 * * *",
                                            timezone="Europe/Paris"))
    # When it is listed, then its next fire time is its next tick from now (before: none until a
    # scheduler took it up), 03:00 in Paris
    [state] = await app.list_schedules()
    expected = CronExpression.parse("0 3 * * *").next_after(datetime.now(UTC), ZoneInfo("Europe/Paris"))
    assert state["next_fire_at"] == iso(expected.timestamp() * 1000), (state, expected)
    # and a paused one shows none (it fires no tick)
    await app.pause_schedule("nightly")
    [state] = await app.list_schedules()
    assert state["paused"] is True and state["next_fire_at"] is None


@contextlib.asynccontextmanager
async def ticking_node(make_app: Any, **settings: Any) -> AsyncIterator[tuple[Any, Any, list[str]]]:
    """A running node of an app whose job ``tick`` a schedule fires every second (so the scheduler checks
    at least that often); yields the app, the node and the ids of the runs fired, once one has been."""
    app = make_app(**settings)
    fired: list[str] = []

    @app.job(cron=CronSchedule(name="every_second", job="", expression="* * * * * *"))
    async def tick(ctx: RunContext, payload: Any) -> None:
        fired.append(ctx.run_id)

    async with running_node(app) as node:
        await eventually(lambda: len(fired) >= 1, 15, interval=0.05)
        yield app, node, fired


async def test_a_schedule_that_cannot_fire_is_skipped_listed_and_deletable_and_stops_nothing(make_app: Any,
                                                                                           caplog: Any) -> None:
    # Given a node firing a schedule every second
    async with ticking_node(make_app, max_restarts=2) as (app, node, fired):
        # When schedules that cannot fire are in the registry (stored by hand or by an older version):
        # one whose expression never comes, one unreadable, one of a job no longer defined
        never = {"name": "never", "job": "tick", "expression": "0 0 31 2 *", "timezone": "UTC", "input": None,
                 "overlap": "allow", "catch_up": "skip", "options": {}}
        gone = {**never, "name": "gone", "job": "retired", "expression": "* * * * * *"}
        await app.redis.hset(app.keys.schedules, mapping={
            "never": orjson.dumps(never), "garbled": b"{not json", "gone": orjson.dumps(gone)})
        # Then the node goes on (it exited within seconds: its scheduler crashed on them, restarted, gave up),
        # the good schedule fires on, and the scheduler was never restarted
        seen = len(fired)
        await eventually(lambda: len(fired) >= seen + 4, 20, interval=0.05)
        assert node.exit_code == 0 and not node.health.fatal and "scheduler" not in node.restarts
        # and the lease holder counts them for the alert (BatonScheduleCannotFire)
        failing = lambda: node.metrics.registry.get_sample_value("baton_schedules_failing")  # noqa: E731
        await eventually(lambda: failing() == 3, 10, interval=0.05)
        # each said once in the log, not at every tick (the gone job's was a line a second)
        for name in ("never", "garbled", "gone"):
            said = [r for r in caplog.records if r.name == "baton.scheduler" and f"schedule {name}" in r.getMessage()]
            assert len(said) == 1, [r.getMessage() for r in said]
        # And the listing shows every schedule, the ones that cannot fire with why
        listed = {s["name"]: s for s in await app.list_schedules()}
        assert set(listed) == {"every_second", "never", "garbled", "gone"}
        assert "never fires" in listed["never"]["error"] and listed["never"]["next_fire_at"] is None
        assert "cannot fire" in listed["garbled"]["error"] and "error" not in listed["every_second"]
        # And they can be deleted
        for name in ("never", "garbled", "gone"):
            await app.delete_schedule(name)
        assert [s["name"] for s in await app.list_schedules()] == ["every_second"]
        await eventually(lambda: failing() == 0, 10, interval=0.05)


async def test_a_schedule_whose_last_tick_was_refused_counts_until_a_tick_fires(make_app: Any) -> None:
    # Given a node with a schedule firing every second (the scheduler checks every second or sooner)
    async with ticking_node(make_app) as (app, node, fired):
        # When an hourly schedule of a job no longer defined comes due (its tick a second ago)
        hourly = {"name": "hourly", "job": "retired", "expression": "0 * * * *", "timezone": "UTC", "input": None,
                  "overlap": "allow", "catch_up": "skip", "options": {}}
        await app.redis.hset(app.keys.schedules, "hourly", orjson.dumps(hourly))
        await app.redis.hset(app.keys.schedule_state("hourly"), "next_fire_at", int(time.time() * 1000) - 1000)
        failing = lambda: node.metrics.registry.get_sample_value("baton_schedules_failing")  # noqa: E731
        await eventually(lambda: failing() == 1, 10, interval=0.05)
        # Then it counts for the alert through the checks after its tick too, not for an instant of the hour
        # (the alert waits 5 minutes: an hourly schedule's count of 1 never lasted that long)
        seen = len(fired)
        for _ in range(30):
            assert failing() == 1
            await asyncio.sleep(0.1)
        assert len(fired) >= seen + 2  # (checks went on meanwhile)
        # And the listing says why its last tick started no run, with its next time
        listed = {s["name"]: s for s in await app.list_schedules()}
        assert "retired" in listed["hourly"]["refused"] and listed["hourly"]["next_fire_at"] is not None
        assert listed["every_second"]["refused"] is None and "error" not in listed["hourly"]
        # When the schedule is set again with a job that exists, and its tick comes
        await upsert_schedule(app, CronSchedule(name="hourly", job="tick", expression="0 * * * *"))
        await app.redis.hset(app.keys.schedule_state("hourly"), "next_fire_at", int(time.time() * 1000) - 1000)
        # Then it fires and counts no more
        await eventually(lambda: failing() == 0, 10, interval=0.05)
        listed = {s["name"]: s for s in await app.list_schedules()}
        assert listed["hourly"]["refused"] is None and listed["hourly"]["fired_count"] == 1, listed["hourly"]
