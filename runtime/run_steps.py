"""The steps of a run's context: beginning one (its name and position, checked against the recorded
history), running its function, and what becomes of the branches a handler leaves running when it ends
(see runtime/step_positions.py for the positions of steps in parallel branches)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from .context_part import ContextPart
from .errors import DuplicateStep, NonDeterminism
from .limits import stored_json
from .run_tasks import cancel_tasks_of
from .step_positions import Branch, Position, described, in_step, position_tag, stored_position

if TYPE_CHECKING:
    from .context import RunContext

__all__ = ["RunSteps"]


class RunSteps(ContextPart):
    """``ctx.step`` and ``ctx.step_fn``, and the beginning of every step Baton names itself."""

    _next_index: int
    _names_used: set[str]
    _steps: dict[str, dict[str, Any]]
    # (what a run with no recorded steps has: most runs; a context replaces them when it has some)
    #: the recorded steps by position (records written before positions were stored have none)
    _by_position: Mapping[Position, dict[str, Any]] = MappingProxyType({})
    #: per branch (its anchor): the position just past its furthest recorded step
    _replay_marks: Mapping[Position, int] = MappingProxyType({})
    #: a run recorded before branches had sequences of their own keeps one sequence (step_positions)
    _legacy = False
    #: the handler's own sequence of steps (made at the first step or task: most runs have neither)
    _own: Branch | None = None
    #: the position of each step begun, by name (made at the first)
    _positions: dict[str, Position] | None = None
    _current_step: str | None
    #: how many steps' functions are running (in any branch), and, once the handler has ended, the
    #: event of their end (see end_branches)
    _steps_running = 0
    _ending = False
    _steps_done: asyncio.Event | None = None

    async def confirm_lease(self, work: str) -> None:
        raise NotImplementedError

    def _span(self, name: str, attributes: dict[str, Any]) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    async def _record(self, name: str, index: int, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def own_sequence(self) -> Branch:
        """The handler's own sequence of steps; the tasks it creates number theirs apart (step_positions)."""
        own = self._own
        if own is None:
            own = self._own = Branch(id(self), ())
        return own

    def _position_of(self, name: str) -> Position:
        """The position of a step this attempt began."""
        assert self._positions is not None, name
        return self._positions[name]

    def _in_sequence(self) -> Branch:
        """The sequence the running task's steps belong to."""
        return self.own_sequence().current()

    def _begin(self, name: str) -> tuple[int, dict[str, Any] | None]:
        """Begin the step the handler named ``name``: its index (the order steps began in) and its record."""
        return self._begin_at(name, self._reserve())

    def _reserve(self) -> Position:
        """Take the position of the step the running task begins now (reserved by a step Baton names
        before its own awaits, then given to ``_begin_auto``)."""
        if self._legacy:  # (a run recorded before branches had sequences: the one it had)
            return (self._next_index,)
        branch = self._in_sequence()
        if branch.unordered:
            raise NonDeterminism(
                f"run {self.run_id}: a task that {branch.unordered} made of a coroutine began a step; it makes "
                "those tasks in no fixed order, so a replay could not find their steps again: create the tasks "
                "first ([asyncio.create_task(c) for c in coroutines]) and give it those")
        return branch.take()

    def _begin_auto(self, prefix: str, position: Position | None = None) -> tuple[str, int, str, dict[str, Any] | None]:
        """Begin a step Baton names by its position (a sleep, a wait, a child trigger; ``position`` when
        reserved): its name, index, position tag (what the ids it derives name) and record."""
        if position is None:
            position = self._reserve()
        tag = position_tag(position)
        name = f"{prefix}#{tag}"
        index, record = self._begin_at(name, position)
        return name, index, tag, record

    def _next_tag(self) -> str:
        """The position tag of the next step the running task would begin."""
        if self._legacy:
            return str(self._next_index)
        return position_tag(self._in_sequence().peek())

    def _begin_at(self, name: str, position: Position) -> tuple[int, dict[str, Any] | None]:
        if self._ending:
            # the handler has ended: a branch it left running begins no more (the attempt's end cancels it)
            raise asyncio.CancelledError()
        index = self._next_index
        self._next_index += 1
        if name in self._names_used:
            raise DuplicateStep(f"step name {name!r} used twice in run {self.run_id}; step names must be unique")
        self._names_used.add(name)
        there = self._by_position.get(position)
        if there is not None and there.get("name") != name:
            raise NonDeterminism(
                f"run {self.run_id}: step {described(position)} is {name!r} now but was {there.get('name')!r} "
                "when recorded; the handler must reach its steps in the same order on every execution"
            )
        record = self._steps.get(name)
        recorded_at = stored_position(record) if record is not None else None
        if recorded_at is not None and recorded_at != position:
            raise NonDeterminism(
                f"run {self.run_id}: step {name!r} is step {described(position)} now but was "
                f"{described(recorded_at)} when recorded"
            )
        if self._positions is None:
            self._positions = {}
        self._positions[name] = position
        return index, record

    async def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` once for this run and return its result.

        A completed step is never executed again for the run: later executions
        (retries, reclaims, resumes) get the recorded output. ``fn`` may be
        async or plain (plain functions run in a thread). A step that raises is
        recorded failed and the exception propagates (a retry runs it again).
        """
        index, record = self._begin(name)
        if record is not None and record.get("status") == "completed":
            with self._span(f"baton.step {name}", {"baton.step.index": index, "baton.step.replayed": True}):
                return record.get("output")
        with self._span(f"baton.step {name}", {"baton.step.index": index, "baton.step.replayed": False}):
            return await self._run_step(name, index, fn, *args, **kwargs)

    async def _run_step(self, name: str, index: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        await self.confirm_lease(f"step {name!r}")
        if self._ending:  # (it ended while the lease was confirmed: as in _begin_at)
            raise asyncio.CancelledError()
        self._steps_running += 1
        try:
            return await self._execute_step(name, index, fn, *args, **kwargs)
        finally:
            self._steps_running -= 1
            if self._steps_done is not None and not self._steps_running:
                self._steps_done.set()

    def end_branches(self, wait: bool = True) -> Coroutine[Any, Any, None] | None:
        """The handler has ended: the tasks it started and left running (the other branches of an
        ``asyncio.gather`` one of which raised or began a durable wait) end with the attempt. The steps they
        are executing finish and are recorded first (``wait``; cut short, they would run again on the
        next attempt), and they begin no more; then the tasks are cancelled. What to await for the steps
        to finish, when some are running (most attempts have none: nothing to await)."""
        self._ending = True
        if wait and self._steps_running:
            self._steps_done = asyncio.Event()
            return self._settle()
        cancel_tasks_of(cast("RunContext", self))
        return None

    async def _settle(self) -> None:
        assert self._steps_done is not None
        await self._steps_done.wait()
        cancel_tasks_of(cast("RunContext", self))

    async def _execute_step(self, name: str, index: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = self.now_ms()
        self._current_step = name
        try:
            with in_step():  # (the tasks the function creates are not the handler's branches)
                if inspect.iscoroutinefunction(fn):
                    result = await fn(*args, **kwargs)
                else:
                    result = await asyncio.to_thread(contextvars.copy_context().run, fn, *args, **kwargs)
                    if inspect.isawaitable(result):
                        result = await result
        except Exception as exc:
            await self._record(name, index, {
                "name": name, "index": index, "status": "failed", "output": None,
                # an exception's text is the handler's too: cut to what fits a record in any encoding
                "error": f"{type(exc).__name__}: {exc}"[: self._app.settings.max_record_bytes // 4],
                "started_at": started, "completed_at": self.now_ms(),
            })
            raise
        finally:
            self._current_step = None
        stored_json(f"the output of step {name!r}", result, self._app.settings, "max_output_bytes")
        await self._record(name, index, {
            "name": name, "index": index, "status": "completed", "output": result, "error": None,
            "started_at": started, "completed_at": self.now_ms(),
        })
        return result

    def step_fn(self, name: str) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """Decorator form: ``@ctx.step_fn("charge")`` then ``await charge(...)`` runs as a step."""

        def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def run(*args: Any, **kwargs: Any) -> Any:
                return await self.step(name, fn, *args, **kwargs)

            return run

        return wrap
