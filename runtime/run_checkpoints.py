"""Checkpoints: sequenced snapshots of a handler's state (``ctx.checkpoint``), which the next attempt
or a resumed run reads back (``ctx.latest_checkpoint``).

A mixin of :class:`runtime.context.RunContext`. Each checkpoint is stored with its place in the
handler: how many steps the handler had begun when it took it, and how many checkpoints it had
taken there before (``"<steps>.<nth>"``). A handler replaying code an earlier attempt ran
(``RunContext.replaying``) takes the same checkpoints at the same places, and those are not
stored again: stored, the run's newest checkpoint went back to an older state until the replay
caught up with it, and every retry added copies. Such a call returns the sequence number the
earlier checkpoint got. A place with no stored checkpoint (the earlier attempt's write failed, or
it is no longer among the kept ones) is stored as any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from .codec import text
from .context_part import ContextPart
from .errors import LeaseLost
from .limits import stored_json
from .run_tasks import uncut

__all__ = ["RunCheckpoints"]


class RunCheckpoints(ContextPart):
    """``ctx.checkpoint`` and ``ctx.latest_checkpoint``."""

    _token: str
    _write_lock: asyncio.Lock
    _next_write: Callable[[str], int]
    _flush_held: Callable[[], Coroutine[Any, Any, None]]
    #: per step position, how many checkpoints this attempt took there (made at the first: most runs
    #: take none, and a context is built on every run's pickup path)
    _checkpoints_taken: dict[str, int] | None = None
    #: while replaying: the places of the run's stored checkpoints and their sequence numbers (read once)
    _stored_places: dict[str, int] | None = None

    def _next_tag(self) -> str:
        raise NotImplementedError

    async def checkpoint(self, state: Any, source: str = "handler") -> int:
        """Store a sequenced snapshot of state; returns its sequence number. While the handler
        replays (``replaying``), the snapshot the earlier attempt stored here is not stored again:
        its sequence number is returned."""
        state_json = stored_json("the checkpoint state", state, self._app.settings, "max_checkpoint_bytes")
        position = self._next_tag()
        taken = self._checkpoints_taken
        if taken is None:
            taken = self._checkpoints_taken = {}
        nth = taken.get(position, 0)
        taken[position] = nth + 1
        place = f"{position}.{nth}"
        if self.replaying:
            stored = (await self._stored_checkpoints()).get(place)
            if stored is not None:
                return stored

        async def store() -> int:
            async with self._write_lock:
                await self._flush_held()  # (uncut: the logs it takes from the buffer are written)
                number = self._next_write("cp")
                return await self._on_lease(lambda: self._app.scripts.checkpoint(self.run_id, self._token, source,
                                                                                 state_json, number, place),
                                            "storing a checkpoint")

        seq = await uncut(store())
        if seq == -1:
            raise LeaseLost(f"run {self.run_id}: lease lost; checkpoint not stored")
        return seq

    async def latest_checkpoint(self) -> dict[str, Any] | None:
        """The newest checkpoint of this run (from any attempt), or None."""
        return await self._app.latest_checkpoint(self.run_id)

    async def _stored_checkpoints(self) -> dict[str, int]:
        """Place -> sequence number of the run's kept checkpoints (the newest for a place stored more
        than once: after a crash, code past the last recorded step is run, and checkpointed, again)."""
        if self._stored_places is None:
            key = self._app.keys.partition_of_run(self.run_id).checkpoints(self.run_id)
            rows = await self._on_lease(lambda: self._app.redis.xrange(key), "reading its checkpoints")
            places: dict[str, int] = {}
            for _, raw in rows:
                fields = {text(k): v for k, v in raw.items()}  # (as run_access reads them)
                if "at" in fields:
                    places[text(fields["at"])] = int(fields["sequence"])
            self._stored_places = places
        return self._stored_places
