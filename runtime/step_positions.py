"""Step positions: where a step stands in its handler, parallel branches included.

A replayed handler must reach each step at the position it had when it was
recorded: that is how a changed handler is caught (NonDeterminism), and how the
steps Baton names itself (a sleep, a wait, a child trigger, a token) are found
again. Code that runs in sequence numbers its steps 0, 1, 2, ...

Branches that run at once (the tasks of ``asyncio.gather``, ``create_task``)
reach their steps in whatever order their awaits happen to end, and a replay,
where recorded steps return at once, reaches them in another. So each asyncio
task the handler starts numbers its own steps from an anchor: its first step's
name when the handler named that step (the branches may then start in any
order), otherwise the position that first step takes in the sequence that
started the branch (the same on replay when the branches begin their first
steps before any await, as ``gather`` starts them). The branch's later steps
are the anchor followed by 1, 2, ...; a branch's own branches nest the same way.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
from dataclasses import dataclass

import orjson

__all__ = ["Branch", "Position", "described", "position_tag", "stored_position"]

#: a step's place: ``(k,)`` for the k-th step of the handler's own sequence; longer in branches
Position = tuple[str | int, ...]

#: the branch whose steps the current asyncio task begins (a task copies its creator's at creation,
#: which is how a branch knows the sequence that started it)
_CURRENT: contextvars.ContextVar[Branch | None] = contextvars.ContextVar("baton_step_branch", default=None)


@dataclass(slots=True, eq=False)
class Branch:
    """One sequence of a run's steps: the handler's own, or one asyncio task it started."""

    #: id() of the run context whose steps these are, and of the task that begins them (ids, not the
    #: objects: a context holding its task would be a reference cycle per attempt)
    owner: int
    task: int
    #: the sequence that started this one (None for the handler's own)
    parent: Branch | None
    #: the position of its first step: () for the handler's own, None until a branch begins one
    anchor: Position | None
    taken: int = 0

    @classmethod
    def handlers_own(cls, owner: object) -> Branch:
        """The handler's own sequence, made current in the running task (when there is one): the tasks the
        handler starts copy it, and so become its branches."""
        try:
            task = asyncio.current_task()
        except RuntimeError:  # (a context built outside any event loop)
            task = None
        branch = cls(id(owner), id(task), None, ())
        if task is not None:
            _CURRENT.set(branch)
        return branch

    def current(self) -> Branch:
        """The sequence the running task's steps belong to (``self`` is the handler's own). A task the
        handler's context did not start (a batch job's handler call) takes the handler's own sequence."""
        branch = _CURRENT.get()
        if branch is None or branch.owner != self.owner:
            return self
        task = id(asyncio.current_task())
        if branch.task == task:
            return branch
        branch = Branch(self.owner, task, branch, None)
        _CURRENT.set(branch)
        return branch

    def take(self, name: str | None) -> Position:
        """The position of the step this sequence begins now (``name``: the step's, when the handler
        named it; None for the steps Baton names by position)."""
        if self.anchor is None:
            assert self.parent is not None
            in_parent = self.parent.take(None)  # (counted there even when named: later positions stay put)
            self.anchor = (name,) if name is not None else in_parent
            self.taken = 1
            return self.anchor
        position = (*self.anchor, self.taken) if self.anchor else (self.taken,)
        self.taken += 1
        return position

    def peek(self) -> Position:
        """The position the next step Baton names by position would take here (nothing is taken)."""
        if self.anchor is None:
            assert self.parent is not None
            return self.parent.peek()
        return (*self.anchor, self.taken) if self.anchor else (self.taken,)


def position_tag(position: Position) -> str:
    """The position as it appears in the names and ids derived from it: the number itself in the
    handler's own sequence (``__sleep#3``, as before branches had positions of their own), numbers
    joined by ``-`` in branches anchored by position, a digest where a step's name is part of it."""
    if all(isinstance(p, int) for p in position):
        return "-".join(str(p) for p in position)
    return "n" + hashlib.sha1(orjson.dumps(position)).hexdigest()[:16]


def stored_position(record: dict[str, object]) -> Position | None:
    """The position a step record was written at; None for records written before steps had positions
    of their own (they are matched by name only)."""
    at = record.get("at")
    return tuple(at) if isinstance(at, list) else None


def described(position: Position) -> str:
    """A position as messages name it: ``#3`` in the handler's own sequence, the list in a branch."""
    return f"#{position[0]}" if len(position) == 1 and isinstance(position[0], int) else str(list(position))
