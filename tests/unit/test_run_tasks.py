"""The task factory that ties the tasks a handler starts to its run (runtime/run_tasks.py).

The factory is called by the event loop's create_task, with keywords that differ by Python
version and by loop: a factory that named its keywords took 3.11's and stopped the daemon at
its first task on 3.13, where uvloop passes ``eager_start=None`` to every call. So each call
form a supported Python's loops use is made here, on both loops the runtime runs on, on any
Python this suite runs on.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from runtime.run_logs import current_run
from runtime.run_tasks import _started, adopting_tasks, cancel_tasks_of
from runtime.step_positions import Branch

#: the keywords create_task passes to a task factory (besides loop and coroutine): asyncio's on
#: 3.11 to 3.13.0, context only when one was given; asyncio's of later releases, every keyword
#: create_task was given (name included); uvloop's on 3.13, context and eager_start on every call
CALL_FORMS: list[dict[str, Any]] = [
    {},
    {"context": None},
    {"name": "a-task", "context": None},
    {"context": None, "eager_start": None},
]

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


class _Run:
    """Stands for a run's context (the factory keys its tasks by it, and numbers them in its sequence)."""

    def own_sequence(self) -> Branch:
        return Branch(id(self), ())


async def _forever() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize("loop_kind", sorted(LOOPS))
@pytest.mark.parametrize("form", CALL_FORMS, ids=lambda f: ",".join(f) or "positional")
@pytest.mark.parametrize("chained", [False, True], ids=["alone", "over-another-factory"])
def test_every_call_form_makes_a_task_of_the_run(loop_kind: str, form: dict[str, Any], chained: bool) -> None:
    if "eager_start" in form and not chained and sys.version_info < (3, 12):
        # (asyncio.Task takes eager_start from 3.12 on; no loop passes it before 3.13. The form is
        # still made here on every Python, through the factory underneath, which takes anything)
        pytest.skip("asyncio.Task has no eager_start before Python 3.12")
    loop = LOOPS[loop_kind]()
    made_by_previous: list[dict[str, Any]] = []

    def previous(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Future[Any]:
        if getattr(coro, "__name__", "") == "_forever":
            made_by_previous.append(options)
        return asyncio.Task(coro, loop=loop, context=options.get("context"))

    try:
        if chained:
            loop.set_task_factory(previous)
        uninstall = adopting_tasks(loop)
        run = _Run()

        async def main() -> asyncio.Future[Any]:
            # Given a run's handler (its context variable set) whose loop calls the factory in this form
            token = current_run.set(run)  # type: ignore[arg-type]
            try:
                factory = loop.get_task_factory()
                assert factory is not None
                task = factory(loop, _forever(), **form)
            finally:
                current_run.reset(token)
            await asyncio.sleep(0)
            return task

        task = loop.run_until_complete(main())
        # Then the task was made (by the factory underneath, with the same keywords) and is the run's
        assert isinstance(task, asyncio.Task) and not task.done()
        # (every keyword as it came but the context: the test's own task is a branch of the run, which
        # runs in a context of its own, see step_positions)
        assert [{k: v for k, v in o.items() if k != "context"} for o in made_by_previous] == \
            ([{k: v for k, v in form.items() if k != "context"}] if chained else [])
        assert all(isinstance(o["context"], contextvars.Context) for o in made_by_previous)
        assert task in _started[run]  # type: ignore[index]
        cancel_tasks_of(run)  # type: ignore[arg-type]
        loop.run_until_complete(asyncio.sleep(0))
        assert task.cancelled()
        uninstall()
        assert loop.get_task_factory() is (previous if chained else None)
    finally:
        loop.close()


@pytest.mark.parametrize("loop_kind", sorted(LOOPS))
def test_tasks_made_through_create_task_with_a_name_and_a_context_are_the_runs(loop_kind: str) -> None:
    loop = LOOPS[loop_kind]()
    try:
        adopting_tasks(loop)
        run, other = _Run(), _Run()

        async def main() -> tuple[asyncio.Task[None], asyncio.Task[None], asyncio.Task[None]]:
            token = current_run.set(run)  # type: ignore[arg-type]
            try:
                named = loop.create_task(_forever(), name="named")
                plain = asyncio.ensure_future(_forever())
            finally:
                current_run.reset(token)
            # a context given explicitly decides, not the caller's
            elsewhere = contextvars.copy_context()
            elsewhere.run(current_run.set, other)  # type: ignore[arg-type]
            given = loop.create_task(_forever(), context=elsewhere)
            await asyncio.sleep(0)
            return named, plain, given  # type: ignore[return-value]

        named, plain, given = loop.run_until_complete(main())
        assert named.get_name() == "named"
        cancel_tasks_of(run)  # type: ignore[arg-type]
        loop.run_until_complete(asyncio.sleep(0))
        assert named.cancelled() and plain.cancelled() and not given.done()
        cancel_tasks_of(other)  # type: ignore[arg-type]
        loop.run_until_complete(asyncio.sleep(0))
        assert given.cancelled()
    finally:
        loop.close()
