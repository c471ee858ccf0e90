"""Leaser: keeps this node's leases and recovers everyone's.

All cross-node lease upkeep happens here, through Lua scripts judged by the
Redis server's clock: one renewal call per partition per interval for every
lease the node holds (told to the executor, which fences side effects by it),
reaping of any node's expired leases, promotion of due delayed runs, the
periodic reconciliation of the exact indices, and the periodic trimming of the
terminal-status indices by retention. Claims are the fetcher's.

Each duty runs in this actor's loop. A Redis error costs that duty one try: it
is logged, counted and tried again when next due; it never stops the duty.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from redis.exceptions import RedisError

from runtime.app import Baton
from runtime.codec import text
from runtime.errors import RedisUnavailable
from runtime.keys import Partition
from runtime.logs import run_log_context
from runtime.messages import CancelRun, DueSoon, Hold, LeasesRenewed, Released, Wake
from runtime.metrics import Metrics
from runtime.partition_outages import PartitionOutages
from runtime.redis_faults import is_outage
from runtime.settings import Settings
from runtime.statuses import RETENTION_MARGIN_MS

from .base import Actor, Mailbox
from .watchdog import STALL_S

__all__ = ["Leaser"]

LeaserMessage = Hold | Released | DueSoon
T = TypeVar("T")

#: How often a node trims every partition's terminal-status indices (each finish trims the one it
#: adds to; this covers quiet partitions): a tenth of the margin by which a finished run's record
#: outlives its retention, so the trim still finds the record's project and takes the run out of
#: that project's index too (runtime/statuses.py).
TRIM_INTERVAL_S = RETENTION_MARGIN_MS / 10 / 1000


async def in_each(items: Iterable[T], work: Callable[[T], Awaitable[object]], bound_s: float,
                  on_outage: Callable[[T, BaseException], None] = lambda item, exc: None) -> None:
    """``work`` for every partition's item, all at once, each cut off after ``bound_s``: on Redis
    Cluster a partition's master failing over (or not answering at all) must not hold up the
    renewals, reaping and promotion of the partitions other masters serve. ``on_outage`` hears of
    each item whose partition did not answer (the leaser sets it aside until its probe answers,
    so the next duties do not wait on it again). Once all have ended, the first Redis error is
    raised (any other error first: it is a bug, not an outage).

    A bound that ends late, by a stall's length (STALL_S) or more, measured this process's own
    event loop held (a handler blocking it, a pause), not the server's silence: the call gets
    another bound. Cut off there, a call whose reply had come during the stall set its partition
    aside as one that "did not answer", warning of an outage of a Redis that was fine."""

    async def bounded(item: T) -> None:
        loop = asyncio.get_running_loop()
        call = asyncio.ensure_future(work(item))
        try:
            while True:
                due = loop.time() + bound_s
                done, _ = await asyncio.wait((call,), timeout=bound_s)
                if done or loop.time() - due < STALL_S:
                    break
        except BaseException:
            call.cancel()  # (the duty itself was cancelled: the node stops)
            raise
        if not done:
            call.cancel()
            unanswered = RedisUnavailable(f"no answer within {bound_s:g}s")
            on_outage(item, unanswered)
            raise unanswered
        exc = call.exception()
        if exc is not None and is_outage(exc):
            on_outage(item, exc)
        call.result()  # (its error, if any, is the item's)

    ended = await asyncio.gather(*(bounded(item) for item in items), return_exceptions=True)
    failures = [e for e in ended if isinstance(e, BaseException)]
    for failure in failures:
        if not isinstance(failure, (RedisError, RedisUnavailable)):
            raise failure
    if failures:
        raise failures[0]


class Leaser(Actor[LeaserMessage]):
    """Renews the node's leases; reaps expired leases and promotes due runs in every partition."""

    name = "leaser"
    #: the leases this node holds outlive a crash of run(): they are real in Redis,
    #: and the executor is still running those runs
    survives = ("held", "lease_meta", "incarnation")

    @classmethod
    def inbox_size(cls, settings: Settings) -> int:
        """Holds and releases come in batches: a generous bound that is never reached in practice."""
        return 10_000

    def __init__(self, app: Baton, metrics: Metrics, inbox: Mailbox[LeaserMessage],
                 executor: Mailbox[LeasesRenewed | CancelRun], fetcher: Mailbox[Wake],
                 incarnation: str) -> None:
        super().__init__(inbox)
        self.app = app
        self.settings = app.settings
        self.metrics = metrics
        #: duties whose last tries failed on a Redis error, and how many times in a row
        self.failing: dict[str, int] = {}
        #: a grace after Redis itself was out is in effect, and was said (see _note_grace)
        self.in_grace = False
        self.executor = executor
        self.fetcher = fetcher
        #: run id -> (lease token, partition index) of leases to renew
        self.held: dict[str, tuple[str, int]] = {}
        #: this node process, as its renewals name it: a lease granted to this node id that a renewal
        #: of this incarnation did not list (a grant whose reply was lost) is given back uncharged,
        #: and one granted before it began (to an earlier process with this id) is not (leases_reap.lua).
        #: It begins in each partition before the node's first claim there (fetcher.ready_partition)
        self.incarnation = incarnation
        #: run id -> (job, attempt, monotonic time by which the lease surely has not expired)
        self.lease_meta: dict[str, tuple[str, int, float]] = {}
        now = time.monotonic()
        self.next_renew = now
        self.next_tick = now
        #: per partition index: when a run there is next due (delayed, a durable wait's deadline), as
        #: this node last heard; that partition's promote comes then, between the ticks (which reap,
        #: and promote every partition too)
        self.next_promote: dict[int, float] = {}
        self.partition_index = {p.prefix: p.index for p in app.keys.partitions}
        #: partitions whose master did not answer (or cannot acknowledge durable writes): left out of
        #: every duty until their probe answers, so that each tick, promote and renewal of the others
        #: does not wait out the client's retries on them first (a tick took ~2.5 s per cycle)
        self.outages = PartitionOutages(app, self.log, "renewals, reaping and promotion", self.spawn,
                                        self._partition_back, metrics.partitions_out.labels(actor=self.name).set)
        interval = self.settings.reconcile_interval_ms / 1000
        self.next_reconcile = now + interval * random.uniform(0.5, 1.0) if interval else float("inf")
        self.next_trim = now + TRIM_INTERVAL_S * random.uniform(0.5, 1.0)

    async def run(self) -> None:
        """Do each duty when it is due; take holds and releases in between, and before each duty."""
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= self.next_renew:
                await self._duty("renew", self._renew_now)
            if now >= self.next_tick:
                if time.monotonic() >= self.next_renew:
                    # the loop was held since this turn's renewal (a handler blocking it, a pause): the leases
                    # held here may have lapsed meanwhile, unreaped. Renewed first, they are this node's
                    # executor's to settle; reaped, each was charged a crash of this very node, alive
                    await self._duty("renew", self._renew_now)
                # jitter so that N nodes do not reap in lockstep (a run due sooner has next_promote)
                self.next_tick = now + self.settings.reap_interval_ms / 1000 * random.uniform(0.8, 1.2)
                await self._duty("tick", self.tick)
            if now >= self._earliest_promote:
                await self._duty("promote", self.promote_due)
            if now >= self.next_reconcile:
                interval = self.settings.reconcile_interval_ms / 1000
                self.next_reconcile = now + interval * random.uniform(0.8, 1.2)
                await self._duty("reconcile", self.reconcile)
            if now >= self.next_trim:
                self.next_trim = now + TRIM_INTERVAL_S * random.uniform(0.8, 1.2)
                await self._duty("trim", self.trim)
            timeout = min(self.next_renew, self.next_tick, self._earliest_promote, self.next_reconcile,
                          self.next_trim) - time.monotonic()
            msg = await self.receive(max(timeout, 0.0)) if timeout > 0 else None
            while msg is not None:
                self.handle(msg)
                msg = self.inbox.get_nowait() if not self.inbox.empty() else None

    async def _renew_now(self) -> None:
        """Renew now; the next renewal is due one interval later."""
        self.next_renew = time.monotonic() + self.settings.renew_interval_ms / 1000
        await self.renew()

    async def _duty(self, name: str, duty: Callable[[], Awaitable[None]]) -> None:
        """Run one duty; a Redis error is logged and the duty tried again when next due (said once
        per spell of failures: a Cluster master down for minutes fails a partition's part of every
        tick, and a line each time would bury the log).

        The messages waiting are taken first: a duty sees the leases held now. A hold that reached the
        inbox during an earlier duty of the same turn (the loop held meanwhile) was read only after the
        tick's reap, which took its lapsed lease for a crash of this node."""
        for msg in self.drain_inbox(self.inbox.qsize()):
            self.handle(msg)
        try:
            await duty()
        except (RedisError, RedisUnavailable) as exc:
            self.metrics.redis_errors.labels(actor=self.name).inc()
            failed = self.failing[name] = self.failing.get(name, 0) + 1
            self.log.log(logging.WARNING if failed == 1 else logging.DEBUG,
                         "%s failed on a Redis error (%s); trying again when it is next due", name, exc)
            return
        failed = self.failing.pop(name, 0)
        if failed > 1:
            self.log.info("%s works again, after failing %d times in a row", name, failed)

    def handle(self, msg: LeaserMessage) -> None:
        """Apply one inbox message."""
        if isinstance(msg, Hold):
            first = not self.held
            for c in msg.runs:
                self.held[c.run_id] = (c.token, msg.partition)
                self.lease_meta[c.run_id] = (c.job, c.attempt, msg.deadline)
            self.metrics.leases_acquired.inc(len(msg.runs))
            self.metrics.leases_held.set(len(self.held))
            if first:  # new leases have the latest deadline: the earliest changes only when none was held
                self.metrics.publish_earliest_lease(msg.deadline)
        elif isinstance(msg, DueSoon):
            # a run became due before any its last promote knew of (delayed, a durable wait's
            # deadline): it is promoted then, not at the next regular tick; a notice that names no
            # partition this node knows (an older node's) is taken for every partition
            index = self.partition_index.get(msg.partition or "")
            for i in [index] if index is not None else self.partition_index.values():
                self._due_in(i, msg.in_ms)
        elif isinstance(msg, Released):
            for run_id, token in msg.leases:
                # the run's next attempt may hold a newer lease here already: that one stays
                if self.held.get(run_id, ("", 0))[0] == token:
                    del self.held[run_id]
                    self.lease_meta.pop(run_id, None)
            self._publish_leases()

    def _held_tokens(self) -> set[tuple[str, str]]:
        """(run id, token) of every lease held now."""
        return {(run_id, token) for run_id, (token, _index) in self.held.items()}

    def _partition_back(self, index: int) -> None:
        """A partition set aside answers again: renew and promote there at once. Its runs
        waited, and the leases held there may have lapsed in the outage: their grace
        (runtime/lua/leases_reap.lua) began with the first reaper's call, whichever node made it,
        and ends one TTL later, not at this node's next regular renewal."""
        now = time.monotonic()
        self.next_promote[index] = now
        self.next_renew = now
        self.inbox.wake()

    def _live(self, partitions: Iterable[Partition]) -> list[Partition]:
        """The partitions not set aside."""
        return [p for p in partitions if not self.outages.is_out(p.index)]

    def _set_aside(self, p: Partition, exc: BaseException) -> None:
        self.outages.failed(p, exc)

    @property
    def _bound_s(self) -> float:
        """The longest one partition's part of a duty may take: a renewal interval, so that a
        partition whose Redis does not answer delays the next renewal of the others by no more."""
        return self.settings.renew_interval_ms / 1000

    def _publish_leases(self) -> None:
        """Export the leases held and the earliest deadline (read at scrape time by the metrics thread)."""
        self.metrics.leases_held.set(len(self.held))
        deadlines = [meta[2] for meta in self.lease_meta.values()]
        self.metrics.publish_earliest_lease(min(deadlines) if deadlines else None)

    async def renew(self) -> None:
        """Renew every held lease: one script call per partition, also where none is held (the call
        says the node holds nothing else there: a grant it never got is given back, uncharged)."""
        by_partition: dict[int, list[tuple[str, str]]] = {p.index: [] for p in self.app.keys.partitions}
        for run_id, (token, index) in self.held.items():
            by_partition[index].append((run_id, token))
        try:
            partitions = self.app.keys.partitions
            await in_each([(i, leases) for i, leases in by_partition.items() if not self.outages.is_out(i)],
                          lambda item: self._renew_partition(*item), self._bound_s,
                          lambda item, exc: self._set_aside(partitions[item[0]], exc))
        finally:
            self._publish_leases()

    async def _renew_partition(self, index: int, leases: list[tuple[str, str]]) -> None:
        now = time.monotonic()
        for run_id, _token in leases:
            meta = self.lease_meta.get(run_id)
            if meta is not None:
                self.metrics.lease_remaining_at_renewal.observe(max(meta[2] - now, 0.0))
        try:
            lost, cancel = await self.app.scripts.renew(self.app.keys.partitions[index], leases, self.incarnation)
        except RedisError:
            self.metrics.lease_renewal_failures.inc(len(leases))
            raise
        self.metrics.leases_renewed.inc(len(leases) - len(lost))
        deadline = now + self.settings.lease_ttl_ms / 1000  # taken before the call: conservative
        lost_ids = set(lost)
        # A run given back while the call was out may hold a newer lease already (the next attempt,
        # on this node): the reply is about the token sent, so it must not touch the newer one.
        held_now = self._held_tokens()
        current = {run_id for run_id, token in leases if (run_id, token) in held_now}
        renewed = tuple(run_id for run_id, _token in leases if run_id not in lost_ids and run_id in current)
        for run_id in renewed:
            meta = self.lease_meta.get(run_id)
            if meta is not None:
                self.lease_meta[run_id] = (meta[0], meta[1], deadline)
        if renewed:
            await self.executor.send(LeasesRenewed(renewed, deadline))
        for run_id, token in leases:
            if run_id not in lost_ids or run_id not in current:
                continue
            self.held.pop(run_id, None)
            job, attempt, _ = self.lease_meta.pop(run_id, ("", 0, 0.0))
            # the executor decides whether this is a loss: a run whose handler
            # already ended (its outcome on the way) was simply finished first
            await self.executor.send(CancelRun(run_id, "lease_lost", job, attempt, token))
        for run_id in cancel:
            await self.executor.send(CancelRun(run_id, "canceled"))

    @property
    def _earliest_promote(self) -> float:
        """When the next promote between ticks is due (inf: none)."""
        return min(self.next_promote.values(), default=float("inf"))

    def _due_in(self, index: int, wait_ms: int) -> None:
        """A run of partition ``index`` becomes due in ``wait_ms`` (-1: none known): promote there then
        at the latest."""
        if wait_ms >= 0:
            due = time.monotonic() + wait_ms / 1000
            self.next_promote[index] = min(self.next_promote.get(index, due), due)

    async def _promote(self, p: Partition) -> int:
        """Promote the due runs of one partition; how many. Its answer sets the partition's next promote."""
        moved, wait_ms = await self.app.scripts.promote(p)
        self._due_in(p.index, wait_ms)
        return int(moved)

    async def promote_due(self) -> None:
        """Promote due runs between ticks, in the partitions where a run is due now (no reaping: that
        keeps its interval)."""
        now = time.monotonic()
        due = [i for i, at in self.next_promote.items() if at <= now]
        for i in due:
            del self.next_promote[i]  # (each promote answers when its partition's next run is due)

        async def one(p: Partition) -> None:
            if await self._promote(p):
                self.fetcher.offer(Wake(p.prefix))

        await in_each(self._live(self.app.keys.partitions[i] for i in due), one, self._bound_s, self._set_aside)

    async def tick(self) -> None:
        """Promote due delayed runs and reap expired leases in every partition (none for a lease TTL
        after Redis itself was out: runtime/lua/leases_reap.lua)."""
        graces: list[tuple[int, int]] = []  # (gap ms or 0, grace ms left) of each partition in a grace
        self.next_promote.clear()  # (this tick promotes everywhere: each promote answers when the next is due)

        async def one(p: Partition) -> None:
            moved = await self._promote(p)
            reaped = await self.app.scripts.reap(p, incarnation=self.incarnation)
            if reaped.grace_ms:
                graces.append((reaped.gap_ms, reaped.grace_ms))
            if moved or reaped.runs:
                self.fetcher.offer(Wake(p.prefix))
            if reaped.runs:
                await self._record_reclaimed(p, reaped.runs)

        try:
            await in_each(self._live(self.app.keys.partitions), one, self._bound_s, self._set_aside)
        finally:
            self._note_grace(graces)
        if not graces:
            self.in_grace = False  # (every partition answered: none is in a grace)

    def _note_grace(self, graces: list[tuple[int, int]]) -> None:
        """Say once per outage that Redis itself was out. The reap call that found the gap may not be
        the one whose reply arrives: sent before a stall, it is cut off by its bound while Redis
        sleeps, then runs and begins the grace all the same; later calls find the grace in effect."""
        if not graces or self.in_grace:
            return
        self.in_grace = True
        self.metrics.redis_outages_found.inc()
        gap_ms = max(gap for gap, _ in graces)
        found = f"for {gap_ms / 1000:.1f}s, " if gap_ms else ""
        self.log.warning("no node reached the Redis of %d partition(s) %slonger than a lease: Redis itself was "
                         "out (on Redis Cluster, those partitions' master: the others went on), or no node ran "
                         "meanwhile (every one stopped); leases there that expired in the gap are left to their "
                         "holders for %.1fs before they are reaped",
                         len(graces), found, max(g for _, g in graces) / 1000)

    async def _record_reclaimed(self, p: Partition, reaped: list[tuple[str, str, str]]) -> None:
        """Count and log leases the reaper reclaimed: by queue, with each run's job and attempt.

        The reap script returns (id, former node, new status); the job, queue and
        attempt come from the run records in one pipeline (reclaims are rare).
        """
        pipe = self.app.redis.pipeline(transaction=False)
        for run_id, _node, _status in reaped:
            pipe.hmget(p.run(run_id), "job", "queue", "attempt")
        rows = await pipe.execute()
        for (run_id, node, status), (job_b, queue_b, attempt_b) in zip(reaped, rows, strict=True):
            job = text(job_b) if job_b is not None else "unknown"
            queue = text(queue_b) if queue_b is not None else "unknown"
            attempt = int(attempt_b or 0)
            self.metrics.leases_reclaimed.labels(queue=queue).inc()
            # a run its node never took from the hand-off list is released (queued at
            # once, uncharged); any other reclaimed attempt crashed (retry or final status)
            outcome = "released" if status == "queued" else "crashed"
            self.metrics.attempts.labels(job_name=job, outcome=outcome).inc()
            self.metrics.count_status(job, status)
            with run_log_context(run_id, job, attempt):
                self.log.warning("reclaimed expired lease of run %s from node %s -> %s", run_id, node, status)

    async def trim(self) -> None:
        """Trim every partition's terminal-status indices (each finish trims the index it adds to;
        this covers partitions where nothing finished lately)."""
        await in_each(self._live(self.app.keys.partitions), self.app.scripts.trim_indices, self._bound_s,
                      self._set_aside)

    async def reconcile(self) -> None:
        """Check the exact indices against the run records; export what was repaired."""
        drift = await self.app.reconcile()
        self.metrics.reconcile_runs.inc()
        for index in ("leased", "concurrency", "ready"):
            self.metrics.reconcile_drift.labels(index=index).set(drift[index])
        if drift["total"]:
            self.log.error("reconciliation repaired %d index entries out of step: %s", drift["total"], drift)


