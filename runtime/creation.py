"""Creating runs: the part of :class:`runtime.app.Baton` every submission path ends in (one
runs_create call per partition and chunk). A mixin: it uses the app's client, keys, scripts and
outages and holds no state of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import NamedTuple, cast

from .admission import rejection
from .app_part import AppPart
from .hooks import mark_notify
from .jobs import JobOptions
from .partition_outages import PartitionOutages
from .redis_faults import is_outage
from .scripts import Claimed, CreateReply
from .submission import RunSpec
from .webhooks import WebhookProjects

__all__ = ["CREATE_CHUNK", "Created", "Creation"]

#: Runs per runs_create call when a batch is split to overlap preparing and creating.
CREATE_CHUNK = 250

class Created(NamedTuple):
    """What ``Baton.create_leasing`` returns: (id, code) per spec in order, the runs leased to the calling
    node, and per partition index it was leased runs in, what its registration has left (None: used up)."""

    results: list[tuple[str, int]]
    leased: list[Claimed]
    registration_rooms: dict[int, int | None]


class Creation(AppPart):
    """``create``, ``create_detailed`` and ``create_leasing``: validated specs to runs."""

    outages: PartitionOutages
    webhook_projects: WebhookProjects

    def lookup(self, job: str) -> JobOptions | None:
        """A job's options (the app's)."""
        raise NotImplementedError

    async def create(self, specs: list[RunSpec]) -> list[str]:
        """Create validated runs (the common end of every submission path)."""
        return [run_id for run_id, _ in await self.create_detailed(specs)]

    async def create_detailed(self, specs: list[RunSpec], raise_rejected: bool = True) -> list[tuple[str, int]]:
        """Create runs; returns (id, runs_create code) per spec, in order.

        A run refused inside runs_create (a missing parent, a full max_queued) raises
        its typed error after the call, the others being created; with ``raise_rejected``
        False its code is returned instead (negative; the id slot names the cause, see
        runtime/admission.py).
        """
        return (await self.create_leasing(specs, "", raise_rejected)).results

    async def create_leasing(self, specs: list[RunSpec], node_id: str, raise_rejected: bool = True) -> Created:
        """Create runs as ``create_detailed`` does, as node ``node_id`` ('' for none): also returns the runs
        leased to that node because it was waiting for work (runs_create), for it to start them itself."""
        specs = mark_notify(specs, self.lookup, await self.webhook_projects.current(self.redis))
        by_partition: dict[int, list[int]] = {}
        for i, spec in enumerate(specs):
            by_partition.setdefault(self.keys.partition_of_run(spec.id).index, []).append(i)
        out: list[tuple[str, int]] = [("", 0)] * len(specs)
        # large batches go out in concurrent chunks: Redis creates one chunk
        # while this process encodes the next
        chunks = [
            (index, positions[k:k + CREATE_CHUNK])
            for index, positions in by_partition.items()
            for k in range(0, len(positions), CREATE_CHUNK)
        ]
        calls = [
            self.scripts.create_leasing(self.keys.partitions[index], [specs[i].script_args() for i in positions],
                                        node_id)
            for index, positions in chunks
        ]
        if len(calls) == 1:  # (the one-run path of every trigger: no task, no extra coroutine)
            try:
                replies = [await calls[0]]
            except Exception as exc:
                self._note_outage(chunks[0][0], exc)
                raise
        else:
            replies = await self._gathered(calls, [index for index, _ in chunks])
        leased: list[Claimed] = []
        rooms: dict[int, int | None] = {}
        for (index, positions), (result, mine, room) in zip(chunks, replies, strict=True):
            if mine:
                # (chunks of one partition run in an unknown order: the least room is the one left)
                earlier = rooms.get(index, room)
                rooms[index] = None if room is None or earlier is None else min(room, earlier)
            for i, pair in zip(positions, result, strict=True):
                out[i] = pair
                if raise_rejected and pair[1] < 0 and (error := rejection(pair[1], pair[0])):
                    try:
                        raise error
                    finally:  # the error's traceback holds this frame: no cycle through a local
                        del error
            leased += mine
        return Created(out, leased, rooms)

    async def _gathered(self, calls: Sequence[Awaitable[CreateReply]], partitions: list[int]) -> list[CreateReply]:
        """The replies of concurrent runs_create calls, one per partition index in ``partitions``; the
        first error raised once all have ended."""
        replies = await asyncio.gather(*calls, return_exceptions=True)
        for index, reply in zip(partitions, replies, strict=True):
            if isinstance(reply, Exception):
                self._note_outage(index, reply)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return cast(list[CreateReply], replies)

    def _note_outage(self, index: int, exc: Exception) -> None:
        """A runs_create call in partition ``index`` failed with ``exc``: an outage is noted
        (``outages``), so the next runs with drawn ids go elsewhere."""
        if is_outage(exc):
            self.outages.failed(self.keys.partitions[index], exc)
