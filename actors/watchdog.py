"""Watchdog: measures how late the event loop runs, and names what blocked it.

A handler that blocks the event loop (a plain ``time.sleep`` or CPU loop in an
``async def``) stops every actor of the node: leases are not renewed and may
expire while the node cannot even notice. The watchdog makes that visible:

- a coroutine wakes every ``TICK_S`` and exports how late it woke
  (``baton_event_loop_lag_seconds``);
- a thread watches the coroutine's heartbeat; when the loop has not beaten for
  ``STALL_S`` it samples the loop thread's stack once and finds the run whose
  handler is on it (the ``RunContext`` in a frame's locals);
- when the loop runs again the stall is logged with that run and the code
  location, and counted (``baton_event_loop_stalls_total``). Fenced work after
  such a stall confirms its lease with Redis first (runtime/fencing.py);
- a stall during which the thread did not run either is the whole process
  paused (SIGSTOP, a frozen container, a starved CPU), not code on the loop: it
  is logged as such, and blames no run (the stack the process resumed in says
  nothing of the pause).

A stall is also a lease problem: every run on the node may have lost its lease
meanwhile, and a handler suspended mid-step would send its next command the
moment the loop runs again. So the thread also hands ``on_stall`` (the
executor's) to the loop with ``call_soon_threadsafe`` while the loop is still
blocked: it is queued before anything the loop polls afterwards, and gives
back every run whose lease may have expired before their handlers resume.
Handlers that were already ready to resume in the loop's current turn run
before it, so the executor also times each step of a handler and makes the
same check right after a long one (runtime/fencing.StepTimed).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from runtime.app import Baton
from runtime.context import RunContext
from runtime.logs import run_log_context
from runtime.metrics import Metrics
from runtime.probes import Health

from .base import Actor
from .stall_release import StallRelease

__all__ = ["STALL_S", "TICK_S", "Watchdog"]

#: how often the loop's lateness is measured
TICK_S = 0.1
#: a loop this late is stalled: logged with its culprit and counted
STALL_S = 0.5


@dataclass(frozen=True)
class Culprit:
    """What was running on the loop thread during a stall."""

    where: str
    run_id: str = ""
    job: str = ""
    attempt: int = 0


class Watchdog(Actor[None]):
    """Exports event-loop lag and reports stalls with the run that caused them."""

    name = "watchdog"

    def __init__(self, app: Baton, metrics: Metrics, on_stall: Callable[[], None] | None = None,
                 health: Health | None = None, release: StallRelease | None = None) -> None:
        super().__init__()
        self.app = app
        self.metrics = metrics
        #: gives back, from the thread, the runs a handler blocking the loop holds up (actors/stall_release.py)
        self.release = release
        #: liveness reads the tick's time from here (the probe thread answers while the loop is blocked)
        self.health = health
        #: called on the loop, first thing after a stall (see the module docstring)
        self.on_stall = on_stall
        self.beat = time.monotonic()
        self.culprit: Culprit | None = None
        #: the thread's last wake, and the end of the last gap between its wakes long enough to be a pause
        self.thread_beat = time.monotonic()
        self.paused_until = float("-inf")

    async def run(self) -> None:
        """Tick until stopped, with the sampling thread beside the loop."""
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        done = threading.Event()
        # (in a copy of this context: a thread starts with none, and what it logs, and the on_stall it queues,
        # would name no node)
        sampler = threading.Thread(target=contextvars.copy_context().run, args=(self._sample, loop, loop_thread, done),
                                   name="baton-watchdog", daemon=True)
        # the thread's wakes are timed from its start: from the watchdog's making, the wait for this run()
        # (a slow start, a restart's backoff) was taken for a pause of the whole process, and a handler
        # that blocked the loop then went unblamed (its attempt given back uncharged, as after a SIGSTOP)
        self.thread_beat = time.monotonic()
        sampler.start()
        try:
            while not self.stopping.is_set():
                self.beat = time.monotonic()
                if self.health is not None:
                    self.health.loop_beat = self.beat
                due = loop.time() + TICK_S
                if not await self.sleep(TICK_S):
                    break
                lag = max(loop.time() - due, 0.0)
                self.metrics.event_loop_lag.observe(lag)
                if lag >= STALL_S:
                    self._report(lag)
        finally:
            done.set()
            if self.health is not None:  # not measured any more (a restart or the drain): not "blocked"
                self.health.loop_beat = None

    def _report(self, lag: float) -> None:
        culprit, self.culprit = self.culprit, None
        self.metrics.event_loop_stalls.inc()
        now = time.monotonic()
        # the thread did not run during the stall either (it has not run since, or a pause of its ended in it)
        if now - self.thread_beat >= STALL_S or self.paused_until >= now - lag - TICK_S:
            self.log.warning("the process was paused for %.2fs (stopped, frozen or starved of CPU: no thread of "
                             "it ran): every actor of this node waited, and leases may have expired", lag)
            return
        where = culprit.where if culprit is not None else "unknown code"
        if culprit is not None and culprit.run_id:
            with run_log_context(culprit.run_id, culprit.job, culprit.attempt):
                self.log.warning("event loop blocked for %.2fs by run %s (job %s) at %s: every actor of this "
                                 "node waited, and leases may have expired; use a plain def handler or "
                                 "asyncio.to_thread for blocking work", lag, culprit.run_id, culprit.job, where)
        else:
            self.log.warning("event loop blocked for %.2fs at %s: every actor of this node waited", lag, where)

    def _sample(self, loop: asyncio.AbstractEventLoop, loop_thread: int, done: threading.Event) -> None:
        """Thread: once per stall, sample the loop thread's stack and queue on_stall."""
        sampled_beat = 0.0
        while not done.wait(TICK_S / 2):
            now = time.monotonic()
            if now - self.thread_beat >= STALL_S:
                self.paused_until = now  # this thread was held too: the process, not the loop, was stopped
            self.thread_beat = now
            beat = self.beat
            if now - beat < STALL_S:
                continue
            if beat != sampled_beat:
                sampled_beat = beat
                if self.on_stall is not None:
                    loop.call_soon_threadsafe(self.on_stall)
                frame = sys._current_frames().get(loop_thread)
                if frame is not None:
                    self.culprit = _culprit(frame)
            # while a run's handler blocks the loop (not while the whole process was paused: this thread
            # was too, and the stack it finds says nothing of why), the other runs' leases are kept from
            # expiring into crashes
            culprit = self.culprit
            if self.release is not None and culprit is not None and culprit.run_id and self.paused_until < beat:
                self.release.blocked_by(culprit.run_id)
                if runs := self.release.due(culprit.run_id):
                    self.release.give_back(culprit.run_id, runs)


def _culprit(frame: FrameType) -> Culprit:
    """The innermost location, and the run whose context is in the nearest frame that has one."""
    where = f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
    current: FrameType | None = frame
    while current is not None:
        for value in list(current.f_locals.values()):
            if isinstance(value, RunContext):
                return Culprit(where, value.run_id, value.job, value.attempt)
        current = current.f_back
    return Culprit(where)
