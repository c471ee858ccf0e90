"""Cron schedules at runtime: create or change one, fire a tick (the scheduler's and an operator's),
trigger now, backfill a time range.

Every tick's run has the id ``cron.<schedule>.<tick ms>`` and run creation is
idempotent on the id, so a tick fires once whoever fires it: the scheduler
holding the lease, an operator triggering or backfilling, or both at once.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from .app import Baton
from .connection import server_ms
from .cron import REFUSED, CronSchedule
from .errors import BatonError, SubmissionError, UnknownJob
from .ranges import LAST_RENDERABLE_MS
from .records import LIVE_STATUSES, iso

__all__ = ["MAX_BACKFILL_TICKS", "backfill", "fire", "get_schedule", "trigger_now", "upsert_schedule"]

log = logging.getLogger("baton.scheduler")

#: most ticks one backfill call fires
MAX_BACKFILL_TICKS = 1000


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", name)[:60]


def tick_run_id(schedule: CronSchedule, tick_ms: int) -> str:
    """The id of the run a tick of ``schedule`` starts."""
    return f"cron.{_safe(schedule.name)}.{tick_ms}"


async def get_schedule(app: Baton, name: str) -> dict[str, Any] | None:
    """One schedule with its state (as ``app.list_schedules`` shows it), or None."""
    for schedule in await app.list_schedules():
        if schedule["name"] == name:
            return schedule
    return None


async def _load(app: Baton, name: str) -> CronSchedule | None:
    blob = await app.redis.hget(app.keys.schedules, name)
    return None if blob is None else CronSchedule.from_json(blob)


async def upsert_schedule(app: Baton, schedule: CronSchedule) -> bool:
    """Create or replace a schedule; returns True when it is new. Its job must be registered and its
    options must make a valid trigger (checked now, not at its first tick). A changed expression or
    timezone takes effect from the next tick computed after the change. A worker that defines a
    schedule of the same name in code registers its own definition again when it starts."""
    if app.lookup(schedule.job) is None:
        await app.refresh_registry()
        if app.lookup(schedule.job) is None:
            raise UnknownJob(schedule.job)
    await app._spec({"job": schedule.job, "input": schedule.input, **schedule.options,
                     "derived_id": tick_run_id(schedule, 0)}, source="cron", extra={"triggered_by": "cron"})
    created = bool(await app.redis.hset(app.keys.schedules, schedule.name, schedule.to_json()))
    await app.redis.hdel(app.keys.schedule_state(schedule.name), "next_fire_at", REFUSED)
    return created


async def fire(app: Baton, schedule: CronSchedule, tick_ms: int, caught_up: int = 0,
               overlap: bool = True) -> tuple[str | None, bool]:
    """Start the run of one tick, applying the overlap policy unless ``overlap`` is False; returns its id
    (None when the policy skipped the tick or the trigger is invalid) and whether this call created it."""
    state_key = app.keys.schedule_state(schedule.name)
    last = await app.redis.hget(state_key, "last_run_id")
    if overlap and last and schedule.overlap != "allow":
        run = await app.get_run(last.decode())
        if run is not None and run.status in LIVE_STATUSES:
            if schedule.overlap == "skip":
                await app.redis.hincrby(state_key, "skipped_count", 1)
                log.info("schedule %s: skipped tick %d, run %s still %s", schedule.name, tick_ms, run.id, run.status)
                return None, False
            try:
                await app.cancel(run.id)
            except BatonError as exc:
                log.warning("schedule %s: could not cancel run %s: %s", schedule.name, run.id, exc)
    tick_iso = datetime.fromtimestamp(tick_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    item: dict[str, Any] = {"job": schedule.job, "input": schedule.input, **schedule.options,
                            "derived_id": tick_run_id(schedule, tick_ms)}
    extra: dict[str, Any] = {"triggered_by": "cron", "schedule": schedule.name, "schedule_tick": tick_iso}
    if caught_up:
        extra["caught_up_ticks"] = caught_up
    # (a trigger its options or job no longer make raises its error: the scheduler counts and logs the
    # schedule once as unable to fire, the API answers it, rather than a line at every tick)
    spec = await app._spec(item, source="cron", extra=extra)
    [(run_id, code)] = await app.create_detailed([spec])
    # the tick and its count in one transaction: a reader never sees one without the other
    pipe = app.redis.pipeline(transaction=True)
    pipe.hset(state_key, mapping={"last_run_id": run_id, "last_fired_at": tick_ms, REFUSED: ""})
    if code == 1:
        pipe.hincrby(state_key, "fired_count", 1)
    await pipe.execute()
    return run_id, code == 1


async def trigger_now(app: Baton, name: str) -> dict[str, Any] | None:
    """Fire a schedule's tick for this moment (Redis clock), with its overlap policy; None when there is no
    such schedule. A paused schedule fires too: the operator asked for it."""
    schedule = await _load(app, name)
    if schedule is None:
        return None
    tick = await server_ms(app.redis)
    run_id, _created = await fire(app, schedule, tick)
    return {"schedule": name, "tick_at": iso(tick), "run_id": run_id, "skipped": run_id is None}


async def backfill(app: Baton, name: str, start_ms: int, end_ms: int) -> dict[str, Any] | None:
    """Fire every tick of the schedule in ``[start_ms, end_ms]`` (at most MAX_BACKFILL_TICKS; earlier ticks
    first), overlapping freely: a tick that already has its run (fired before, or backfilled twice) is
    counted as existing, not started again. None when there is no such schedule."""
    schedule = await _load(app, name)
    if schedule is None:
        return None
    if end_ms < start_ms:
        raise SubmissionError("bad_range", "end must not be before start")
    if start_ms < 0 or end_ms > LAST_RENDERABLE_MS:
        # (a tick's time is a run id and a date shown again: before 1970 or after 9999 it is neither)
        raise SubmissionError("bad_range", f"start and end must be within {iso(0)} .. {iso(LAST_RENDERABLE_MS)}")
    cron, tz = schedule.cron, schedule.tz
    ticks: list[int] = []
    t = datetime.fromtimestamp((start_ms - 1) / 1000, tz=UTC)
    while len(ticks) <= MAX_BACKFILL_TICKS:
        try:
            t = cron.next_after(t, tz)
        except OverflowError:  # no tick before the end of year 9999
            break
        at = int(t.timestamp() * 1000)
        if at > end_ms:
            break
        ticks.append(at)
    truncated = len(ticks) > MAX_BACKFILL_TICKS
    ticks = ticks[:MAX_BACKFILL_TICKS]
    run_ids: list[str] = []
    created = 0
    for tick in ticks:
        run_id, new = await fire(app, schedule, tick, overlap=False)
        if run_id is not None:
            run_ids.append(run_id)
            created += new
    return {"schedule": name, "ticks": len(ticks), "created": created, "existing": len(run_ids) - created,
            "run_ids": run_ids, "truncated": truncated, "next_start": iso(ticks[-1] + 1) if truncated else None}

