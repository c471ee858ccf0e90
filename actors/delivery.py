"""Delivery: how runs leased to this node by runs_create (not by its own claims) reach the executor.

A node waiting for work is leased new runs where they are created: pushed to its hand-off list
(the receiver pops them) or, for runs its own intake creates, returned in that very call. Either
way the runs go to the executor and their leases to the leaser and the fetcher in one step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from runtime.messages import HandedOff, Hold, LeaseGranted

from .base import Mailbox

__all__ = ["Delivery"]

#: Event-loop turns a delivery yields after handing runs over: the executor takes the message,
#: starts the run's task, and the task reaches the handler.
START_TURNS = 4


class Delivery:
    """The executor's, leaser's and fetcher's mailboxes, as the receiver and the intakes use them."""

    def __init__(self, executor: Mailbox[LeaseGranted], leaser: Mailbox[Hold], fetcher: Mailbox[HandedOff]) -> None:
        self.executor = executor
        self.leaser = leaser
        self.fetcher = fetcher

    async def deliver(self, partition: int, granted: Sequence[LeaseGranted],
                      registration_room: int | None = None) -> None:
        """Start runs leased to this node in ``partition``, each granted with until when (monotonic) its
        lease surely holds and about when it was granted. ``registration_room``: what the node's
        registration as waiting has left after the last push (None: the push used it up)."""
        # the leaser and the fetcher hear of the runs before anything can report
        # them done: every message is queued in this one step; the executor's
        # first, so the runs start before the bookkeeping (the pickup path)
        held = tuple(g.claimed for g in granted)
        # (one renewal schedule for them all: the lease that surely ends first sets it)
        hold = Hold(partition, held, min(g.deadline for g in granted))
        if self.executor.room() < len(granted):
            # more than the executor's mailbox holds now (hand-offs of several partitions
            # at once): the bookkeeping first, then wait for room rather than fail
            self.leaser.send_nowait(hold)
            self.fetcher.send_nowait(HandedOff(partition, held, registration_room))
            for g in granted:
                await self.executor.send(g)
            await _yield(START_TURNS)
            return
        for g in granted:
            self.executor.send_nowait(g)
        # the leaser and the fetcher are woken only once the runs have started (executor
        # turn, task start, handler): woken now, both would handle their message first, on
        # the pickup path. Their messages are queued now, so they read them before any later one
        self.leaser.post(hold)
        self.fetcher.post(HandedOff(partition, held, registration_room))
        try:
            await _yield(START_TURNS)
        finally:
            self.leaser.wake()
            self.fetcher.wake()

    def forgo(self, partition: int, count: int, registration_room: int | None) -> None:
        """``count`` runs handed to this node in ``partition`` will not start here (their leases
        expire): the fetcher counts them received, or it would wait for them forever."""
        self.fetcher.send_nowait(HandedOff(partition, (), registration_room, forgone=count))


async def _yield(turns: int) -> None:
    """Let other tasks run for ``turns`` turns of the event loop."""
    for _ in range(turns):
        await asyncio.sleep(0)
