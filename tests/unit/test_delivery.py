"""Delivery: runs handed to a node start before its leaser and fetcher do their bookkeeping, and the
bookkeeping messages are queued at once (read before anything sent later), even if the delivery is
cancelled meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.base import Mailbox
from actors.delivery import Delivery
from runtime.messages import HandedOff, Hold, LeaseGranted
from runtime.scripts import Claimed


def claimed(run_id: str) -> Claimed:
    return Claimed(run_id, f"n/{run_id}", 1, "job", b"null", 0, 0, 0, 0)


class Owners:
    """Three mailboxes and an owner task on each that records what it reads, and when."""

    def __init__(self) -> None:
        self.executor: Mailbox[LeaseGranted] = Mailbox()
        self.leaser: Mailbox[Hold] = Mailbox()
        self.fetcher: Mailbox[HandedOff] = Mailbox()
        self.events: list[str] = []
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._own(name, box)) for name, box in
                      (("executor", self.executor), ("leaser", self.leaser), ("fetcher", self.fetcher))]

    async def _own(self, name: str, box: Mailbox[Any]) -> None:
        while True:
            await box.wait(None)
            while not box.empty():
                msg = box.get_nowait()
                self.events.append(f"{name} read {type(msg).__name__}")
                if isinstance(msg, LeaseGranted):  # as the executor does: the run starts in a task of its own
                    asyncio.get_running_loop().create_task(self._run(msg.claimed.run_id))

    async def _run(self, run_id: str) -> None:
        self.events.append(f"run {run_id} started")

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_a_delivered_run_starts_before_the_leaser_and_fetcher_are_woken() -> None:
    owners = Owners()
    await asyncio.sleep(0)  # the owners wait
    try:
        await Delivery(owners.executor, owners.leaser, owners.fetcher).deliver(0, [LeaseGranted(claimed("r1"), 0.0)])
        await asyncio.sleep(0)
        assert owners.events[:2] == ["executor read LeaseGranted", "run r1 started"]
        assert sorted(owners.events[2:]) == ["fetcher read HandedOff", "leaser read Hold"]
    finally:
        await owners.close()


async def test_bookkeeping_is_queued_at_once_and_read_before_later_messages() -> None:
    owners = Owners()
    await asyncio.sleep(0)
    delivery = Delivery(owners.executor, owners.leaser, owners.fetcher)
    try:
        task = asyncio.get_running_loop().create_task(delivery.deliver(0, [LeaseGranted(claimed("r1"), 0.0)]))
        await asyncio.sleep(0)  # the delivery queued its messages and yields
        assert owners.leaser.qsize() == 1 and owners.fetcher.qsize() == 1
        # a later message (the run reported done) wakes the leaser: it reads the Hold first
        owners.leaser.send_nowait(Hold(0, (), 1.0))
        await task
        await asyncio.sleep(0)
        leaser_reads = [e for e in owners.events if e.startswith("leaser")]
        assert leaser_reads == ["leaser read Hold", "leaser read Hold"]
    finally:
        await owners.close()


async def test_a_delivery_cancelled_while_the_runs_start_still_wakes_the_leaser_and_fetcher() -> None:
    owners = Owners()
    await asyncio.sleep(0)
    try:
        task = asyncio.get_running_loop().create_task(
            Delivery(owners.executor, owners.leaser, owners.fetcher).deliver(0, [LeaseGranted(claimed("r1"), 0.0)]))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(3):
            await asyncio.sleep(0)
        assert "leaser read Hold" in owners.events and "fetcher read HandedOff" in owners.events
    finally:
        await owners.close()
