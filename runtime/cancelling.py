"""Ending tasks by cancellation when a library under them may swallow the cancellation.

redis-py (8.1, at least) can swallow a ``CancelledError``: in a transaction or cluster
pipeline while a master fails over, the task goes on as if never cancelled. Whatever
then awaits it after one ``cancel()`` (an actor's end, a drain) waits for ever. Every
place that cancels tasks and waits for them goes through :func:`cancel_and_wait`,
which cancels again whatever is still running every :data:`RECANCEL_S`.

Python 3.11's ``asyncio.wait_for`` loses a cancellation that comes as what it waits
for completes (it returns the result instead): a loop cancelled that way goes on, and
whatever awaits it waits for ever (the chaos stage's teardown did, on a sample read).
Baton's code waits with ``asyncio.timeout`` instead, and :func:`set_within` for an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["RECANCEL_S", "cancel_and_wait", "set_within"]

#: how long cancelled tasks get to end before those still running are cancelled again
RECANCEL_S = 1.0


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again, every
    RECANCEL_S, those that swallowed the cancellation. Their errors are retrieved, not raised
    (they ended because they were told to); a cancellation of the caller goes on as usual."""
    every = list(tasks)
    pending = {task for task in every if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
    for task in every:
        if not task.cancelled():
            task.exception()  # (retrieved: asyncio would log it as never retrieved)


async def set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; whether it is set. (Not ``asyncio.wait_for``: see above.)"""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
