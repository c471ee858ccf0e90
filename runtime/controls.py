"""Operating a deployment at runtime: the part of :class:`runtime.app.Baton` that changes how every
node behaves (job and shared limits, max_queued caps, schedules, paused queues) and repairs the
partitions' indices. A mixin: it uses the app's client, keys and scripts and holds no state of its own.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import orjson

from .admission import set_max_queued as store_max_queued
from .app_part import AppPart
from .cron import REFUSED, CronSchedule
from .errors import BatonError, SubmissionError
from .jobs import limit_spec
from .records import iso, stored_int, text
from .redis_faults import despite_outages
from .shared_limits import SharedLimit, clear_shared_limit, set_shared_limit
from .submission import limit_override_refusal

if TYPE_CHECKING:
    from .app import Baton

__all__ = ["Controls"]


class Controls(AppPart):
    """Runtime controls of every node: limits, caps, schedules, paused queues, index repair."""

    def _app(self) -> Baton:
        """This mixin as the app it is part of (for the helpers that take the app)."""
        return cast("Baton", self)

    async def set_limits(
        self, job: str, *, max_concurrency: int = 0, max_concurrency_per_key: int = 0,
        rate_limit: tuple[int, float] | None = None, rate_limit_per_key: tuple[int, float] | None = None,
    ) -> None:
        """Change a job's limits at runtime on every node (overrides the code's values until cleared). Raises
        SubmissionError (``bad_limits``) for a limit the job's runs are not created to count exactly (see
        limit_override_refusal)."""
        if self._app().lookup(job) is None:
            await self._app().refresh_registry()
        options = self._app().lookup(job)
        wanted = (max_concurrency, max_concurrency_per_key, rate_limit is not None, rate_limit_per_key is not None)
        refusal = options and limit_override_refusal(job, options, self.keys.partition_count, wanted)
        if refusal:
            raise SubmissionError("bad_limits", refusal)
        spec = limit_spec(max_concurrency, max_concurrency_per_key, rate_limit, rate_limit_per_key) or "0,0,0,0,0,0"
        for p in self.keys.partitions:
            await self.scripts.limits_apply(p, job, "override", spec)
        await self.redis.publish(self.keys.wake_channel, "limits")

    async def set_max_queued(self, value: int | None, *, job: str | None = None, queue: str | None = None) -> None:
        """Cap (or, with None, uncap) the runs of one job or queue admitted and not yet started, at
        runtime on every node; a job's runtime cap overrides its ``max_queued`` until cleared."""
        await store_max_queued(self._app(), value, job=job, queue=queue)

    async def clear_limits(self, job: str) -> None:
        """Drop a runtime override: the limits registered by the code apply again."""
        for p in self.keys.partitions:
            await self.scripts.limits_apply(p, job, "override", "")
        await self.redis.publish(self.keys.wake_channel, "limits")

    async def set_shared_limit(
        self, name: str, *, pool_size: int = 0, rate_limit: tuple[int, float] | None = None,
    ) -> None:
        """Change a shared limit at runtime on every node (overrides the code's values until cleared)."""
        await set_shared_limit(self._app(), name, SharedLimit(pool_size, rate_limit))

    async def clear_shared_limit(self, name: str) -> None:
        """Drop a shared limit's runtime override: the values the code defined apply again."""
        await clear_shared_limit(self._app(), name)

    async def list_schedules(self) -> list[dict[str, Any]]:
        """Every registered schedule with its state, including the next fire time."""
        out = []
        for field, blob in (await self.redis.hgetall(self.keys.schedules)).items():
            name = text(field)
            raw = await self.redis.hgetall(self.keys.schedule_state(name))
            state = {text(k): text(v) for k, v in raw.items()}
            nxt = stored_int(state.get("next_fire_at"))
            paused = state.get("paused") == "1"
            try:
                schedule = CronSchedule.from_json(blob)
                shown: dict[str, Any] = orjson.loads(schedule.to_json())
                if nxt is None and not paused:
                    # just set or resumed, no scheduler has taken it up yet: its next tick from now, as the
                    # scheduler will take it (shown, not stored: storing it would make a first worker
                    # started later catch up the ticks in between)
                    nxt = int(schedule.cron.next_after(datetime.now(UTC), schedule.tz).timestamp() * 1000)
            except (BatonError, TypeError, ValueError) as exc:
                # one stored by an older version, or by hand, that cannot fire (the scheduler skips it):
                # listed with why, so it can be seen and deleted, and the others are listed as ever
                shown, nxt = {"name": name, "error": f"this schedule cannot fire: {exc}"}, None
                with contextlib.suppress(ValueError):
                    stored = orjson.loads(blob)
                    if isinstance(stored, dict):
                        shown = {**stored, **shown}
            out.append({
                **shown, "paused": paused,
                "next_fire_at": iso(nxt), "last_run_id": state.get("last_run_id"),
                "fired_count": stored_int(state.get("fired_count")) or 0,
                "skipped_count": stored_int(state.get("skipped_count")) or 0,
                "missed_count": stored_int(state.get("missed_count")) or 0,
                "refused": state.get(REFUSED) or None,
            })
        return sorted(out, key=lambda s: str(s["name"]))

    async def pause_schedule(self, name: str) -> None:
        """Stop firing a schedule (ticks while paused are not caught up)."""
        await self.redis.hset(self.keys.schedule_state(name), mapping={"paused": "1"})

    async def resume_schedule(self, name: str) -> None:
        """Fire a paused schedule again from its next tick."""
        await self.redis.hset(self.keys.schedule_state(name), mapping={"paused": "0"})
        await self.redis.hdel(self.keys.schedule_state(name), "next_fire_at")

    async def delete_schedule(self, name: str) -> None:
        """Remove a schedule (a worker still defining it registers it again at start)."""
        await self.redis.hdel(self.keys.schedules, name)
        await self.redis.delete(self.keys.schedule_state(name))

    async def reconcile(self) -> dict[str, int]:
        """Check every partition's exact indices against the run records and repair them.

        Returns the drift found (expected all zeros); the daemon runs this
        periodically and exports the total as ``baton_reconcile_drift``.
        """
        # (a partition whose master is down does not hold the others' repair back: despite_outages)
        totals = {"total": 0, "leased": 0, "concurrency": 0, "ready": 0}
        for drift in await despite_outages(self.keys.partitions, self.scripts.reconcile):
            for k, v in drift.items():
                totals[k] += v
        return totals

    async def pause_queue(self, queue: str) -> None:
        """Stop every node from leasing runs of a queue (runs keep arriving). With one Cluster
        master down the other partitions are paused before the outage is raised; a retry completes it."""
        await despite_outages(self.keys.partitions, lambda p: self.redis.sadd(p.paused_queues, queue))

    async def resume_queue(self, queue: str) -> None:
        """Let nodes lease runs of a paused queue again, at once (with a master down, as pause_queue)."""
        try:
            await despite_outages(self.keys.partitions, lambda p: self.redis.srem(p.paused_queues, queue))
        finally:
            await self.redis.publish(self.keys.wake_channel, "resume")

    async def paused_queues(self) -> set[str]:
        """Queues currently paused."""
        members = await self.redis.smembers(self.keys.partitions[0].paused_queues)
        return {m.decode() if isinstance(m, bytes) else m for m in members}
