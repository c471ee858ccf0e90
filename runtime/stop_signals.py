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

Once stopping, a worker is gone within STOP_AFTER_GRACE_S after its grace: its
drain has DRAIN_HAND_BACK_S past the grace (actors/supervisor.py), and
:func:`exit_deadline` ends the process EXIT_ALLOWANCE_S after that if anything
still holds it (a handler that ignores cancellation kept it alive for good).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TypeVar

from .cancelling import cancel_and_wait

__all__ = ["DRAIN_HAND_BACK_S", "EXIT_ALLOWANCE_S", "HARD_EXIT_CODE", "STOP_AFTER_GRACE_S", "StopSignals",
           "exit_deadline", "unless_stopped"]

logger = logging.getLogger("baton.worker")

#: the exit code of a process that did not end by its deadline (runtime/worker.py)
HARD_EXIT_CODE = 1
#: how long a drain may go on past shutdown_grace_s (handlers cancelled, runs given back, the node's
#: record removed) before the node exits without finishing it: with a black-holed Redis each write
#: waited its socket timeout times its retries, and a drain with a 5 s grace took ~3 minutes, far past
#: the kubelet's SIGKILL. What it did not give back, its leases' expiry gives to other nodes.
DRAIN_HAND_BACK_S = 7.0
#: how long a stopping worker may take past its drain's deadline before it exits regardless (ending
#: its actors, closing its connections, the event loop's own end, which waits for every task)
EXIT_ALLOWANCE_S = 2.0
#: a worker's process is gone at most this long after shutdown_grace_s, whatever Redis and handlers do
STOP_AFTER_GRACE_S = DRAIN_HAND_BACK_S + EXIT_ALLOWANCE_S

T = TypeVar("T")

#: what asks a process to stop: Kubernetes and init systems send SIGTERM, a terminal SIGINT
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Remembers a SIGTERM until the event loop runs, then hands every stop signal to ``attach``'s stop.

    Once attached, a signal also calls ``on_signal`` at once, from the signal handler itself: Python runs
    it between two bytecodes of the main thread, even while a handler blocks the event loop (a
    ``time.sleep`` in an ``async def``), where the loop's own stop would wait for the loop."""

    def __init__(self) -> None:
        self.requested = False
        try:
            signal.signal(signal.SIGTERM, self._remember)
        except ValueError:  # not the main thread (tests): the default action stays
            pass

    def _remember(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def attach(self, stop: Callable[[], None], on_signal: Callable[[], None] | None = None) -> None:
        """From now on SIGTERM and SIGINT call ``stop`` on the running loop (and ``on_signal`` at once); both
        are called now when a SIGTERM came before."""
        loop = asyncio.get_running_loop()

        def received(signum: int, frame: FrameType | None) -> None:
            if on_signal is not None:
                on_signal()
            loop.call_soon_threadsafe(stop)

        for sig in STOP_SIGNALS:
            try:
                signal.signal(sig, received)
            except ValueError:  # not the main thread (tests)
                pass
        if self.requested:
            received(signal.SIGTERM, None)


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
        await cancel_and_wait([task])
    return task if not task.cancelled() else None


def exit_deadline(seconds: float, before_exit: Callable[[], None] | None = None) -> threading.Timer:
    """A started timer that ends the process with HARD_EXIT_CODE ``seconds`` from now, unless cancelled.

    A thread, not the event loop: it fires whatever the loop does (a handler blocking it, a task that
    will not end when cancelled), so a stopping process is gone before Kubernetes' SIGKILL, having said
    why. ``before_exit`` runs first (the embedded server is stopped so).
    """
    def hard_exit() -> None:
        logger.error("the process did not end %.0fs after it was asked to stop: exiting now (code %d)",
                     seconds, HARD_EXIT_CODE)
        try:
            if before_exit is not None:
                before_exit()
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(HARD_EXIT_CODE)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True
    timer.start()
    return timer
