"""Step positions: where a step stands in its handler, parallel branches included.

A replayed handler must reach each step at the position it had when it was
recorded: that is how a changed handler is caught (NonDeterminism), and how the
steps Baton names itself (a sleep, a wait, a child trigger, a token) are found
again. Code that runs in sequence numbers its steps 0, 1, 2, ...

Branches that run at once (the tasks of ``asyncio.gather``, ``TaskGroup``,
``create_task``) reach their steps in whatever order their awaits happen to end,
and a replay, where recorded steps return at once, reaches them in another. What
does not change is the order in which the handler's code creates those tasks. So
each task the handler creates is a branch numbered where it is created: the node's
task factory (runtime/run_tasks.py) gives it, in its context, a sequence of its
own whose anchor is the creating sequence's anchor, the function that created it
and how many branches that function had created there before. Its steps are that
anchor followed by 0, 1, 2, ... Tasks that Baton itself or a step's function
creates are not branches (a replay does not create them again).

Runs recorded before steps had positions of their own (their step records have no
``at``) keep the one sequence they had: every step numbered in the order it began.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import os
import sys
from collections.abc import Mapping
from contextvars import Context
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Branch", "Position", "branch_context", "described", "in_step", "legacy_history", "position_tag",
           "replay_marks", "stored_position"]

#: a step's place: ``(k,)`` for the k-th step of the handler's own sequence; longer in branches
Position = tuple[str | int, ...]

#: the sequence whose steps the current task begins (set in a branch's context when its task is created)
_CURRENT: contextvars.ContextVar[Branch | None] = contextvars.ContextVar("baton_step_branch", default=None)
#: set while a step's function runs: the tasks it creates are not branches (a replay does not run it)
_IN_STEP: contextvars.ContextVar[bool] = contextvars.ContextVar("baton_in_step", default=False)

#: the code whose frames do not name where a branch was created: asyncio's (gather, ensure_future, TaskGroup)
#: and this module's; Baton's own (its tasks are not branches)
_ASYNCIO = os.path.dirname(asyncio.__file__) + os.sep
_BATON = tuple(os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep + part + os.sep
               for part in ("runtime", "actors"))


@dataclass(slots=True, eq=False)
class Branch:
    """One sequence of a run's steps: the handler's own, or one task the handler created."""

    #: id() of the run context whose steps these are (an id: the context holding it is no reference cycle)
    owner: int
    #: () for the handler's own; a branch's: its creator's anchor and where the creator created it
    anchor: Position
    taken: int = 0
    #: per creating function, how many branches this sequence created there
    created: dict[str, int] | None = None
    #: why this branch's place is not the same on every execution (asyncio made it in no fixed order)
    unordered: str | None = None

    def current(self) -> Branch:
        """The sequence the running task's steps belong to (``self`` is the handler's own). A task that
        is not a branch of this run (a batch job's handler call) takes the handler's own sequence."""
        branch = _CURRENT.get()
        return branch if branch is not None and branch.owner == self.owner else self

    def take(self) -> Position:
        """The position of the step this sequence begins now."""
        position = (*self.anchor, self.taken)
        self.taken += 1
        return position

    def peek(self) -> Position:
        """The position the next step begun here would take (nothing is taken)."""
        return (*self.anchor, self.taken)

    def branch(self, site: str, unordered: str | None = None) -> Branch:
        """A new branch of this sequence, created by the function ``site`` names."""
        created = self.created if self.created is not None else {}
        self.created = created
        n = created.get(site, 0)
        created[site] = n + 1
        return Branch(self.owner, (*self.anchor, f"{site}#{n}"), unordered=unordered)


def branch_context(base: Context | None, own: Branch) -> Context | None:
    """The context a task created now in a run (``own``: its handler's own sequence) should run in: a copy
    of ``base`` (None: the current context) whose sequence is a new branch of the creating one, when the
    handler's own code (not a step's function, not Baton) creates the task; None to leave the task's
    context as it is."""
    if base.get(_IN_STEP, False) if base is not None else _IN_STEP.get():
        return None
    parent = base.get(_CURRENT) if base is not None else _CURRENT.get()
    if parent is None or parent.owner != own.owner:
        parent = own  # (the handler's own task: its context holds no sequence of the run)
    site, unordered = _creation_site()
    if site is None:
        return None
    context = base.copy() if base is not None else contextvars.copy_context()
    context.run(_CURRENT.set, parent.branch(site, unordered))
    return context


#: the frames of comprehensions (3.11's; 3.12 runs list, set and dict comprehensions in their function's frame)
_COMPREHENSIONS = ("<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>")
#: asyncio functions that make tasks of the coroutines they are given in no fixed order (from a set)
_UNORDERED = ("as_completed", "_AsCompletedIterator.__init__")


def _creation_site() -> tuple[str | None, str | None]:
    """The function that is creating a task (the innermost frame outside asyncio and Baton; None when
    Baton's own code creates it), and the asyncio function that makes it in no fixed order, if one does."""
    frame: Any = sys._getframe(2)
    unordered = None
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(_BATON):
            # Baton's own task, unless the frame is the task factory's way in (run_tasks) or this module
            if not code.co_filename.endswith(("run_tasks.py", "step_positions.py")):
                return None, None
        elif not code.co_filename.startswith(_ASYNCIO):
            # (a comprehension is a frame of its own before Python 3.12: its function names the site)
            if code.co_name not in _COMPREHENSIONS:
                return str(code.co_qualname), unordered
        elif code.co_qualname in _UNORDERED:
            unordered = f"asyncio.{code.co_name if code.co_name != '__init__' else 'as_completed'}"
        frame = frame.f_back
    return None, None


class in_step:  # noqa: N801 - used as a context manager, named as one
    """While a step's function runs: the tasks it creates are not branches."""

    def __enter__(self) -> None:
        self._token = _IN_STEP.set(True)

    def __exit__(self, *exc: object) -> None:
        _IN_STEP.reset(self._token)


def legacy_history(steps: dict[str, dict[str, Any]]) -> bool:
    """Whether a run's steps were recorded before steps had positions of their own: a record Baton's
    handler side wrote has no ``at``. (The records of waits that a message completed are written by
    Lua, which keeps no ``at``: those say nothing.)"""
    return any("at" not in r and not str(r.get("name", "")).startswith(("__wait_", "__event"))
               for r in steps.values())


def replay_marks(recorded: Mapping[Position, Any]) -> dict[Position, int]:
    """Per sequence (its anchor), the position just past its furthest recorded step."""
    marks: dict[Position, int] = {}
    for at in recorded:
        if isinstance(at[-1], int):
            marks[at[:-1]] = max(marks.get(at[:-1], 0), at[-1] + 1)
    return marks


def position_tag(position: Position) -> str:
    """The position as it appears in the names and ids derived from it: the number itself in the
    handler's own sequence (``__sleep#3``, as before branches had sequences of their own), a digest
    in a branch."""
    if len(position) == 1:
        return str(position[0])
    return "b" + hashlib.sha1(orjson.dumps(position)).hexdigest()[:16]


def stored_position(record: dict[str, Any]) -> Position | None:
    """The position a step record was written at; None for records without one (written before steps
    had positions of their own, or by Lua): they are matched by name only."""
    at = record.get("at")
    return tuple(at) if isinstance(at, list) else None


def described(position: Position) -> str:
    """A position as messages name it: ``#3`` in the handler's own sequence, the list in a branch."""
    return f"#{position[0]}" if len(position) == 1 else str(list(position))
