"""What the engine knows of a run's relatives: its continuation chain and what it waits on.

The HTTP API renders these (lineage, dependency status); the CLI and a
dashboard can call them the same way. Every function takes ``same_project``,
so a caller scoped to one project never sees another project's runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .codec import text
from .records import Run, stored_int

if TYPE_CHECKING:
    from .app import Baton

__all__ = ["MAX_CHILDREN", "MAX_LINEAGE", "Waits", "lineage", "project_of", "waits_of"]

#: most runs a lineage chain holds (a continuation loop cannot make it unbounded)
MAX_LINEAGE = 100
#: most children read for one run
MAX_CHILDREN = 1000


def project_of(run: Run) -> str:
    """The project a run belongs to."""
    return run.project


async def lineage(baton: Baton, run: Run, same_project: Callable[[Run], bool]) -> list[Run]:
    """The run's continuation chain, oldest first (``continuation_of`` back, ``continued_as`` forward)."""
    chain = [run]
    seen = {run.id}
    for link, at_front in (("continuation_of", True), ("continued_as", False)):
        current = run
        while (next_id := getattr(current, link)) and len(chain) < MAX_LINEAGE:
            other = await baton.get_run(next_id)
            if other is None or other.id in seen or not same_project(other):
                break
            chain.insert(0, other) if at_front else chain.append(other)
            seen.add(other.id)
            current = other
    return chain


@dataclass(frozen=True)
class Waits:
    """What a waiting run waits for: children (by id), an event key or a time."""

    kind: str | None = None
    key: str | None = None
    #: epoch ms the wait ends at (its timeout, or the sleep's end); None when unbounded
    until_ms: int | None = None
    #: ids of the children it still waits for
    children: list[str] = field(default_factory=list)
    started_ms: int | None = None


async def waits_of(baton: Baton, run: Run) -> Waits:
    """The durable wait a run is in (an empty Waits when it is not waiting)."""
    if run.status != "waiting":
        return Waits()
    p = baton.keys.partition_of_run(run.id)
    children = sorted(text(m) for m in await baton.redis.smembers(p.waits_on(run.id)))
    score = await baton.redis.zscore(p.waiting, run.id)
    until = stored_int(score) if score is not None and score < 1e15 else None
    return Waits(kind=run.wait_kind, key=run.wait_key, until_ms=until, children=children,
                 started_ms=run.wait_started_at_ms)
