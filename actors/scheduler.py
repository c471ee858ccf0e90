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
from runtime.codec import digits, text
from runtime.connection import server_ms
from runtime.cron import REFUSED, CronSchedule
from runtime.errors import BatonError, RedisUnavailable, SubmissionError
from runtime.metrics import Metrics
from runtime.partition_outages import PartitionOutages
from runtime.redis_faults import described, is_outage
from runtime.schedules import fire, tick_run_id

from .base import Actor

__all__ = ["Scheduler"]

#: Longest sleep between checks (schedules change, the lease must be renewed).
MAX_SLEEP_S = 1.0
#: The scheduler lease: renewed at every check, so a live holder keeps it through a few late ones.
LEASE_TTL_MS = 5_000
#: A tick fired later than this after its time counts as missed (catch-up policy applies). Longer than
#: a killed holder keeps the lease plus the next holder's check and firing, so ticks due while the lease
#: passes from a dead node to a live one are fired late, not missed.
GRACE_MS = LEASE_TTL_MS + 5_000
#: A schedule whose run's partition did not answer is tried again this soon (within GRACE_MS).
RETRY_S = 0.5
#: the schedule state's field listing the ticks (ms, comma-separated) not fired yet on an outage
UNFIRED = "unfired"


class Scheduler(Actor[None]):
    """Fires due ticks of every registered schedule while holding the lease."""

    name = "scheduler"

    def __init__(self, app: Baton, metrics: Metrics) -> None:
        super().__init__()
        self.app = app
        self.holding = False
        #: schedules whose last tick could not be fired on an outage (logged once until they fire)
        self.unfired: set[str] = set()
        #: schedules that cannot fire (unreadable, or failing on their own), with why: logged once each
        self.broken: dict[str, str] = {}
        self.failing = metrics.schedules_failing
        #: partitions whose master did not answer a tick's run creation (probed in the background)
        self.outages = PartitionOutages(app, self.log, "cron ticks", self.spawn,
                                        count=metrics.partitions_out.labels(actor=self.name).set)

    async def run(self) -> None:
        """Hold (or wait for) the lease; fire what is due; sleep until the next tick."""
        while not self.stopping.is_set():
            self.holding = await self.app.scripts.scheduler_lease(self.app.settings.node_id, LEASE_TTL_MS)
            wait_s = MAX_SLEEP_S
            if self.holding:
                wait_s = min(wait_s, await self.fire_due())
            else:
                self.failing.set(0)  # (the holder counts them: one node's figure, not every node's)
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
        broken: dict[str, str] = {}
        for name, blob in (await redis.hgetall(self.app.keys.schedules)).items():
            try:
                schedule = CronSchedule.from_json(blob)
            except (BatonError, TypeError, ValueError) as exc:
                self._broken(broken, text(name), f"unreadable: {exc}")
                continue
            try:
                due_at, held, refused = await self._fire_schedule(schedule, now)
            except Exception as exc:  # noqa: BLE001 - contained to its schedule (below), or an outage
                if not is_outage(exc):
                    # this schedule's own fault (a tick that cannot be computed ...): the other schedules
                    # fire on, as a bad stream entry stops no other
                    self._broken(broken, schedule.name, described(exc))
                    continue
                due_at, held, refused = None, exc, None
            if refused:
                # its last tick was refused (a job no longer defined, a full queue ...): counted until a tick
                # fires, not only in the check that fired it (an hourly schedule's count was 0 for all but
                # an instant of the hour, and the alert never came)
                self._broken(broken, schedule.name, refused)
            if held is not None:
                if schedule.name not in self.unfired:  # (once per outage, not every RETRY_S)
                    self.unfired.add(schedule.name)
                    self.log.warning("schedule %s: tick not fired now (%s); tried again every %.1fs within its "
                                     "grace, the other ticks and schedules go on", schedule.name,
                                     described(held)[:300], RETRY_S)
                retry_at = now + int(RETRY_S * 1000)
                due_at = retry_at if due_at is None else min(due_at, retry_at)
            elif schedule.name in self.unfired:
                self.unfired.discard(schedule.name)
                self.log.info("schedule %s fires again", schedule.name)
            if due_at is not None:
                next_wake = min(next_wake, due_at)
        self.broken = broken
        self.failing.set(len(broken))
        return max(next_wake - await self._now_ms(), 0) / 1000

    def _broken(self, broken: dict[str, str], name: str, why: str) -> None:
        """Note a schedule that cannot fire; logged once per cause, not at every check."""
        broken[name] = why
        if self.broken.get(name) != why:
            self.log.error("schedule %s cannot fire and is skipped (the others fire on): %s", name, why[:500])

    async def _fire_schedule(self, schedule: CronSchedule,
                             now: int) -> tuple[int | None, BaseException | None, str | None]:
        """Fire one schedule's due ticks; returns when it is next due (None: paused), the outage that
        left a tick unfired (None: every due tick fired), and why its last tick was refused (None: it
        fired; kept in the schedule's state, REFUSED).

        A tick whose run cannot be created on an outage (its partition's master is down) does not
        hold up the later ticks: it is kept in the schedule's state (``unfired``, so another node
        taking the lease over retries it too) and tried again while within GRACE_MS, then counted
        missed."""
        redis = self.app.redis
        state_key = self.app.keys.schedule_state(schedule.name)
        state = {k.decode(): v.decode() for k, v in (await redis.hgetall(state_key)).items()}
        if state.get("paused") == "1":
            return None, None, None
        last_refused = state.get(REFUSED) or None
        cron, tz = schedule.cron, schedule.tz
        now_dt = datetime.fromtimestamp(now / 1000, tz=UTC)
        next_at = int(state["next_fire_at"]) if state.get("next_fire_at") else None
        if next_at is None:
            first = int(cron.next_after(now_dt, tz).timestamp() * 1000)
            await redis.hset(state_key, mapping={"next_fire_at": first})
            return first, None, last_refused
        unfired = {int(tick) for tick in state.get(UNFIRED, "").split(",") if digits(tick)}
        if next_at > now and not unfired:
            return next_at, None, last_refused
        due: set[int] = set(unfired)
        if next_at <= now:
            t = datetime.fromtimestamp(next_at / 1000, tz=UTC)
            while int(t.timestamp() * 1000) <= now and len(due) < 1000:
                due.add(int(t.timestamp() * 1000))
                t = cron.next_after(t, tz)
            next_at = int(cron.next_after(now_dt, tz).timestamp() * 1000)
        recent = sorted(d for d in due if now - d <= GRACE_MS)
        missed = sorted(d for d in due if now - d > GRACE_MS)
        # a tick its schedule cannot start (its job gone, its options refused, its queue full) is passed: the
        # state moves on, with the refusal (fire_due counts and logs the schedule until a tick fires)
        refused: SubmissionError | None = None
        started = False  # a tick started a run (fire() emptied REFUSED with it; a skipped tick did not)
        if missed and not recent and schedule.catch_up == "run_once":
            try:
                started = await self.fire(schedule, missed[-1], caught_up=len(missed)) is not None
            except SubmissionError as exc:
                refused = exc
        elif missed:
            await redis.hincrby(state_key, "missed_count", len(missed))
        left: list[int] = []
        outage: BaseException | None = None
        for tick in recent:
            # (the partition of a tick's run, but for a job that routes its runs by a key or a limit)
            partition = self.app.keys.partition_of_run(tick_run_id(schedule, tick))
            if self.outages.is_out(partition.index):
                left.append(tick)  # not waited on again: the client's retries take a second
                outage = outage or RedisUnavailable(f"partition {partition.index} does not answer")
                continue
            try:
                started = await self.fire(schedule, tick) is not None or started
            except SubmissionError as exc:
                refused = exc
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.outages.failed(partition, exc)
                left.append(tick)
                outage = outage or exc
        mapping = {"next_fire_at": next_at, UNFIRED: ",".join(map(str, left))}
        if refused is not None:
            last_refused = mapping[REFUSED] = described(refused)[:500]
        elif started:
            last_refused = None
        await redis.hset(state_key, mapping=mapping)
        return next_at, outage, last_refused

    async def fire(self, schedule: CronSchedule, tick_ms: int, caught_up: int = 0) -> str | None:
        """Start the run of one tick, applying the overlap policy; returns its id (None if skipped)."""
        run_id, _created = await fire(self.app, schedule, tick_ms, caught_up)
        return run_id
