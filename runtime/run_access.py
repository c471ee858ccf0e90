"""Reading and managing runs by id: the part of :class:`runtime.app.Baton` that works on existing runs.

Status changes (cancel, replay, pause, resume, reschedule, restart, delete ...), listings and
counts, and a run's recorded history (steps, timeline, checkpoints, children). A mixin: it uses
the app's client, keys, settings and scripts and holds no state of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .app_part import AppPart
from .errors import ConfigError, SubmissionError, raise_for_status
from .ids import run_id_in_partition
from .json_values import encode, refusal
from .keys import LEASED_RANGE
from .ranges import check, to_ms
from .records import Run, iso, read_runs, stored_int, stored_json, text
from .redis_faults import is_outage
from .statuses import TERMINAL
from .submission import _run_at_ms as run_at_to_ms
from .timeline import read_timeline

__all__ = ["RunAccess"]


class RunAccess(AppPart):
    """Runs by id: read, wait for, change, list and count them, and read their history."""

    # -- inspecting and managing runs ----------------------------------------

    async def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None if it does not exist (or has expired).

        The id of a stream entry that created nothing (a duplicate id or a reused
        idempotency or debounce key) gives the run it resolved to.
        """
        [run] = await read_runs(self.redis, self.keys, [run_id])
        if run is None:
            target = await self.redis.get(self.keys.partition_of_run(run_id).alias(run_id))
            if target is not None:
                [run] = await read_runs(self.redis, self.keys, [text(target)])
        return run

    async def wait_for(self, run_id: str, timeout: float = 30.0, statuses: Iterable[str] | None = None) -> Run:
        """Wait until the run is finished (or reaches one of ``statuses``). An outage of Redis (of the
        run's partition's master, on Redis Cluster) is waited out like the run, up to ``timeout``:
        past it, its error is raised."""
        wanted = set(statuses) if statuses else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        while True:
            try:
                run = await self.get_run(run_id)
            except Exception as exc:
                if not is_outage(exc) or loop.time() > deadline:
                    raise
            else:
                if run is not None and (run.status in wanted if wanted else run.finished):
                    return run
                if loop.time() > deadline:
                    raise TimeoutError(f"run {run_id} still {run.status if run else 'missing'} after {timeout}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def cancel(self, run_id: str) -> str:
        """Cancel a run: ``canceled`` at once, or ``cancel_requested`` if executing."""
        code = await self.scripts.cancel(run_id)
        raise_for_status(code, run_id)
        return "canceled" if code == 1 else "cancel_requested"

    async def replay(self, run_id: str, dead_letter_only: bool = False) -> str:
        """Start a new run from a finished one (e.g. dead-lettered); returns its id.

        With ``dead_letter_only`` the run must be dead-lettered and not replayed from the dead letter
        queue before (``RunStatusConflict`` / ``RunAlreadyReplayed`` otherwise): a DLQ entry is replayed once.
        """
        p = self.keys.partition_of_run(run_id)
        new_id = run_id_in_partition(self.keys, p.index)
        raise_for_status(await self.scripts.replay(run_id, new_id, dead_letter_only), run_id)
        return new_id

    async def pause(self, run_id: str) -> str:
        """Pause a run: ``paused`` at once (queued, delayed), ``pause_requested`` (executing: parked at its
        next step boundary; waiting: parked when the wait ends) or ``already_paused``."""
        code = await self.scripts.pause(run_id)
        raise_for_status(code, run_id)
        return {1: "paused", 2: "pause_requested"}.get(code, "already_paused")

    async def resume(self, run_id: str) -> str:
        """Resume a paused run (``resumed``), or withdraw a pending pause request (``pause_withdrawn``)."""
        code = await self.scripts.resume(run_id)
        raise_for_status(code, run_id)
        return "resumed" if code == 1 else "pause_withdrawn"

    async def reschedule(self, run_id: str, run_at: Any = None, delay: float | None = None) -> None:
        """Change when a queued, delayed or paused run may start: ``run_at`` (datetime, ISO text or epoch
        ms) or ``delay`` seconds from now (by the Redis clock)."""
        if (run_at is None) == (delay is None):
            raise SubmissionError("bad_schedule", "give exactly one of run_at and delay")
        run_at_ms = None if run_at is None else run_at_to_ms(run_at)
        delay_ms = None if delay is None else to_ms(check("delay", delay))
        code = await self.scripts.reschedule(run_id, run_at_ms, delay_ms)
        raise_for_status(code, run_id)

    async def restart(self, run_id: str) -> str:
        """Start a run over as a new linked run (``restart_of``); a live run is canceled first. Returns
        the new run's id."""
        p = self.keys.partition_of_run(run_id)
        new_id = run_id_in_partition(self.keys, p.index)
        raise_for_status(await self.scripts.restart(run_id, new_id), run_id)
        return new_id

    async def reset_idempotency_key(self, run_id: str) -> bool:
        """Forget the run's idempotency key (the next submission with it creates a new run); False when no
        key mapped to this run any more."""
        code = await self.scripts.reset_idempotency(run_id)
        raise_for_status(code, run_id)
        return code == 1

    async def delete_run(self, run_id: str) -> None:
        """Delete a finished run and everything recorded about it (e.g. a dead letter nobody will replay);
        ``RunNotFinished`` for a live run (cancel it first), ``RunNotFound`` when there is none."""
        raise_for_status(await self.scripts.delete(run_id), run_id)

    async def set_debug_mode(self, run_id: str, enabled: bool) -> None:
        """Turn the run's debug-mode flag on or off (handlers read it with ``ctx.debug_enabled()``)."""
        raise_for_status(await self.scripts.set_debug(run_id, enabled), run_id)

    async def list_status(self, status: str, limit: int = 100, offset: int = 0) -> list[Run]:
        """Runs in a terminal status, newest first, across partitions."""
        if status not in TERMINAL:
            raise ConfigError("list_status reads terminal-status indices only")
        found: list[tuple[float, str]] = []
        for p in self.keys.partitions:
            rows = await self.redis.zrevrange(p.status(status), 0, offset + limit - 1, withscores=True)
            found.extend((score, m.decode() if isinstance(m, bytes) else m) for m, score in rows)
        found.sort(reverse=True)
        runs = []
        for _, run_id in found[offset:offset + limit]:
            run = await self.get_run(run_id)
            if run is not None:
                runs.append(run)
        return runs

    async def list_dead_letter(self, limit: int = 100, offset: int = 0) -> list[Run]:
        """The dead letter queue, newest first."""
        return await self.list_status("dead_letter", limit, offset)

    async def count_by_status(self) -> dict[str, int]:
        """Exact run counts per status, read from the index sets (no key scan)."""
        counts: dict[str, int] = {}
        for p in self.keys.partitions:
            queues = [q.decode() if isinstance(q, bytes) else q for q in await self.redis.smembers(p.queues)]
            pipe = self.redis.pipeline(transaction=False)
            for q in queues:
                pipe.zcard(p.ready(q))
                pipe.zcard(p.keyed_ready(q))
            pipe.zcard(p.delayed)
            pipe.zcount(p.leased, *LEASED_RANGE)
            for s in TERMINAL:
                pipe.zcard(p.status(s))
            res = await pipe.execute()
            counts["queued"] = counts.get("queued", 0) + sum(res[: 2 * len(queues)])
            rest = res[2 * len(queues):]
            for name, n in zip(["delayed", "executing", *TERMINAL], rest, strict=True):
                counts[name] = counts.get(name, 0) + int(n)
        return counts

    # -- durable runs: events, steps, checkpoints, children -------------------

    async def send_event(self, key: str, data: Any = None) -> int:
        """Deliver an event to runs waiting in ``wait_for_event(key)``; returns how many woke.

        The event is also kept for ``event_ttl_s`` so a wait that starts later
        receives it at once.
        """
        return await self.scripts.send_event(key, self.event_json(key, data), self.settings.event_ttl_s * 1000)

    def event_json(self, key: str, data: Any) -> str:
        """An event's data as the JSON send_event stores, once its key and data are checked (SubmissionError)."""
        if not isinstance(key, str) or not key or len(key) > 256:
            raise SubmissionError("bad_event_key", "event key must be a non-empty string of at most 256 characters")
        try:
            data_json = encode(data)
        except TypeError as exc:
            raise SubmissionError("bad_event_data", refusal("event data", exc)) from None
        if len(data_json) > self.settings.max_input_bytes:
            raise SubmissionError("too_large", "event data is larger than max_input_bytes")
        return data_json

    async def get_steps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's step records (the seed's StepRecord plus index), in step order."""
        raw = await self.redis.hgetall(self.keys.partition_of_run(run_id).steps(run_id))
        # a record that is not a step object (corruption) is left out rather than failing the read
        steps = [step for step in (stored_json(v) for v in raw.values()) if isinstance(step, dict)]
        return sorted(steps, key=lambda s: stored_int(s.get("index")) or 0)

    async def get_events(self, run_id: str, after: str = "-", count: int = 1000) -> list[dict[str, Any]]:
        """The run's timeline: events after the id ``after`` (exclusive unless "-"); status changes
        are derived from the record where they were not stored (runtime/timeline.py)."""
        return await read_timeline(self.redis, self.keys.partition_of_run(run_id), run_id, after, count)

    async def get_checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """Every kept checkpoint of a run, oldest first (the seed's checkpoint shape)."""
        rows = await self.redis.xrange(self.keys.partition_of_run(run_id).checkpoints(run_id))
        return [_checkpoint(run_id, eid, fields) for eid, fields in rows]

    async def latest_checkpoint(self, run_id: str) -> dict[str, Any] | None:
        """The newest checkpoint of a run, or None."""
        rows = await self.redis.xrevrange(self.keys.partition_of_run(run_id).checkpoints(run_id), count=1)
        return _checkpoint(run_id, *rows[0]) if rows else None

    async def get_children(self, run_id: str) -> list[str]:
        """Ids of the runs this run triggered."""
        members = await self.redis.smembers(self.keys.partition_of_run(run_id).children(run_id))
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)


# Stored entries are decoded with records' tolerant readers: a corrupt field reads as absent or as its
# raw text, never as an exception that would stop the run from being read.


def _checkpoint(run_id: str, eid: Any, fields: dict[Any, Any]) -> dict[str, Any]:
    f = {text(k): v for k, v in fields.items()}
    return {"id": text(eid), "run_id": run_id, "sequence": stored_int(f.get("sequence")) or 0,
            "source": text(f.get("source", b"")), "state": stored_json(f.get("state")),
            "created_at": iso(stored_int(f.get("created_at")) or 0)}
