"""Scheduler: fires cron schedules; exactly one node at a time does it.

Every node runs this actor, but only the holder of the scheduler lease (a Redis
key with a TTL, see scheduler_lease.lua) fires. Each tick's run gets a
deterministic id (``cron.<schedule>.<tick ms>``), and run creation is
idempotent on the id, so even two nodes that both believe they hold the lease
(a paused holder resuming after its lease passed on) fire a tick once.
Ticks are judged by the Redis server's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

from runtime.app import Baton
from runtime.connection import server_ms
from runtime.cron import CronSchedule
from runtime.errors import BatonError
from runtime.redis_faults import described, is_outage
from runtime.schedules import fire

from .base import Actor

__all__ = ["Scheduler"]

#: A tick fired later than this after its time counts as missed (catch-up policy applies).
GRACE_MS = 5_000
#: Longest sleep between checks (schedules change, the lease must be renewed).
MAX_SLEEP_S = 1.0
LEASE_TTL_MS = 10_000
#: A schedule whose run's partition did not answer is tried again this soon (within GRACE_MS).
RETRY_S = 0.5


class Scheduler(Actor[None]):
    """Fires due ticks of every registered schedule while holding the lease."""

    name = "scheduler"

    def __init__(self, app: Baton) -> None:
        super().__init__()
        self.app = app
        self.holding = False
        #: schedules whose last tick could not be fired on an outage (logged once until they fire)
        self.unfired: set[str] = set()

    async def run(self) -> None:
        """Hold (or wait for) the lease; fire what is due; sleep until the next tick."""
        while not self.stopping.is_set():
            self.holding = await self.app.scripts.scheduler_lease(self.app.settings.node_id, LEASE_TTL_MS)
            wait_s = MAX_SLEEP_S
            if self.holding:
                wait_s = min(wait_s, await self.fire_due())
            if not await self.sleep(max(wait_s, 0.01)):
                break
        if self.holding:
            # hand over at once rather than after the TTL
            lease = self.app.keys.scheduler_lease
            if await self.app.redis.get(lease) == self.app.settings.node_id.encode():
                await self.app.redis.delete(lease)

    async def _now_ms(self) -> int:
        return await server_ms(self.app.redis)

    async def fire_due(self) -> float:
        """Fire every due tick; returns seconds until the next one. A schedule whose tick's run
        cannot be created now because its partition does not answer (one Redis Cluster master down)
        is tried again in RETRY_S, within the tick's grace; the other schedules fire on."""
        redis = self.app.redis
        now = await self._now_ms()
        next_wake = now + int(MAX_SLEEP_S * 1000)
        for blob in (await redis.hgetall(self.app.keys.schedules)).values():
            try:
                schedule = CronSchedule.from_json(blob)
            except (BatonError, TypeError, ValueError) as exc:
                self.log.error("skipping an unreadable schedule: %s", exc)
                continue
            try:
                due_at = await self._fire_schedule(schedule, now)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if schedule.name not in self.unfired:  # (once per outage, not every RETRY_S)
                    self.unfired.add(schedule.name)
                    self.log.warning("schedule %s: tick not fired now (%s); tried again every %.1fs, the other "
                                     "schedules go on", schedule.name, described(exc)[:300], RETRY_S)
                due_at = now + int(RETRY_S * 1000)
            else:
                if schedule.name in self.unfired:
                    self.unfired.discard(schedule.name)
                    self.log.info("schedule %s fires again", schedule.name)
            if due_at is not None:
                next_wake = min(next_wake, due_at)
        return max(next_wake - await self._now_ms(), 0) / 1000

    async def _fire_schedule(self, schedule: CronSchedule, now: int) -> int | None:
        """Fire one schedule's due ticks; returns when it is next due (None: paused)."""
        redis = self.app.redis
        state_key = self.app.keys.schedule_state(schedule.name)
        state = {k.decode(): v.decode() for k, v in (await redis.hgetall(state_key)).items()}
        if state.get("paused") == "1":
            return None
        cron, tz = schedule.cron, schedule.tz
        now_dt = datetime.fromtimestamp(now / 1000, tz=UTC)
        next_at = int(state["next_fire_at"]) if state.get("next_fire_at") else None
        if next_at is None:
            first = int(cron.next_after(now_dt, tz).timestamp() * 1000)
            await redis.hset(state_key, mapping={"next_fire_at": first})
            return first
        if next_at <= now:
            due: list[int] = []
            t = datetime.fromtimestamp(next_at / 1000, tz=UTC)
            while int(t.timestamp() * 1000) <= now and len(due) < 1000:
                due.append(int(t.timestamp() * 1000))
                t = cron.next_after(t, tz)
            recent = [d for d in due if now - d <= GRACE_MS]
            missed = [d for d in due if now - d > GRACE_MS]
            if missed and not recent and schedule.catch_up == "run_once":
                await self.fire(schedule, missed[-1], caught_up=len(missed))
            elif missed:
                await redis.hincrby(state_key, "missed_count", len(missed))
            for tick in recent:
                # (a tick fired again after a later one failed is the same run: ids derive from ticks)
                await self.fire(schedule, tick)
            next_at = int(cron.next_after(now_dt, tz).timestamp() * 1000)
            await redis.hset(state_key, mapping={"next_fire_at": next_at})
        return next_at

    async def fire(self, schedule: CronSchedule, tick_ms: int, caught_up: int = 0) -> str | None:
        """Start the run of one tick, applying the overlap policy; returns its id (None if skipped)."""
        run_id, _created = await fire(self.app, schedule, tick_ms, caught_up)
        return run_id
