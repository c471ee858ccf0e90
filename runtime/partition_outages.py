"""Partitions whose Redis master does not answer, as one actor (or the API process) sees them.

On Redis Cluster each partition lives on the master that owns its slot. A master that is down
(its replica not promoted yet, or none) must cost only the runs of its own partitions. An actor
that serves every partition from one loop (the fetcher's claims, the reporter's outcome writes,
the notifier's outbox reads) used to fail on the first partition that did not answer: restarted,
it met the same partition again, so the partitions on healthy masters went unserved until the
master came back. Each such actor now keeps one of these: a partition whose call failed on an
outage (runtime/redis_faults.py, ``is_outage``) is *out*, skipped by the loop, while a probe of its
own (one cheap read in the partition's slot, backing off up to ``OUTAGE_PAUSE_MAX_S``) waits for
it in the background; when the probe is answered the partition is back and ``on_back`` runs.

On a single Redis server every partition goes out together and comes back together: the probes
then do what the actor's restarts did before, one partition at a time.

The API's listings read every partition the same way (``PartialRead``): a page leaves out the
partitions that do not answer, and says which, rather than failing whole. A process keeps one more
for its own calls, ``Baton.outages``: the API's reads and the app's run creations note what they
find there, and a new run whose id Baton draws, with nothing pinning it to a partition, is drawn
into one that answers (runtime/ids.py ``free_run_id``). A partition is out only while its probe
runs: a probe that ends unanswered (its actor or loop ended, the app closed) forgets it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.keys import Partition
from runtime.redis_faults import OUTAGE_PAUSE_MAX_S, described, is_outage

from .cancelling import cancel_and_wait

if TYPE_CHECKING:  # (the app keeps one of these for its own calls: runtime/app.py imports this module)
    from runtime.app import Baton

__all__ = ["FIRST_PROBE_S", "PartialRead", "PartitionOutages", "next_pause", "others_note", "read_partitions"]

#: the first probe of a partition that went out; each next one waits twice as long, up to OUTAGE_PAUSE_MAX_S
FIRST_PROBE_S = 0.1


def next_pause(pause: float) -> float:
    """The wait before the next try at a partition that did not answer, after waiting ``pause``
    (0 for none yet): FIRST_PROBE_S, doubling up to OUTAGE_PAUSE_MAX_S."""
    return min(max(pause * 2, FIRST_PROBE_S), OUTAGE_PAUSE_MAX_S)



def others_note(app: Baton, out: int = 1) -> str:
    """What goes on while ``out`` partitions do not answer, as log lines say it: the other partitions, or
    nothing (every partition out, or a deployment of one)."""
    return "the other partitions go on" if out < len(app.keys.partitions) else "no other is left"

class PartitionOutages:
    """The partitions an actor (or a process's own calls: ``Baton.outages``) skips for now, and the
    probes that bring them back."""

    def __init__(self, app: Baton, log: logging.Logger, duty: str,
                 spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[Any]] | None = None,
                 on_back: Callable[[int], None] = lambda index: None,
                 count: Callable[[float], None] = lambda out: None, writes: bool = True) -> None:
        self.app = app
        #: whether the duty writes: then a partition is back once a durable write can be acknowledged there
        self.writes = writes
        self.log = log
        #: what the actor pauses there, for the log ("claims", "outcome writes")
        self.duty = duty
        #: an actor's probes end with its run(); without ``spawn`` they are this object's, ended by close()
        self._spawn = spawn or self._own_task
        self._probes: set[asyncio.Task[Any]] = set()
        self._on_back = on_back
        #: told how many partitions are out at each change (the actor's baton_partitions_out)
        self._count = count
        self._out: set[int] = set()

    @property
    def out_now(self) -> Set[int]:
        """The indexes of the partitions skipped for now (a live view)."""
        return self._out

    def any_out(self) -> bool:
        """Whether any partition is skipped for now."""
        return bool(self._out)

    def is_out(self, index: int) -> bool:
        """Whether partition ``index`` is skipped for now."""
        return index in self._out

    def failed(self, partition: Partition, exc: BaseException) -> list[Partition]:
        """Partition ``partition`` failed a call with ``exc``, an outage (``is_outage``; anything else
        is for the caller to raise: a bug or a refusal is not waited out): it and the partitions on its
        master are out until their probes are answered (each would cost the client's retries, over a
        second, to find out one by one: the fetcher's first round after a master died took ~5 s over
        three of them). Returns those partitions."""
        lost = sharing_master(self.app, partition)
        new = [p for p in lost if p.index not in self._out]
        if not new:
            return lost
        self._out.update(p.index for p in new)
        self._count(len(self._out))
        others = others_note(self.app, len(self._out))
        self.log.warning("partition%s %s did not answer (%s): %s paused there, %s",
                         "s" if len(new) > 1 else "", ",".join(str(p.index) for p in new), described(exc)[:300],
                         self.duty, others)
        for p in new:
            self._spawn(self._probe(p), f"probe:{p.index}")  # ends with the actor's run()
        return lost

    def _own_task(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work, name=f"outages:{name}")
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)
        return task

    async def close(self) -> None:
        """End the probes this object started itself (none when an actor's ``spawn`` starts them), and
        forget what is out (a partition without its probe would stay out): the next failure finds it."""
        loop = asyncio.get_running_loop()  # (a probe of a loop that is gone went with it)
        probes = [task for task in self._probes if not task.done() and task.get_loop() is loop]
        self._probes.clear()
        if self._out:
            self._out.clear()
            self._count(0)
        await cancel_and_wait(probes)

    async def _probe(self, partition: Partition) -> None:
        pause = next_pause(0.0)
        while True:
            try:
                await asyncio.sleep(pause)
                # any read in the partition's slot; for a duty that writes, with durable writes on, its
                # replicas too: a master promoted without one answers reads and refuses every durable write
                if self.writes:
                    await self.app.scripts.lua.check_writable(partition.leased)
                else:
                    await self.app.redis.exists(partition.leased)
            except asyncio.CancelledError:
                # a partition is out only while its probe runs: one ended with its loop or its
                # owner is forgotten (else it stayed out for good), and the next failure finds it
                self._out.discard(partition.index)
                raise
            except Exception as exc:  # noqa: BLE001 - any other error is an answer (see below)
                if is_outage(exc):
                    pause = next_pause(pause)
                    continue
                # it answers, with an error: back, so that the actor's own call meets the error
            break
        self._out.discard(partition.index)
        self._count(len(self._out))
        self.log.info("partition %d answers again: %s resumed there", partition.index, self.duty)
        self._on_back(partition.index)


@dataclass
class PartialRead:
    """One read across every partition (an API listing) that goes on without the partitions whose
    master does not answer, and notes them in ``unanswered``.

    ``outages`` outlives the read (the API process keeps one): a partition that failed one request
    is skipped by the next ones at once until its probe is answered, instead of each request
    waiting out the client's retries on it again.
    """

    outages: PartitionOutages
    #: the partitions this read left out
    unanswered: set[int] = field(default_factory=set)

    def skips(self, partition: Partition) -> bool:
        """Whether to leave ``partition`` out (it is out since an earlier failure, and some are not:
        with every partition out the read is tried, and fails as any read would)."""
        partitions = self.outages.app.keys.partitions
        if self.outages.is_out(partition.index) and not all(self.outages.is_out(p.index) for p in partitions):
            self.unanswered.add(partition.index)
            return True
        return False

    def failed(self, partition: Partition, exc: BaseException) -> None:
        """A read of ``partition`` failed with ``exc``: it and the partitions on its master are left out
        if it is an outage (not waited on one by one: the client's retries take a second a partition);
        raised otherwise, and when no partition is left (one server down is an error, not an empty page)."""
        if not is_outage(exc):
            raise exc
        self.unanswered.update(lost.index for lost in self.outages.failed(partition, exc))
        if len(self.unanswered) == len(self.outages.app.keys.partitions):
            raise exc


def sharing_master(app: Baton, partition: Partition) -> list[Partition]:
    """The partitions whose keys the master of ``partition`` serves: on Redis Cluster those whose slot
    that node holds (as the client last saw the slots), elsewhere every partition (one server)."""
    redis = app.redis
    nodes = getattr(redis, "nodes_manager", None)
    if nodes is None:
        return list(app.keys.partitions)

    def node_of(p: Partition) -> str | None:
        try:
            return str(nodes.get_node_from_slot(redis.keyslot(p.leased)).name)
        except Exception:  # noqa: BLE001 - a slot the client knows no node for shares nothing
            return None

    name = node_of(partition)
    if name is None:
        return [partition]
    return [p for p in app.keys.partitions if p is partition or node_of(p) == name]


async def read_partitions(partitions: Sequence[Partition], read: Callable[[Partition], Awaitable[None]],
                          partial: PartialRead | None) -> None:
    """``read`` each partition in turn; with ``partial``, one whose master does not answer is left out."""
    for partition in partitions:
        if partial is not None and partial.skips(partition):
            continue
        try:
            await read(partition)
        except Exception as exc:
            if partial is None:
                raise
            partial.failed(partition, exc)
