"""Tasks a handler starts belong to its run, and are cancelled with it.

A handler's side effect may run in a task of its own: Python 3.11's
``asyncio.wait_for``, which redis-py and other clients use for a write,
runs the write in a new task, and a handler may start tasks itself. When the
executor cancels a run (a lost lease, a stall past it, a timeout, a cancel),
cancelling the handler's task alone does not reach such a task: it may
already be due to run, and would write first (3.11's ``wait_for`` then even
returns its result instead of the cancellation). So the node's event loop
gets a task factory that hands every task created inside a run's handler
(the run's context variable is set there) to that run's context, and the
executor cancels them together with the handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context
from typing import Any

from .run_logs import current_run

__all__ = ["adopting_tasks"]

def adopting_tasks(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Install the task factory on ``loop`` (over any factory already there, which still makes the
    tasks); returns the call that puts the previous factory back."""
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
                context: Context | None = None) -> asyncio.Future[Any]:
        if previous is not None:
            # (the stubs know no context argument; 3.11's loops pass it when a caller gave one)
            task = previous(loop, coro) if context is None else previous(loop, coro, context=context)  # type: ignore[call-arg]
        else:
            task = asyncio.Task(coro, loop=loop, context=context)
        ctx = current_run.get() if context is None else context.get(current_run)
        if ctx is not None:
            ctx.adopt(task)
        return task

    loop.set_task_factory(factory)

    def uninstall() -> None:
        if loop.get_task_factory() is factory:
            loop.set_task_factory(previous)

    return uninstall
