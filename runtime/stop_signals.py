"""SIGTERM and SIGINT for the whole life of a ``baton`` process, from its first line to its exit.

A process that installs its handlers only once it is up is killed outright by a
SIGTERM that comes sooner: Kubernetes stops a pod whose Redis is not reachable
yet, or one that is still starting. Killed so, a worker exited 143 instead of 0,
and left its embedded server running. A :class:`StopSignals` is made first thing:
until the event loop runs it remembers a SIGTERM (SIGINT keeps raising
KeyboardInterrupt, which runs every cleanup); once the loop runs, :meth:`attach`
routes both signals to the process's own stop, at once if one came already.
What a process awaits before it serves goes through :func:`unless_stopped`, so a
stop does not wait for it either.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TypeVar

__all__ = ["StopSignals", "unless_stopped"]

T = TypeVar("T")

#: what asks a process to stop: Kubernetes and init systems send SIGTERM, a terminal SIGINT
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Remembers a SIGTERM until the event loop runs, then hands every stop signal to ``attach``'s stop."""

    def __init__(self) -> None:
        self.requested = False
        try:
            signal.signal(signal.SIGTERM, self._remember)
        except ValueError:  # not the main thread (tests): the default action stays
            pass

    def _remember(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def attach(self, stop: Callable[[], None]) -> None:
        """From now on SIGTERM and SIGINT call ``stop`` on the running loop; it is called at once when
        a SIGTERM came before."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, stop)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
                pass
        if self.requested:
            stop()


async def unless_stopped(work: Awaitable[T], stopping: asyncio.Event) -> asyncio.Future[T] | None:
    """Await ``work`` unless ``stopping`` is set first: then ``work`` is cancelled and None returned,
    else its finished future (``result()`` gives its value or raises its error).

    What a process does before it serves may wait on a Redis that is not reachable: on a black-holed
    server, the client's connect timeout times its retries, longer than Kubernetes waits after SIGTERM.
    """
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return task if not task.cancelled() else None
