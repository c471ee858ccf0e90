"""Reporter: records attempt outcomes in batches through the fenced runs_finish script."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from runtime.app import Baton
from runtime.logs import run_log_context
from runtime.messages import Attempt, Released, RunFinished, SlotsFreed
from runtime.metrics import Metrics, observe_many
from runtime.partition_outages import PartitionOutages
from runtime.redis_faults import is_outage
from runtime.scripts import Outcome
from runtime.settings import Settings
from runtime.tracing import end_span

from .base import Actor, Mailbox

__all__ = ["Reporter"]

BATCH = 500


class Reporter(Actor[RunFinished]):
    """Takes RunFinished messages, writes them with one Lua call per partition per batch,
    telling the fetcher first that their slots are free, and after the write the fetcher and the
    leaser which leases are gone.

    A partition that does not answer (runtime/redis_faults.py, an outage) keeps its
    outcomes here until it does, while the other partitions' are written; if a lease
    expires meanwhile, the run is reclaimed and retried elsewhere (at-least-once).
    Any other error crashes the actor once the rest is written: the supervisor
    restarts it and the outcomes left are retried.
    """

    name = "reporter"
    #: outcomes not yet written outlive a crash of run(): the restarted reporter writes them
    survives = ("pending",)

    @classmethod
    def inbox_size(cls, settings: Settings) -> int:
        """An outcome per slot and then some (as the executor's)."""
        return settings.concurrency * 2 + 100

    def __init__(self, app: Baton, metrics: Metrics, inbox: Mailbox[RunFinished],
                 fetcher: Mailbox[SlotsFreed | Released], leaser: Mailbox[Released]) -> None:
        super().__init__(inbox)
        self.app = app
        self.fetcher = fetcher
        self.leaser = leaser
        self.metrics = metrics
        self.pending: list[RunFinished] = []
        #: partitions whose master does not answer: their outcomes wait in pending
        self.outages = PartitionOutages(app, self.log, "outcome writes", self.spawn,
                                        lambda index: self.inbox.wake(),
                                        metrics.partitions_out.labels(actor=self.name).set)

    async def run(self) -> None:
        """Flush whatever is waiting, as soon as it arrives. Outcomes of a partition whose master does
        not answer wait in ``pending`` until its probe is answered; the other partitions' go on."""
        while True:
            fresh: list[RunFinished] = []
            if not self._writable():
                # (woken by a message, by a held partition's probe answered, or by the stop)
                first = await self.receive(None)
                if first is None:
                    if self.stopping.is_set():
                        return
                    continue
                fresh.append(first)
            # (a batch counts new outcomes only: those held for a partition that does not answer are
            # at most the runs it had under way here, as the fetcher claims none there meanwhile)
            fresh.extend(self.drain_inbox(BATCH - len(fresh)))
            if fresh:
                self.pending.extend(fresh)
                # the slots are free now: the fetcher claims while the outcomes are written, so a
                # slow write (Redis busy with other scripts) does not hold the node's next runs
                await self.fetcher.send(SlotsFreed(attempts(fresh)))
            self.pending, failure = await self.flush(self.pending)
            if failure is not None:
                raise failure  # (a bug, not an outage: the restarted reporter writes what is left)

    def _writable(self) -> bool:
        """Whether an outcome waiting here can be written now (its partition answers)."""
        return any(not self.outages.is_out(m.partition) for m in self.pending)

    async def flush(self, batch: list[RunFinished]) -> tuple[list[RunFinished], BaseException | None]:
        """Write one batch of outcomes, one call per partition at once. Returns the outcomes left to
        write (their partition is out, or failed) and the first error that was not an outage."""
        by_partition: dict[int, list[RunFinished]] = {}
        left: list[RunFinished] = []
        for msg in batch:
            if self.outages.is_out(msg.partition):
                left.append(msg)
            else:
                by_partition.setdefault(msg.partition, []).append(msg)
        scripts = self.app.scripts
        partitions = self.app.keys.partitions
        results = await asyncio.gather(
            *(scripts.finish(partitions[i], [m.outcome for m in msgs]) for i, msgs in by_partition.items()),
            return_exceptions=True,
        )
        # counters go up once per label set per batch, not once per run (each inc takes a lock)
        tally: Counter[Any] = Counter()
        #: run durations per histogram child, observed together once the batch is counted
        durations: dict[Any, list[float]] = {}
        written: list[RunFinished] = []
        failure: BaseException | None = None
        for (index, msgs), result in zip(by_partition.items(), results, strict=True):
            if isinstance(result, BaseException):
                left.extend(msgs)
                if is_outage(result):
                    self.outages.failed(partitions[index], result)
                else:
                    failure = failure or result
                continue
            written.extend(msgs)
            for msg, (_run_id, status) in zip(msgs, result, strict=True):
                self._count(msg, msg.outcome, status, tally, durations)
        for counter, n in tally.items():
            counter.inc(n)
        for histogram, seconds in durations.items():
            observe_many(histogram, seconds)
        if written:
            released = Released(attempts(written))
            await self.leaser.send(released)
            await self.fetcher.send(released)
        return left, failure

    def _count(self, msg: RunFinished, outcome: Outcome, status: str | int, tally: Counter[Any],
               durations: dict[Any, list[float]]) -> None:
        if msg.span is not None:
            end_span(msg.span, error="lease lost: outcome fenced off" if status == -1 else "",
                     attributes={"baton.status": "lease_lost" if status == -1 else str(status)})
        if status == -1:
            if msg.lost:  # counted and said where the executor found it lost
                return
            self.metrics.leases_lost.labels(stage="finish").inc()
            with run_log_context(outcome.run_id, msg.job, msg.attempt):
                self.log.warning(
                    "outcome %s of run %s rejected: lease token %s no longer holds the run",
                    outcome.outcome, outcome.run_id, outcome.token,
                )
            return
        if outcome.outcome != "released":
            durations.setdefault(self.metrics.child(self.metrics.run_duration, msg.job), []).append(msg.duration_s)
        tally[self.metrics.child(self.metrics.attempts, msg.job, outcome.outcome)] += 1
        if (counter := self.metrics.status_counter(msg.job, str(status))) is not None:
            tally[counter] += 1


def attempts(batch: list[RunFinished]) -> tuple[Attempt, ...]:
    """The attempts these outcomes end."""
    return tuple((m.outcome.run_id, m.outcome.token) for m in batch)
