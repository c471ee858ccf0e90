"""Tasks a handler starts belong to its run, and are cancelled with it.

A handler's side effect may run in a task of its own: Python 3.11's
``asyncio.wait_for``, which redis-py and other clients use for a write,
runs the write in a new task, and a handler may start tasks itself. When the
executor cancels a run (a lost lease, a stall past it, a timeout, a cancel),
cancelling the handler's task alone does not reach such a task: it may
already be due to run, and would write first (3.11's ``wait_for`` then even
returns its result instead of the cancellation). So the node's event loop
gets a task factory that notes every task created inside a run's handler
(the run's context variable is set there) against that run's context, and
the executor cancels them together with the handler.

The exception is a write of the run's own buffered entries (``uncut``): they
have left the buffer, so a cut write would lose them, and the write is fenced
by the lease, so finishing it late is harmless.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context
from typing import TYPE_CHECKING, Any, TypeVar

from .run_logs import current_run
from .step_positions import branch_context

if TYPE_CHECKING:
    from .context import RunContext

__all__ = ["adopting_tasks", "cancel_tasks_of", "uncut"]

T = TypeVar("T")

#: the unfinished tasks each running handler started (an entry goes with its context)
_started: weakref.WeakKeyDictionary[RunContext, set[asyncio.Future[Any]]] = weakref.WeakKeyDictionary()


def cancel_tasks_of(ctx: RunContext) -> None:
    """Cancel the tasks ``ctx``'s handler started that have not ended (its run is being cancelled)."""
    for task in list(_started.get(ctx, ())):
        task.cancel()


def _adopt(ctx: RunContext, task: asyncio.Future[Any]) -> None:
    tasks = _started.get(ctx)
    if tasks is None:
        tasks = _started[ctx] = set()
    tasks.add(task)
    task.add_done_callback(tasks.discard)

def adopting_tasks(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Install the task factory on ``loop`` (over any factory already there, which still makes the
    tasks); returns the call that puts the previous factory back."""
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
                **options: Any) -> asyncio.Future[Any]:
        # options: whatever the loop's create_task passes on, to the task as they came. They differ
        # by Python and by loop (context when a caller gave one on 3.11; uvloop on 3.13 adds
        # eager_start=None to every call): a factory naming its keywords stopped the daemon at its
        # first task on 3.13
        context: Context | None = options.get("context")
        ctx = current_run.get() if context is None else context.get(current_run)
        if ctx is not None and (branch := branch_context(context, ctx.own_sequence())) is not None:
            options["context"] = branch  # (a task the handler creates: a branch of its steps, step_positions)
        if previous is not None:
            task = previous(loop, coro, **options)
        else:
            task = asyncio.Task(coro, loop=loop, **options)
        if ctx is not None:
            _adopt(ctx, task)
        return task

    loop.set_task_factory(factory)

    def uninstall() -> None:
        if loop.get_task_factory() is factory:
            loop.set_task_factory(previous)

    return uninstall


async def uncut(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` in a task of its own that no run adopts: if the caller is cancelled meanwhile
    (a handler timing out, the attempt's end), the caller ends at once and the work goes on to its
    end. Its error, once the caller is gone, is nobody's to handle: retrieved, not reported."""
    context = contextvars.copy_context()
    context.run(current_run.set, None)
    task = asyncio.get_running_loop().create_task(work, context=context)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_retrieved)
        raise


def _retrieved(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
