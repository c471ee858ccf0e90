"""Leaser: claims runnable runs for free executor slots, renews, reaps and promotes.

All cross-node coordination happens here, through Lua scripts judged by the
Redis server's clock: claims (priority and concurrency limits decided in Lua),
one renewal call per partition per interval for every lease the node holds,
reaping of any node's expired leases, and promotion of due delayed runs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from redis.exceptions import RedisError

from runtime.app import Baton
from runtime.messages import (
    CancelRun,
    Drain,
    HandedOff,
    LeaseGranted,
    LeasesRenewed,
    Released,
    Wake,
    WhenReleased,
)
from runtime.metrics import Metrics
from runtime.scripts import Claimed
from runtime.settings import Settings

from .base import Actor, Mailbox
from .observer import record_reclaimed

__all__ = ["Leaser", "clear_handoff", "served_queues"]

LeaserMessage = Wake | Released | Drain | HandedOff | WhenReleased

#: Wake reason meaning "a timer moved; recompute the wait" (no new work implied)
TIMER = "timer"


class Leaser(Actor[LeaserMessage]):
    """Hands leased runs to the executor, never more than its free slots."""

    name = "leaser"
    #: the leases this node holds and its hand-off bookkeeping outlive a crash of run():
    #: they are real in Redis, and the executor is still running those runs
    survives = ("held", "lease_meta", "occupied", "received", "draining", "expected", "drain_replies",
                "release_replies")

    @classmethod
    def inbox_size(cls, settings: Settings) -> int:
        """Wake-ups coalesce, releases come in batches: a generous bound that is never reached in practice."""
        return 10_000

    def __init__(self, app: Baton, metrics: Metrics, inbox: Mailbox[LeaserMessage],
                 executor: Mailbox[LeaseGranted | LeasesRenewed | CancelRun]) -> None:
        super().__init__(inbox)
        self.app = app
        self.settings = app.settings
        self.executor = executor
        self.metrics = metrics
        self.slots = app.settings.concurrency
        #: run id -> (lease token, partition index) of leases to renew
        self.held: dict[str, tuple[str, int]] = {}
        #: run id -> (job, attempt, monotonic time by which the lease surely expires) of held leases
        self.lease_meta: dict[str, tuple[str, int, float]] = {}
        #: runs granted to the executor and not yet reported back
        self.occupied: set[str] = set()
        self.draining = False
        self.maybe_work = True
        self.rotation = 0
        self.queues = served_queues(app)
        self.job_names = app.served_jobs()
        now = time.monotonic()
        self.next_renew = now + self.settings.renew_interval_ms / 1000
        self.next_tick = now
        self.next_idle_poll = now + self.settings.idle_poll_ms / 1000
        #: background duties (renew, tick) by name
        self.duties: dict[str, asyncio.Task[None]] = {}
        #: when a rate limit next lets a held-back run start (inf = none held back)
        self.next_rate_wake = float("inf")
        interval = self.settings.reconcile_interval_ms / 1000
        self.next_reconcile = now + interval * random.uniform(0.5, 1.0) if interval else float("inf")
        # hand-offs (see actors/receiver.py): while waiting, this node stays
        # registered for three idle polls; each idle claim renews it
        self.register_ms = 3 * self.settings.idle_poll_ms if self.settings.handoff else 0
        #: runs received by hand-off, per partition index (runs_claim counts the rest as in transit)
        self.received: dict[int, int] = {}
        #: Drain replies, resolved once this node is no longer registered and has every run handed to it
        self.drain_replies: list[asyncio.Future[None]] = []
        #: WhenReleased replies, resolved once no granted run is left unreported
        self.release_replies: list[asyncio.Future[None]] = []
        #: per partition, how many hand-offs a draining node still expects in total
        self.expected: dict[int, int] | None = None

    async def run(self) -> None:
        """Claim while there is work and room; otherwise wait for a wake-up or a timer.

        Renewal and the promote/reap tick run beside the loop as background
        tasks (one of each at a time, ended with run()), so a wake-up never
        waits behind them: that is what keeps the pickup latency tail short.
        """
        await self._loop()

    def _duty(self, name: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start a background duty unless it is still running.

        A duty that failed on a Redis error has logged it and is simply started
        again when it is next due (a transient error costs a retry, never the
        duty); any other failure crashes the leaser, which restarts clean.
        """
        task = self.duties.get(name)
        if task is not None:
            if not task.done():
                return
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]  # the supervisor restarts the actor
        self.duties[name] = self.spawn(self._retrying(name, make), name)

    async def _retrying(self, name: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await make()
        except RedisError as exc:
            self.metrics.redis_errors.labels(actor=self.name).inc()
            self.log.warning("%s failed on a Redis error (%s); trying again when it is next due", name, exc)

    async def _loop(self) -> None:
        while not self.stopping.is_set():
            if self.draining and self.expected is None:
                await self._close_handoff()
            if self.maybe_work and not self.draining:
                await self.claim_round()
            now = time.monotonic()
            # move each timer before starting its duty: the task runs only
            # once this loop awaits, and a timer left in the past would spin it
            if now >= self.next_renew:
                self.next_renew = now + self.settings.renew_interval_ms / 1000
                self._duty("renew", self.renew)
            if now >= self.next_tick:
                self.next_tick = float("inf")  # the tick sets the next one when it ends
                self._duty("tick", self.tick)
            if now >= self.next_idle_poll:
                # safety net for a missed wake-up message; not the normal path
                self.maybe_work = True
                self.next_idle_poll = now + self.settings.idle_poll_ms / 1000
            if now >= self.next_reconcile:
                await self.reconcile()
                now = time.monotonic()
            if now >= self.next_rate_wake:
                self.maybe_work = True
                self.next_rate_wake = float("inf")
            can_claim = self.maybe_work and not self.draining and len(self.occupied) < self.slots
            timeout = 0.0 if can_claim else max(
                min(self.next_renew, self.next_tick, self.next_idle_poll, self.next_rate_wake) - time.monotonic(),
                0.0,
            )
            if timeout > 0:
                msg = await self.receive(timeout)
            else:
                await asyncio.sleep(0)  # never hold the event loop, even with work waiting
                msg = self.inbox.get_nowait() if not self.inbox.empty() else None
            while msg is not None:
                self.handle(msg)
                msg = self.inbox.get_nowait() if not self.inbox.empty() else None

    def handle(self, msg: LeaserMessage) -> None:
        """Apply one inbox message to the leaser's state."""
        if isinstance(msg, Wake):
            if msg.partition_prefix != TIMER:  # a timer changed: only recompute the wait
                self.maybe_work = True
        elif isinstance(msg, Released):
            for run_id in msg.run_ids:
                self.occupied.discard(run_id)
                self.held.pop(run_id, None)
                self.lease_meta.pop(run_id, None)
            self.maybe_work = True
            self._publish_leases()
        elif isinstance(msg, HandedOff):
            self._take_handed_off(msg)
        elif isinstance(msg, Drain):
            self.draining = True
            self.drain_replies.append(msg.closed)
            self._check_handoff_closed()
        elif isinstance(msg, WhenReleased):
            self.release_replies.append(msg.reply)
        if self.release_replies and not self.occupied:
            _answer(self.release_replies)

    def _publish_leases(self) -> None:
        """Export the leases held and the earliest deadline (read at scrape time by the metrics thread)."""
        self.metrics.leases_held.set(len(self.held))
        deadlines = [meta[2] for meta in self.lease_meta.values()]
        self.metrics.publish_earliest_lease(min(deadlines) if deadlines else None)

    def _take_handed_off(self, msg: HandedOff) -> None:
        """Hold the leases runs_create granted this node while it waited (the
        receiver gave the runs to the executor already)."""
        self._hold(msg.runs, msg.partition, time.monotonic() + self.settings.lease_ttl_ms / 1000)
        self.received[msg.partition] = self.received.get(msg.partition, 0) + len(msg.runs)
        self.metrics.leases_handed_off.inc(len(msg.runs))
        self._check_handoff_closed()

    def _hold(self, runs: Sequence[Claimed], partition: int, expires: float) -> None:
        """Note leases this node now holds: they occupy slots and are renewed until released."""
        for c in runs:
            self.occupied.add(c.run_id)
            self.held[c.run_id] = (c.token, partition)
            self.lease_meta[c.run_id] = (c.job, c.attempt, expires)
        if runs:
            self.metrics.leases_acquired.inc(len(runs))
            self._publish_leases()

    async def _close_handoff(self) -> None:
        """Draining: stop being handed runs, and learn how many are still on their way."""
        if not self.register_ms:
            self.expected = {}
            self._check_handoff_closed()
            return
        node = self.settings.node_id
        pipe = self.app.redis.pipeline(transaction=False)
        for p in self.app.keys.partitions:
            pipe.delete(p.waiter(node))
            pipe.hget(p.handed, node)
        replies = await pipe.execute()
        self.expected = {
            p.index: int(replies[2 * i + 1] or 0) for i, p in enumerate(self.app.keys.partitions)
        }
        self._check_handoff_closed()

    def _check_handoff_closed(self) -> None:
        if self.drain_replies and self.expected is not None and all(
            self.received.get(index, 0) >= n for index, n in self.expected.items()
        ):
            _answer(self.drain_replies)

    async def claim_round(self) -> None:
        """Claim from every partition, fairly, until slots are full or nothing is left."""
        partitions = self.app.keys.partitions
        self.maybe_work = False
        start = self.rotation
        self.rotation += 1
        for i in range(len(partitions)):
            free = self.slots - len(self.occupied)
            if free <= 0:
                self.maybe_work = True  # more may be waiting; claim again when slots free up
                return
            p = partitions[(start + i) % len(partitions)]
            want = min(free, self.settings.claim_batch)
            expires = time.monotonic() + self.settings.lease_ttl_ms / 1000
            claimed, retry_in_ms = await self.app.scripts.claim(
                p, self.settings.node_id, want, self.queues, self.job_names, self.rotation,
                received=self.received.get(p.index, 0), register_ms=self.register_ms,
            )
            if retry_in_ms >= 0:
                # a rate limit holds runs back: come back exactly when it lets one go
                self.next_rate_wake = min(self.next_rate_wake, time.monotonic() + retry_in_ms / 1000)
            self._hold(claimed, p.index, expires)
            for c in claimed:
                await self.executor.send(LeaseGranted(c, expires))
            if len(claimed) == want:
                self.maybe_work = True

    def _wake_self(self, reason: str = "tick") -> None:
        self.inbox.offer(Wake(reason))

    async def reconcile(self) -> None:
        """Check the exact indices against the run records; export what was repaired."""
        interval = self.settings.reconcile_interval_ms / 1000
        self.next_reconcile = time.monotonic() + interval * random.uniform(0.8, 1.2)
        drift = await self.app.reconcile()
        self.metrics.reconcile_runs.inc()
        for index in ("leased", "concurrency", "ready"):
            self.metrics.reconcile_drift.labels(index=index).set(drift[index])
        if drift["total"]:
            self.log.error("reconciliation repaired %d index entries out of step: %s", drift["total"], drift)

    async def renew(self) -> None:
        """Renew every held lease: one script call per partition."""
        self.next_renew = time.monotonic() + self.settings.renew_interval_ms / 1000
        by_partition: dict[int, list[tuple[str, str]]] = {}
        for run_id, (token, index) in self.held.items():
            by_partition.setdefault(index, []).append((run_id, token))
        for index, leases in by_partition.items():
            now = time.monotonic()
            for run_id, _token in leases:
                meta = self.lease_meta.get(run_id)
                if meta is not None:
                    self.metrics.lease_remaining_at_renewal.observe(max(meta[2] - now, 0.0))
            try:
                lost, cancel = await self.app.scripts.renew(self.app.keys.partitions[index], leases)
            except RedisError:
                self.metrics.lease_renewal_failures.inc(len(leases))
                raise
            self.metrics.leases_renewed.inc(len(leases) - len(lost))
            expires = now + self.settings.lease_ttl_ms / 1000
            for run_id, _token in leases:
                meta = self.lease_meta.get(run_id)
                if meta is not None:
                    self.lease_meta[run_id] = (meta[0], meta[1], expires)
            if len(lost) < len(leases):
                lost_ids = set(lost)
                renewed = tuple(run_id for run_id, _token in leases if run_id not in lost_ids)
                await self.executor.send(LeasesRenewed(renewed, expires))
            for run_id in lost:
                self.held.pop(run_id, None)
                job, attempt, _ = self.lease_meta.pop(run_id, ("", 0, 0.0))
                # the executor decides whether this is a loss: a run whose handler
                # already ended (its outcome on the way) was simply finished first
                await self.executor.send(CancelRun(run_id, "lease_lost", job, attempt))
            for run_id in cancel:
                await self.executor.send(CancelRun(run_id, "canceled"))
        self._publish_leases()

    async def tick(self) -> None:
        """Promote due delayed runs and reap expired leases in every partition."""
        interval = self.settings.reap_interval_ms / 1000
        # no timer fires for the tick while it runs (the loop would spin)
        self.next_tick = float("inf")
        # jitter so that N nodes do not reap in lockstep
        next_tick = time.monotonic() + interval * random.uniform(0.8, 1.2)
        try:
            await self._promote_and_reap(next_tick)
        finally:
            # set even when a call failed: the next tick retries it, instead of
            # the tick silently stopping
            if self.next_tick == float("inf"):
                self.next_tick = next_tick
            self._wake_self(TIMER)

    async def _promote_and_reap(self, next_tick: float) -> None:
        for p in self.app.keys.partitions:
            moved, wait_ms = await self.app.scripts.promote(p)
            if moved:
                self.maybe_work = True
            if wait_ms >= 0:
                next_tick = min(next_tick, time.monotonic() + wait_ms / 1000)
            reaped = await self.app.scripts.reap(p)
            if moved or reaped:
                self._wake_self()
            if reaped:
                self.maybe_work = True
                await record_reclaimed(self.app, self.metrics, p, reaped, self.log)
        # the loop may be waiting with a timeout computed before this tick: the
        # wake-up in tick() lets it recompute (a delayed run may be due soon)
        self.next_tick = next_tick


def served_queues(app: Baton) -> list[str]:
    """The queues a node of this app serves: the configured list, else its jobs' queues."""
    return app.settings.queue_list or sorted({j.options.queue for j in app.jobs})


async def clear_handoff(app: Baton) -> None:
    """At node start: drop what a previous process with this node id left of its hand-off state
    (its registration and undelivered hand-offs), so runs handed to it are not counted twice."""
    node = app.settings.node_id
    pipe = app.redis.pipeline(transaction=False)
    for p in app.keys.partitions:
        pipe.delete(p.waiter(node), p.handoff(node))
        pipe.hdel(p.handed, node)
    await pipe.execute()


def _answer(replies: list[asyncio.Future[None]]) -> None:
    for reply in replies:
        if not reply.done():
            reply.set_result(None)
    replies.clear()
