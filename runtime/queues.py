"""Queues as an operator sees them: depth by state, oldest queued run, throughput, pause, purge.

Everything is read from what Baton keeps for its own work, never from a key scan:

- **queued** runs are the queue's ready sets (``ready`` for runs without a
  concurrency key, ``kidx`` for keyed ones), counted with ZCARD;
- **delayed, executing, waiting, paused** runs sit in partition-wide sets
  (``delayed``, ``leased``, ``waiting``, ``paused``); their queue is a field of
  each run, read in pipelined batches. A set larger than ``STATE_SCAN_CAP`` is
  sampled (its first members) and the queue's share scaled to the set's size:
  such counts are flagged ``counts_exact: false``;
- **oldest queued age**: the ready time of the run next in line and of the
  oldest priority-0 run of the queue (exact when a queue uses one priority),
  against the Redis clock;
- **throughput**: runs that finished per minute, which ``make_terminal``
  (lua/includes/common.lua) counts per queue in one hash per hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .app import Baton
from .codec import text
from .connection import server_ms
from .errors import BatonError, raise_for_status
from .keys import LEASED_RANGE, Partition
from .partition_outages import PartialRead, read_partitions
from .statuses import RunStatus

__all__ = [
    "LIVE_STATES",
    "READY_BAND",
    "READY_FIELDS",
    "THROUGHPUT_MINUTES",
    "PurgeResult",
    "QueueInfo",
    "list_queues",
    "purge_queue",
    "queue_names",
    "read_heads",
    "ready_since",
]

#: ready-set score = (1000 - priority) * 2^42 + sequence (see lua/includes/common.lua)
READY_BAND = 4398046511104
#: most members of one partition-wide state set whose queues are read exactly
STATE_SCAN_CAP = 20_000
#: length of the throughput series (one point per minute, the last one the minute in progress)
THROUGHPUT_MINUTES = 60
#: states counted per queue, and the partition-wide set holding each (queued: the queue's own sets)
LIVE_STATES = (RunStatus.QUEUED, RunStatus.DELAYED, RunStatus.EXECUTING, RunStatus.WAITING, RunStatus.PAUSED)
#: runs read per pipeline when looking up queues of a state set
_BATCH = 1000


@dataclass
class QueueInfo:
    """One queue right now: whether it is paused, its runs by state, its oldest queued run, its throughput."""

    name: str
    paused: bool
    counts: dict[str, int] = field(default_factory=lambda: {str(s): 0 for s in LIVE_STATES})
    #: False when a state set was too large to read whole and the counts were scaled from a sample
    counts_exact: bool = True
    #: how long the oldest queued run has been ready (Redis clock), 0 when none is queued
    oldest_queued_age_ms: int = 0
    #: runs finished per minute, oldest first; the last point is the minute in progress
    throughput: list[int] = field(default_factory=lambda: [0] * THROUGHPUT_MINUTES)
    #: the epoch minute of the last throughput point
    throughput_end_minute: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and the CLI."""
        return {
            "name": self.name, "paused": self.paused, "counts": dict(self.counts), "counts_exact": self.counts_exact,
            "oldest_queued_age_ms": self.oldest_queued_age_ms,
            "throughput": {"interval_s": 60, "points": list(self.throughput),
                           "end_minute_ms": self.throughput_end_minute * 60_000,
                           "last_hour_total": sum(self.throughput)},
        }



#: A queued run's fields that say since when it is ready: a record leaves ready_at out while the
#: run is ready since its creation (runs_create), so readers take created_at then.
READY_FIELDS = ("ready_at", "created_at")


def ready_since(values: list[Any]) -> int | None:
    """Epoch ms since which a queued run is ready, from its READY_FIELDS values (None: no record)."""
    at = values[0] if values[0] is not None else values[1]
    return int(at) if at is not None else None


async def queue_names(app: Baton, partial: PartialRead | None = None) -> list[str]:
    """Every queue Baton knows of: queues that have had runs, queues of registered jobs, queues listed in
    settings, paused queues. With ``partial``, partitions whose master does not answer are left out."""
    await app.refresh_registry()
    names: set[str] = set(app.settings.queue_list)
    names.update(job.options.queue for job in app.jobs)
    names.update(options.queue for options in app._remote_jobs.values())

    async def read(p: Partition) -> None:
        pipe = app.redis.pipeline(transaction=False)
        pipe.smembers(p.queues)
        pipe.smembers(p.paused_queues)
        for members in await pipe.execute():
            names.update(text(m) for m in members)

    await read_partitions(app.keys.partitions, read, partial)
    return sorted(names)


async def list_queues(app: Baton, only: str | None = None, partial: PartialRead | None = None) -> list[QueueInfo]:
    """Every queue (or only the one named) with its counts, oldest age and throughput, across partitions.
    With ``partial``, partitions whose master does not answer are left out (their runs are not counted)."""
    names = [only] if only is not None else await queue_names(app, partial)
    infos = {q: QueueInfo(q, False) for q in names}
    now = await server_ms(app.redis)
    paused: set[str] | None = None

    async def read(p: Partition) -> None:
        nonlocal paused
        if paused is None:  # every partition holds the paused set: the first that answers is read
            paused = {text(m) for m in await app.redis.smembers(p.paused_queues)}
            for q, info in infos.items():
                info.paused = q in paused
        await _queued(app, p, infos, now)
        await _other_states(app, p, infos)
        await _throughput(app, p, infos, now)

    await read_partitions(app.keys.partitions, read, partial)
    return [infos[q] for q in names]


def read_heads(pipe: Any, p: Partition, queue: str) -> None:
    """Add to a pipeline the six reads that count a queue and find the runs that may be its oldest: for its
    runs without a concurrency key, then its keyed ones, the count, the run next in line and the oldest
    priority-0 run (runs of a higher priority may be starving it)."""
    for key in (p.ready(queue), p.keyed_ready(queue)):
        pipe.zcard(key)
        pipe.zrange(key, 0, 0)
        pipe.zrangebyscore(key, 1000 * READY_BAND, f"({1001 * READY_BAND}", start=0, num=1)


async def _queued(app: Baton, p: Partition, infos: dict[str, QueueInfo], now: int) -> None:
    names = list(infos)
    pipe = app.redis.pipeline(transaction=False)
    for q in names:
        read_heads(pipe, p, q)
    res = await pipe.execute()
    heads: list[tuple[str, str]] = []
    for i, q in enumerate(names):
        depth, first, band0, kdepth, kfirst, kband0 = res[6 * i: 6 * i + 6]
        infos[q].counts[RunStatus.QUEUED] += int(depth) + int(kdepth)
        heads.extend((q, run_id) for run_id in sorted({text(x) for x in [*first, *band0, *kfirst, *kband0]}))
    if not heads:
        return
    pipe = app.redis.pipeline(transaction=False)
    for _q, run_id in heads:
        pipe.hmget(p.run(run_id), *READY_FIELDS)
    for (q, _run_id), values in zip(heads, await pipe.execute(), strict=True):
        if (at := ready_since(values)) is not None:
            infos[q].oldest_queued_age_ms = max(infos[q].oldest_queued_age_ms, now - at)


async def _other_states(app: Baton, p: Partition, infos: dict[str, QueueInfo]) -> None:
    sets = {RunStatus.DELAYED: p.delayed, RunStatus.EXECUTING: p.leased, RunStatus.WAITING: p.waiting,
            RunStatus.PAUSED: p.paused}
    for state, key in sets.items():
        # (every score but +inf: the leased set's anchor is no run; the other sets' scores are finite)
        size = int(await app.redis.zcount(key, *LEASED_RANGE))
        if not size:
            continue
        ids = [text(m) for m in await app.redis.zrangebyscore(key, *LEASED_RANGE, start=0, num=STATE_SCAN_CAP)]
        found: dict[str, int] = {}
        for start in range(0, len(ids), _BATCH):
            pipe = app.redis.pipeline(transaction=False)
            for run_id in ids[start:start + _BATCH]:
                pipe.hget(p.run(run_id), "queue")
            for queue in await pipe.execute():
                if queue is not None:
                    found[text(queue)] = found.get(text(queue), 0) + 1
        scale = size / len(ids) if ids else 1.0
        for q, n in found.items():
            if q in infos:
                infos[q].counts[state] += round(n * scale)
                if size > len(ids):
                    infos[q].counts_exact = False


async def _throughput(app: Baton, p: Partition, infos: dict[str, QueueInfo], now: int) -> None:
    end = now // 60_000
    first = end - THROUGHPUT_MINUTES + 1
    hours = sorted({first // 60, end // 60})
    names = list(infos)
    pipe = app.redis.pipeline(transaction=False)
    for q in names:
        for hour in hours:
            pipe.hgetall(p.throughput(q, hour))
    res = await pipe.execute()
    for i, q in enumerate(names):
        info = infos[q]
        info.throughput_end_minute = end
        for counts in res[len(hours) * i: len(hours) * (i + 1)]:
            for minute, n in counts.items():
                at = int(minute) - first
                if 0 <= at < THROUGHPUT_MINUTES:
                    info.throughput[at] += int(n)


@dataclass(frozen=True)
class PurgeResult:
    """What one purge call did: runs canceled, runs that finished or left the queue meanwhile, runs left."""

    queue: str
    purged: int
    skipped: int
    remaining: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API and the CLI."""
        return {"queue": self.queue, "purged": self.purged, "skipped": self.skipped, "remaining": self.remaining,
                "has_more": self.remaining > 0}


async def purge_queue(app: Baton, queue: str, limit: int) -> PurgeResult:
    """Cancel up to ``limit`` queued runs of ``queue`` (every project's), oldest in line first.

    Each run is canceled like ``app.cancel`` (its unfinished children too), so a run that left the queue
    meanwhile (leased, finished) is skipped, never damaged. Runs keep arriving: a paused queue is purged
    without a race with workers.
    """
    purged = skipped = 0
    for p in app.keys.partitions:
        for key in (p.ready(queue), p.keyed_ready(queue)):
            kept = 0  # runs at the head of the set that could not be canceled: read past them
            while purged + skipped < limit:
                want = min(_BATCH, limit - purged - skipped)
                ids = [text(m) for m in await app.redis.zrange(key, kept, kept + want - 1)]
                if not ids:
                    break
                for run_id in ids:
                    try:
                        raise_for_status(await app.scripts.cancel(run_id), run_id)
                        purged += 1
                    except BatonError:  # left the queue meanwhile (leased, finished, gone)
                        skipped += 1
                        kept += 1
    pipe = app.redis.pipeline(transaction=False)
    for p in app.keys.partitions:
        pipe.zcard(p.ready(queue))
        pipe.zcard(p.keyed_ready(queue))
    remaining = sum(int(n) for n in await pipe.execute())
    return PurgeResult(queue, purged, skipped, remaining)
