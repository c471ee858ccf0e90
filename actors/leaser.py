"""Leaser: claims runnable runs for free executor slots, renews, reaps and promotes.

All cross-node coordination happens here, through Lua scripts judged by the
Redis server's clock: claims (priority and concurrency limits decided in Lua),
one renewal call per partition per interval for every lease the node holds,
reaping of any node's expired leases, and promotion of due delayed runs.
"""

from __future__ import annotations

import random
import time
from typing import Any

from runtime.app import Baton
from runtime.messages import CancelRun, Drain, LeaseGranted, Released, Wake
from runtime.metrics import Metrics

from .base import Actor

__all__ = ["Leaser"]

LeaserMessage = Wake | Released | Drain


class Leaser(Actor[LeaserMessage]):
    """Hands leased runs to the executor, never more than its free slots."""

    name = "leaser"

    def __init__(self, app: Baton, executor: Actor[Any], metrics: Metrics) -> None:
        super().__init__()
        self.app = app
        self.settings = app.settings
        self.executor = executor
        self.metrics = metrics
        self.slots = app.settings.concurrency
        #: run id -> (lease token, partition index) of leases to renew
        self.held: dict[str, tuple[str, int]] = {}
        #: runs granted to the executor and not yet reported back
        self.occupied: set[str] = set()
        self.draining = False
        self.maybe_work = True
        self.rotation = 0
        self.queues = app.settings.queue_list or sorted({j.options.queue for j in app.jobs})
        self.job_names = app.jobs.names()
        now = time.monotonic()
        self.next_renew = now + self.settings.renew_interval_ms / 1000
        self.next_tick = now
        self.next_idle_poll = now + self.settings.idle_poll_ms / 1000

    async def run(self) -> None:
        """Claim while there is work and room; otherwise wait for a wake-up or a timer."""
        while not self.stopping.is_set():
            if self.maybe_work and not self.draining:
                await self.claim_round()
            now = time.monotonic()
            if now >= self.next_renew:
                await self.renew()
                now = time.monotonic()
            if now >= self.next_tick:
                await self.tick()
                now = time.monotonic()
            if now >= self.next_idle_poll:
                # safety net for a missed wake-up message; not the normal path
                self.maybe_work = True
                self.next_idle_poll = now + self.settings.idle_poll_ms / 1000
            can_claim = self.maybe_work and not self.draining and len(self.occupied) < self.slots
            timeout = 0.0 if can_claim else max(
                min(self.next_renew, self.next_tick, self.next_idle_poll) - time.monotonic(), 0.0
            )
            msg = await self.receive(timeout) if timeout > 0 else (
                self.inbox.get_nowait() if not self.inbox.empty() else None
            )
            while msg is not None:
                self.handle(msg)
                msg = self.inbox.get_nowait() if not self.inbox.empty() else None

    def handle(self, msg: LeaserMessage) -> None:
        """Apply one inbox message to the leaser's state."""
        if isinstance(msg, Wake):
            self.maybe_work = True
        elif isinstance(msg, Released):
            for run_id in msg.run_ids:
                self.occupied.discard(run_id)
                self.held.pop(run_id, None)
            self.maybe_work = True
        elif isinstance(msg, Drain):
            self.draining = True

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
            claimed = await self.app.scripts.claim(
                p, self.settings.node_id, want, self.queues, self.job_names, self.rotation
            )
            for c in claimed:
                self.occupied.add(c.run_id)
                self.held[c.run_id] = (c.token, p.index)
                await self.executor.send(LeaseGranted(c))
            if claimed:
                self.metrics.leases_acquired.inc(len(claimed))
            if len(claimed) == want:
                self.maybe_work = True

    async def renew(self) -> None:
        """Renew every held lease: one script call per partition."""
        self.next_renew = time.monotonic() + self.settings.renew_interval_ms / 1000
        by_partition: dict[int, list[tuple[str, str]]] = {}
        for run_id, (token, index) in self.held.items():
            by_partition.setdefault(index, []).append((run_id, token))
        for index, leases in by_partition.items():
            lost, cancel = await self.app.scripts.renew(self.app.keys.partitions[index], leases)
            self.metrics.leases_renewed.inc(len(leases) - len(lost))
            for run_id in lost:
                self.held.pop(run_id, None)
                self.metrics.leases_lost.inc()
                self.log.warning("lease of run %s lost; stopping its handler", run_id)
                await self.executor.send(CancelRun(run_id, "lease_lost"))
            for run_id in cancel:
                await self.executor.send(CancelRun(run_id, "canceled"))

    async def tick(self) -> None:
        """Promote due delayed runs and reap expired leases in every partition."""
        interval = self.settings.reap_interval_ms / 1000
        # jitter so that N nodes do not reap in lockstep
        next_tick = time.monotonic() + interval * random.uniform(0.8, 1.2)
        for p in self.app.keys.partitions:
            moved, wait_ms = await self.app.scripts.promote(p)
            if moved:
                self.maybe_work = True
            if wait_ms >= 0:
                next_tick = min(next_tick, time.monotonic() + wait_ms / 1000)
            reaped = await self.app.scripts.reap(p)
            if reaped:
                self.metrics.leases_reclaimed.inc(len(reaped))
                self.maybe_work = True
                for run_id, node, status in reaped:
                    self.log.warning("reclaimed expired lease of run %s from node %s -> %s", run_id, node, status)
        self.next_tick = next_tick
