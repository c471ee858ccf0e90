"""Fetcher: claims runnable runs for the executor's free slots (Sidekiq's fetch strategy).

Claims go through the runs_claim Lua script, which decides priority, fairness,
concurrency and rate limits by the Redis clock. A node whose claim leaves room
registers as waiting, so runs_create can hand it new runs directly (see
actors/receiver.py). Every lease it takes goes to the leaser, which keeps it
(renewal), and to the executor, which runs it; the fetcher only counts slots.
"""

from __future__ import annotations

import asyncio
import time

from runtime.app import Baton
from runtime.errors import NotReplicated
from runtime.keys import Partition
from runtime.messages import Attempt, Drain, HandedOff, Hold, LeaseGranted, Released, SlotsFreed, Wake, WhenReleased
from runtime.metrics import Metrics
from runtime.partition_outages import PartitionOutages
from runtime.redis_faults import described, is_outage
from runtime.scripts import Claimed
from runtime.settings import Settings

from .base import Actor, Mailbox, answer

__all__ = ["Fetcher", "ready_partition", "served_queues"]

#: how many claims fill a node's free slots when runs are plentiful (bench/drain_calls.py:
#: at concurrency 100 four claims of 25 drain ~1.7x faster than one of 100; at 20 and 400, the
#: same quarter of the slots was the best of those tried)
CLAIM_PIECES = 4
#: how long one partition's claim may hold up a claim round over partitions on several Redis Cluster
#: masters. A slower one goes on by itself and the round goes on without it: a master that froze (a
#: hung host, a network partition: nothing refused, nothing answered) held every partition's claims
#: for its reply timeout, twice, and runs on the other masters waited 20 s
SLOW_CLAIM_S = 0.1

FetcherMessage = Wake | SlotsFreed | Released | Drain | HandedOff | WhenReleased


class Fetcher(Actor[FetcherMessage]):
    """Hands leased runs to the executor, never more than its free slots."""

    name = "fetcher"
    #: the runs in the executor's slots and the hand-off bookkeeping outlive a crash of run():
    #: the executor is still running them, and a draining node still expects its hand-offs
    survives = ("occupied", "unreported", "received", "draining", "expected", "drain_replies", "release_replies",
                "readied", "limits_lost")

    @classmethod
    def inbox_size(cls, settings: Settings) -> int:
        """Wake-ups coalesce, releases come in batches: a generous bound that is never reached in practice."""
        return 10_000

    def __init__(self, app: Baton, metrics: Metrics, inbox: Mailbox[FetcherMessage],
                 executor: Mailbox[LeaseGranted], leaser: Mailbox[Hold], incarnation: str) -> None:
        super().__init__(inbox)
        #: this node process, as the leaser's renewals name it: begun in a partition before the first claim
        #: there (ready_partition)
        self.incarnation = incarnation
        self.app = app
        self.settings = app.settings
        self.metrics = metrics
        self.executor = executor
        self.leaser = leaser
        self.slots = app.settings.concurrency
        #: a full node claims its slots in CLAIM_PIECES calls, not one: the executor starts the
        #: first piece while the next is claimed, and outcomes are written while runs start, so
        #: Redis and this process work at once (one claim of every slot made them take turns)
        self.claim_piece = max(1, -(-self.slots // CLAIM_PIECES))
        #: attempts granted to the executor whose handlers have not ended: they fill the slots
        #: (attempts, not runs: a run's next attempt may start here while its last one ends)
        self.occupied: set[Attempt] = set()
        #: attempts whose handlers ended and whose outcomes are not written yet: their slots are
        #: free (the next claim overlaps the write) but they still hold leases
        self.unreported: set[Attempt] = set()
        #: per partition index: the room this node's registration as waiting has left there, and until
        #: when (monotonic) it surely lives, as its last claim there and the hand-offs since said.
        #: While it holds room in every partition, the end of a run needs no claim: new runs are
        #: handed over, and a run left in a ready set wakes this fetcher (Wake)
        self.registrations: dict[int, tuple[int, float]] = {}
        self.draining = False
        self.maybe_work = True
        #: per partition index: whether its last claim filled its piece (more runs are likely
        #: queued there, so the free slots are claimed in pieces at once, see _claim_pieces)
        self.plentiful: dict[int, bool] = {}
        self.rotation = 0
        self.queues = served_queues(app)
        self.job_names = app.served_jobs()
        self.next_idle_poll = time.monotonic() + self.settings.idle_poll_ms / 1000
        #: when a rate limit next lets a held-back run start (inf = none held back)
        self.next_rate_wake = float("inf")
        # hand-offs (see actors/receiver.py): while waiting, this node stays
        # registered for three idle polls; each idle claim renews it
        self.register_ms = 3 * self.settings.idle_poll_ms if self.settings.handoff else 0
        #: runs received by hand-off, per partition index (runs_claim counts the rest as in transit)
        self.received: dict[int, int] = {}
        #: partitions readied for this process's claims (ready_partition): once per process, each
        #: before its first claim there, so a partition whose master is down when the node starts
        #: is readied when it answers, and the others are served meanwhile
        self.readied: set[int] = set()
        #: partitions that came back from an outage since their limits were applied: a master that
        #: restarts without its data (no persistence, no replica) lost them, and runs_claim would
        #: take every job there as unlimited; applied again before the next claim there
        self.limits_lost: set[int] = set()
        #: per partition, how many hand-offs a draining node still expects in total
        self.expected: dict[int, int] | None = None
        #: partitions whose master does not answer: skipped until their probe wakes this fetcher
        self.outages = PartitionOutages(app, self.log, "claims", self.spawn, self._partition_back,
                                        metrics.partitions_out.labels(actor=self.name).set)
        #: per partition index: a claim there that outlasted SLOW_CLAIM_S, going on by itself
        self.slow: dict[int, asyncio.Task[int]] = {}
        #: whether partitions may live on masters apart (Redis Cluster, more than one): only then can
        #: one be slow while the others answer, and only then is a claim worth a task of its own (on
        #: one server, four partitions drained ~4% slower for it: bench/drain_calls.py)
        self.apart = app.settings.redis_cluster and len(app.keys.partitions) > 1
        #: Drain replies, resolved once this node is no longer registered and has every run handed to it
        self.drain_replies: list[asyncio.Future[None]] = []
        #: WhenReleased replies, resolved once no granted run is left unreported
        self.release_replies: list[asyncio.Future[None]] = []

    def _partition_back(self, index: int) -> None:
        """A partition whose master did not answer does again: its limits are applied again, then claims go on."""
        self.limits_lost.add(index)
        self.inbox.send_nowait(Wake(self.app.keys.partitions[index].prefix))

    async def run(self) -> None:
        """Claim while there is work and room; otherwise wait for a wake-up or a timer.

        Nothing else runs in this loop (renewal and reaping are the leaser's), so
        a wake-up never waits behind them: that keeps the pickup latency tail short.
        """
        while not self.stopping.is_set():
            if self.draining and self.expected is None:
                await self._close_handoff()
            if self.maybe_work and not self.draining:
                await self.claim_round()
            now = time.monotonic()
            if now >= self.next_idle_poll:
                # safety net for a missed wake-up message; not the normal path
                self.maybe_work = True
                self.next_idle_poll = now + self.settings.idle_poll_ms / 1000
            if now >= self.next_rate_wake:
                self.maybe_work = True
                self.next_rate_wake = float("inf")
            can_claim = self.maybe_work and not self.draining and len(self.occupied) < self.slots
            timeout = 0.0 if can_claim else max(min(self.next_idle_poll, self.next_rate_wake) - now, 0.0)
            if timeout > 0:
                msg = await self.receive(timeout)
            else:
                await asyncio.sleep(0)  # never hold the event loop, even with work waiting
                msg = self.inbox.get_nowait() if not self.inbox.empty() else None
            while msg is not None:
                self.handle(msg)
                msg = self.inbox.get_nowait() if not self.inbox.empty() else None
        if self.slow:
            # what a claim still under way leases is this node's to run or give back: it ends first
            await asyncio.wait(list(self.slow.values()))

    def handle(self, msg: FetcherMessage) -> None:
        """Apply one inbox message."""
        if isinstance(msg, Wake):
            self.maybe_work = True
        elif isinstance(msg, SlotsFreed):
            self.occupied.difference_update(msg.leases)
            self.unreported.update(msg.leases)
            if not self._registered_everywhere():
                self.maybe_work = True
        elif isinstance(msg, Released):
            # slots SlotsFreed already gave back were claimed for then: one more claim per run
            # would be an idle runs_claim on every run of a quiet node (a finish that frees a
            # concurrency limit wakes the nodes by itself)
            if not self.occupied.isdisjoint(msg.leases):
                self.maybe_work = True
            self.occupied.difference_update(msg.leases)
            self.unreported.difference_update(msg.leases)
        elif isinstance(msg, HandedOff):
            # the receiver gave the runs to the executor and their leases to the leaser already
            self.occupied.update((c.run_id, c.token) for c in msg.runs)
            held = self.registrations.pop(msg.partition, None)
            if held is not None and msg.registration_room is not None and msg.registration_room > 0:
                self.registrations[msg.partition] = (msg.registration_room, held[1])
            self.received[msg.partition] = self.received.get(msg.partition, 0) + len(msg.runs) + msg.forgone
            self.metrics.leases_handed_off.inc(len(msg.runs) + msg.forgone)
            if not self._registered_everywhere():
                # its room ran low: renewed now, while the next runs can still be handed over (not
                # once these end: a node fed back to back had its room run out by then)
                self.maybe_work = True
            self._check_handoff_closed()
        elif isinstance(msg, Drain):
            self.draining = True
            self.drain_replies.append(msg.closed)
            self._check_handoff_closed()
        elif isinstance(msg, WhenReleased):
            self.release_replies.append(msg.reply)
        if self.release_replies and not self.occupied and not self.unreported:
            answer(self.release_replies)

    async def _close_handoff(self) -> None:
        """Draining: stop being handed runs, and learn how many are still on their way."""
        if not self.register_ms:
            self.expected = {}
            self._check_handoff_closed()
            return
        node = self.settings.node_id
        expected: dict[int, int] = {}

        async def close(p: Partition) -> None:
            pipe = self.app.redis.pipeline(transaction=False)
            pipe.delete(p.waiter(node))
            pipe.hget(p.handed, node)
            _, handed = await pipe.execute()
            expected[p.index] = int(handed or 0)

        partitions = self.app.keys.partitions
        self.registrations.clear()
        ended = await asyncio.gather(*(close(p) for p in partitions), return_exceptions=True)
        for p, failure in zip(partitions, ended, strict=True):
            if isinstance(failure, BaseException):
                if not is_outage(failure):
                    raise failure
                # its master does not answer: nothing handed over there can be popped now, and its
                # registration lapses by itself; what it leased to this node is released uncharged
                # by the reapers (a hand-off never taken), so the drain does not wait for it
                self.log.warning("draining: partition %d did not answer (%s); not waiting for its hand-offs",
                                 p.index, described(failure)[:300])
        self.expected = expected
        self._check_handoff_closed()

    def _check_handoff_closed(self) -> None:
        if self.drain_replies and self.expected is not None and all(
            self.received.get(index, 0) >= n for index, n in self.expected.items()
        ):
            answer(self.drain_replies)

    async def claim_round(self) -> None:
        """Claim from every partition, fairly, until slots are full or nothing is left."""
        partitions = self.app.keys.partitions
        self.maybe_work = False
        start = self.rotation
        self.rotation += 1
        #: runs the node's waiting registrations promised so far in this round: with several
        #: partitions, each registration gets a share of the free slots (by partition index, so
        #: an idle node's shares do not move between rounds), and claims here and registrations
        #: together stay within the free slots: all partitions never hand it more than it has
        promised = 0
        for i in range(len(partitions)):
            free = self.slots - len(self.occupied)
            if free <= 0:
                self.maybe_work = True  # more may be waiting; claim again when slots free up
                return
            p = partitions[(start + i) % len(partitions)]
            if self.outages.is_out(p.index) or p.index in self.slow:
                continue  # its master does not answer (its probe wakes this fetcher when it does), or is slow to
            if not self.apart:
                promised += await self._claim_in(p, free, promised)
                continue
            claim = self.spawn(self._claim_in(p, free, promised), f"claim:{p.index}", essential=True)
            await asyncio.wait([claim], timeout=SLOW_CLAIM_S)
            if not claim.done():
                self._goes_on_alone(p.index, claim)
            elif not claim.cancelled() and claim.exception() is None:
                promised += claim.result()
            # (else it failed: spawn ends this run() with its error)

    def _goes_on_alone(self, index: int, claim: asyncio.Task[int]) -> None:
        """A slow claim in partition ``index`` goes on by itself while the rounds go on without that
        partition; when it ends, the fetcher claims again. (Its runs may find the slots taken
        meanwhile: those it gives back, see _grant.)"""
        self.slow[index] = claim

        def ended(_: asyncio.Task[int]) -> None:
            self.slow.pop(index, None)
            self.maybe_work = True
            self.inbox.wake()

        claim.add_done_callback(ended)

    async def _claim_in(self, p: Partition, free: int, promised: int) -> int:
        """One partition's part of a claim round, the partition readied first; returns the slots its
        registration promised. A master that does not answer puts the partition out (0)."""
        try:
            if p.index not in self.readied:
                await ready_partition(self.app, p, self.incarnation)
                self.readied.add(p.index)
                self.limits_lost.discard(p.index)
            elif p.index in self.limits_lost:
                await self.app.apply_limits_in(p)
                self.limits_lost.discard(p.index)
            return await self._claim_from(p, free, promised)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self.outages.failed(p, exc)
            return 0

    async def _claim_from(self, p: Partition, free: int, promised: int) -> int:
        """One partition's part of a claim round; returns the slots its registration promised."""
        count = len(self.app.keys.partitions)
        unpromised = max(free - promised, 0)
        want = min(unpromised, self.settings.claim_batch)
        piece = min(want, self.claim_piece)
        share = free // count + (1 if p.index < free % count else 0)
        # (want is 0 when this round's registrations elsewhere promised every free slot, as the
        # slots fill while the round goes on: the plain claim below then only drops this
        # partition's registration)
        if self.plentiful.get(p.index) and piece > 0 and want >= 2 * piece:
            if not await self._claim_pieces(p, want, piece):
                # the queues ran dry: claim once more, alone, to register as waiting (or not)
                self.plentiful[p.index] = False
            self.maybe_work = True
            return 0
        # taken before the call: the lease surely holds until then (runtime/fencing.py), and so does a
        # registration (for two thirds of its time: the idle polls renew it every third)
        sent = time.monotonic()
        deadline = sent + self.settings.lease_ttl_ms / 1000
        reply = await self.app.scripts.claim_detailed(
            p, self.settings.node_id, want, self.queues, self.job_names, self.rotation,
            received=self.received.get(p.index, 0), register_ms=self.register_ms, register_most=share,
            piece=piece,
        )
        claimed = reply.runs
        await self._grant(p, claimed, reply.retry_in_ms, deadline)
        if reply.registered_room > 0:
            self.registrations[p.index] = (reply.registered_room, sent + self.register_ms * 2 / 3000)
        else:
            self.registrations.pop(p.index, None)
        self.plentiful[p.index] = bool(claimed) and len(claimed) == piece < want
        if claimed and len(claimed) == piece:
            self.maybe_work = True
        if len(claimed) < piece or piece == want:
            return min(max(want - len(claimed), 0), share)  # what the registration asked for
        return 0

    def _registered_everywhere(self) -> bool:
        """Whether this node's registration as waiting surely lives in every partition, each with room
        for at least half its share of the free slots. Hand-offs count a registration's room down and
        only a claim renews it; renewed at half rather than once used up, it keeps a node fed runs back
        to back being handed them (used up, the next runs went to the ready set to wait for a claim)."""
        count = len(self.app.keys.partitions)
        if len(self.registrations) < count:
            return False
        low = max(1, (self.slots - len(self.occupied)) // count // 2)
        now = time.monotonic()
        return all(room >= low and now < until for room, until in self.registrations.values())

    async def _claim_pieces(self, p: Partition, want: int, piece: int) -> bool:
        """Every free piece claimed at once (up to CLAIM_PIECES calls in flight), for a partition
        whose last claim filled its piece.

        With one claim in flight, a node whose claims wait in Redis behind other
        clients' calls (a busy producer's batch of creates) takes a piece per
        wait, however fast it runs them: a backlog then grows while both this
        process and Redis have time to spare. The calls go out together, and
        the first piece starts while Redis leases the others. None of them may
        register the node as waiting (which runs last is not known): pieces
        that come back short are followed by a single claim that does. Call i
        asks for i pieces less, so together they never take more than the free
        slots, hand-offs counted. True when every piece came back full.
        """
        deadline = time.monotonic() + self.settings.lease_ttl_ms / 1000
        calls = [
            asyncio.ensure_future(self.app.scripts.claim(
                p, self.settings.node_id, want - i * piece, self.queues, self.job_names, self.rotation,
                received=self.received.get(p.index, 0), register_ms=self.register_ms, piece=piece,
                keep_registration=True,
            ))
            for i in range(min(want // piece, CLAIM_PIECES))
        ]
        full = True
        for i, call in enumerate(calls):
            try:
                claimed, retry_in_ms = await asyncio.shield(call)
            except BaseException:
                # the runs the calls lease reach the executor all the same, this one's too when
                # it was this task that was cancelled (else they would wait out their leases);
                # the error is the round's
                rest = await asyncio.shield(asyncio.gather(*calls[i:], return_exceptions=True))
                for reply in rest:
                    if not isinstance(reply, BaseException):
                        await self._grant(p, *reply, deadline)
                raise
            await self._grant(p, claimed, retry_in_ms, deadline)
            full = full and len(claimed) == min(want - i * piece, piece)
        return full

    async def _grant(self, p: Partition, claimed: list[Claimed], retry_in_ms: int, deadline: float) -> None:
        """Runs a claim leased: their leases to the leaser, the runs to the executor."""
        if retry_in_ms >= 0:
            # a rate limit holds runs back: come back exactly when it lets one go. Counted from when the
            # claim was sent (its deadline less a TTL), not from its reply: Redis judged the wait during
            # the call, and a rate with no burst loses for good each ms a claim comes after it (a reply
            # late on a busy machine made a 5 s burst of a 50/s limit take 6 s)
            sent = deadline - self.settings.lease_ttl_ms / 1000
            self.next_rate_wake = min(self.next_rate_wake, sent + retry_in_ms / 1000)
        room = self.slots - len(self.occupied)
        if len(claimed) > room:
            # a claim that came back after the rounds went on without it (SLOW_CLAIM_S), the slots
            # taken meanwhile: the runs past them are given back, uncharged, not run over the limit
            claimed, extra = claimed[:max(room, 0)], claimed[max(room, 0):]
            await self.app.scripts.give_back(p, extra, "late_claim")
        if claimed:
            # the leaser hears of the leases before anything can report the runs done
            self.leaser.send_nowait(Hold(p.index, tuple(claimed), deadline))
            self.occupied.update((c.run_id, c.token) for c in claimed)
        for c in claimed:
            await self.executor.send(LeaseGranted(c, deadline))


def served_queues(app: Baton) -> list[str]:
    """The queues a node of this app serves: the configured list, else its jobs' queues."""
    return app.settings.queue_list or sorted({j.options.queue for j in app.jobs})


async def ready_partition(app: Baton, p: Partition, incarnation: str) -> None:
    """What a node does in partition ``p`` once, before its first claim there: drop what a previous
    process with this node id left of its hand-off state (its registration and undelivered hand-offs,
    so runs handed to it are not counted twice), begin this process's incarnation there, and apply its
    jobs' limits.

    The incarnation begins with a renewal of no leases (this process holds none there yet): a grant to
    this node id before it is taken for an earlier process's, so one whose reply was lost is charged as
    a crash when its lease expires, not given back uncharged (leases_reap.lua). Begun by the leaser's
    first renewal, it came after the first grants when that renewal was late: a run handed over at
    once and lost with its reply was dead-lettered (seen under load in CI)."""
    node = app.settings.node_id
    pipe = app.redis.pipeline(transaction=False)
    pipe.delete(p.waiter(node), p.handoff(node))
    pipe.hdel(p.handed, node)
    await pipe.execute()
    try:
        await app.scripts.renew(p, [], incarnation)
    except NotReplicated:
        # on the master, not confirmed by its replicas (durable_replicas): the node starts all the same, and
        # its claims there wait for the replicas. Should a failover lose it, a grant whose reply is lost
        # before the leaser's first renewal there is charged as a crash when its lease expires
        pass
    await app.apply_limits_in(p)
