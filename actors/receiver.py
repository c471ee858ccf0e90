"""Receiver: takes the runs handed to this node while it waits for work.

A node whose claim finds less work than it has room for registers as waiting
(runs_claim); runs_create then leases new runs to it directly and pushes them
to the node's hand-off list. The receiver blocks on that list (one connection
per partition) and takes every entry waiting in it at once (BLMPOP; BLPOP, one
entry per pop, where the server or its ACL refuses it), gives the runs to the executor and tells the
leaser, which renews their leases, and the fetcher, which counts their slots. A run submitted to an idle node
thus starts without a claim round trip, and without a hop through the leaser.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from runtime.app import Baton
from runtime.cancelling import cancel_and_wait
from runtime.connection import LONGEST_BLOCK_MS
from runtime.direct_calls import DirectCalls
from runtime.fencing import handed_deadline, handed_granted_at, lease_margin_s
from runtime.keys import Partition
from runtime.lua_calls import durable_shortfall, durable_wait
from runtime.messages import LeaseGranted
from runtime.partition_outages import next_pause, others_note
from runtime.redis_faults import command_refused, described, is_outage
from runtime.scripts import Claimed, handed_off

from .base import Actor
from .delivery import Delivery

__all__ = ["Receiver"]

#: Longest BLPOP wait: how soon a stopping receiver notices (the longest any blocking command of Baton's may;
#: seconds, a fraction allowed: 0 would block for ever)
BLOCK_S = LONGEST_BLOCK_MS / 1000
#: Hand-offs (run id, lease token, grant time) a receiver remembers having delivered: one popped
#: again is skipped. (The grant time tells a run deleted and created again under its id apart.)
REMEMBERED = 10_000


class Receiver(Actor[None]):
    """Blocks on the node's hand-off list of every partition."""

    name = "receiver"
    #: what it delivered outlives a restart: a failover that loses a pop also restarts the receiver
    survives = ("delivered",)

    def __init__(self, app: Baton, delivery: Delivery) -> None:
        super().__init__()
        self.app = app
        self.delivery = delivery
        #: the leases lately delivered, oldest first. A pop is a write the master may lose in a
        #: failover (durable writes wait for a script's writes, not for a BLPOP's): the promoted
        #: replica still lists the entry, and popped again it would start the same attempt twice
        self.delivered: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        #: whether a pop takes every entry waiting (BLMPOP, Redis 7+), not just one (BLPOP)
        self.take_many = True

    async def run(self) -> None:
        """Receive until stopped. A partition that does not answer pauses its own loop only; any
        other error in a partition loop fails the actor (and it is restarted)."""
        # entries left by an earlier process with this node id are dropped by the fetcher before its
        # first claim in their partition (fetcher.ready_partition). One popped before that is a run
        # leased to this node id (run here, under its lease) or unreadable (skipped); the in-transit
        # count it leaves behind is started again by the same call (runs_claim takes it up from
        # what this node received)
        loop = asyncio.get_running_loop()
        direct = DirectCalls(self.app.redis)
        tasks = [loop.create_task(self._receive(p, direct), name=f"receiver:{p.index}")
                 for p in self.app.keys.partitions]
        try:
            await asyncio.gather(*tasks)
        finally:
            # a restarted receiver holds new connections: the old ones go back to the pool
            await cancel_and_wait(tasks)
            await direct.release()

    async def _receive(self, partition: Partition, direct: DirectCalls) -> None:
        key = partition.handoff(self.app.settings.node_id)
        ttl_ms = self.app.settings.lease_ttl_ms
        # durable writes: no run starts before a replica has it (see _replicated)
        confirm = durable_wait(self.app.settings)
        pause = 0.0  # after an outage: the wait before the next pop
        while not self.stopping.is_set():
            # on a held connection: this reply is on the pickup path. An entry may have
            # waited in the list since before this pop (pushed while this node was busy,
            # or this actor restarting): its lease is judged by its grant time on the
            # Redis clock, which TIME, sent with the pop, relates to this node's clock
            sent = time.monotonic()
            try:
                clock_ms, reply = await direct.execute_timed(key, *self._pop(key))
            except Exception as exc:
                if self.take_many and command_refused(exc, "blmpop"):
                    # a server before Redis 7 (no BLMPOP), or an ACL file written for the BLPOP this
                    # node used before: one entry per pop from now on
                    self.take_many = False
                    self.log.warning("the Redis server refuses BLMPOP (%s): hand-offs are popped one at a "
                                     "time with BLPOP (allow +blmpop, see deploy/redis/users.acl)", described(exc))
                    continue
                if not is_outage(exc):
                    raise
                # this partition's master does not answer: its pops wait, the other
                # partitions' go on (on Redis Cluster they may live on healthy masters)
                if not pause:
                    self.log.warning("partition %d did not answer (%s): its hand-offs paused, %s",
                                     partition.index, described(exc)[:300], others_note(self.app))
                pause = next_pause(pause)
                await self.sleep(pause)
                continue
            if pause:
                self.log.info("partition %d answers again: its hand-offs resumed", partition.index)
                pause = 0.0
            if reply is None:
                continue
            granted, room = self._taken(partition, reply[1] if self.take_many else [reply[1]], sent, clock_ms, ttl_ms)
            if not granted:
                continue
            if confirm is not None and not await self._replicated(
                    partition, direct, confirm, min(g.deadline for g in granted)):
                for g in granted:  # not started: taken again from a promoted replica's list, they run
                    c = g.claimed
                    self.delivered.pop((c.run_id, c.token, c.claimed_at_ms), None)
                self.delivery.forgo(partition.index, len(granted), room)
                # with no failover, they are given back on this master (uncharged), not left to expire and
                # be charged a crash of a node that never started them
                await self.app.scripts.give_back(partition, [g.claimed for g in granted], "unconfirmed")
                continue
            # (the runs start first)
            await self.delivery.deliver(partition.index, granted, registration_room=room)

    def _pop(self, key: str) -> tuple[Any, ...]:
        """The blocking pop of a hand-off list: every entry waiting in it (up to one per slot: each
        entry holds at least one run, and no registration is promised more runs than the node's
        slots), else the first to come."""
        if self.take_many:
            return ("BLMPOP", BLOCK_S, 1, key, "LEFT", "COUNT", self.app.settings.concurrency)
        return ("BLPOP", key, BLOCK_S)

    def _taken(self, partition: Partition, entries: list[bytes], sent: float, clock_ms: int,
               ttl_ms: int) -> tuple[list[LeaseGranted], int | None]:
        """The runs in the entries one pop took that were not delivered before, oldest push first,
        each with its lease's times; and what the node's registration has left after the last push.
        An entry may have waited in the list since before the pop: its lease is judged by its grant
        time on the Redis clock, which the TIME sent with the pop (``clock_ms``) relates to this
        node's clock."""
        granted: list[LeaseGranted] = []
        room: int | None = None
        for entry in entries:
            try:
                runs, room = handed_off(entry, partition.index)
            except (ValueError, TypeError, IndexError) as exc:
                # only runs_create writes this list; never expected, but one bad
                # entry must not stop the node (leases it held are reaped)
                self.log.error("skipped an unreadable hand-off entry of partition %d: %r", partition.index, exc)
                continue
            if not runs:
                continue
            granted_ms = runs[0].claimed_at_ms  # (one push: one grant time)
            deadline = handed_deadline(sent, clock_ms, granted_ms, ttl_ms)
            granted_at = handed_granted_at(sent, clock_ms, granted_ms)
            granted += [LeaseGranted(c, deadline, granted_at) for c in runs if self._first_delivery(c)]
        return granted, room

    async def _replicated(self, partition: Partition, direct: DirectCalls, wait: tuple[Any, ...],
                          deadline: float) -> bool:
        """Whether the replicas durable writes ask for have the runs a pop took, tried again while
        their leases (good until monotonic ``deadline``) leave room for another try and the start.

        The creator's own wait confirms its write to the creator only, and the pop was answered
        as soon as the creator's script pushed the runs, before any replica may have them: a
        failover then would lose the runs and their leases while this node runs them, and the
        promoted master would lease them again. A wait on the pop's own connection would not do
        either: a client unblocked by another's push is not charged the pop's replication offset
        (Redis 7.0), so its WAIT returns at once. This node writes a key of its own after the pop,
        which reaches the replicas after the runs did, and waits for that.
        """
        settings = self.app.settings
        key = partition.handoff_taken(settings.node_id)
        wait_s = settings.durable_timeout_ms / 1000
        margin_s = lease_margin_s(settings.lease_ttl_ms)
        while True:
            try:
                _, acked = await direct.execute_durably(wait, "SET", key, int(time.time() * 1000), "PX",
                                                        settings.lease_ttl_ms, key=key)
                problem = durable_shortfall(settings, acked)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                problem = described(exc)[:300]
                await self.sleep(min(wait_s, 0.1))  # (an outage answers at once: not a busy loop)
            if not problem:
                return True
            if time.monotonic() + wait_s + margin_s >= deadline:
                self.log.warning("runs handed to this node in partition %d were not started: no replica confirmed "
                                 "them while their leases held (%s); they are given back, uncharged, to run again",
                                 partition.index, problem)
                return False

    def _first_delivery(self, c: Claimed) -> bool:
        """Whether this hand-off was not delivered before (and remember it)."""
        handed = (c.run_id, c.token, c.claimed_at_ms)
        if handed in self.delivered:
            self.log.warning("run %s was handed to this node again with the same lease (%s): skipped; a pop "
                             "lost in a failover leaves the entry in the promoted replica's list", c.run_id, c.token)
            return False
        self.delivered[handed] = None
        if len(self.delivered) > REMEMBERED:
            self.delivered.popitem(last=False)
        return True
