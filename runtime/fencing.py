"""What a node knows of its own leases' expiry, by the monotonic clock.

Every write a worker makes is fenced in Lua by the lease token, but a side
effect outside Redis (a step function charging a card) cannot be fenced
there. So before such work starts (a step function, a child trigger, a
handler's start) the node checks its lease: while the lease surely has time
left by this node's monotonic clock, work goes ahead at no cost; once it may
have expired (the deadline is within the margin, or already past, as after an
event-loop stall or a SIGSTOP longer than the time left) one renewal call asks
Redis, and the work starts only if the lease still holds.

The deadline is conservative: it is taken before the call that granted or
renewed the lease, so the real expiry (judged by the Redis clock) is later.
A lease a node is handed (runs_create pushes it to the node's hand-off list)
may have been granted before the pop that takes it started (the node was busy,
its receiver restarting, Redis restarting): its deadline is judged from the
grant time and the Redis clock the pop saw (``handed_deadline``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["MARGIN_FRACTION", "LeaseClock", "StepTimed", "handed_deadline", "handed_granted_at", "lease_margin_s",
           "long_step_s"]

T = TypeVar("T")

#: the part of the lease TTL kept as a safety margin before fenced work starts
MARGIN_FRACTION = 0.25


def lease_margin_s(lease_ttl_ms: int) -> float:
    """Seconds of lease that must be left for fenced work to start without asking Redis."""
    return lease_ttl_ms * MARGIN_FRACTION / 1000


def handed_deadline(sent: float, clock_ms: int, granted_ms: int, lease_ttl_ms: int) -> float:
    """The monotonic time by which a handed-over lease surely has not expired.

    The lease was granted at ``granted_ms`` and expires ``lease_ttl_ms`` later,
    both by the Redis clock; the call that took it was sent at monotonic
    ``sent`` and saw the Redis clock at ``clock_ms`` before it ran, so Redis's
    clock reads at most ``clock_ms + (t - sent)`` at any later monotonic ``t``.
    A lease granted while the call waited (``granted_ms >= clock_ms``) holds at
    least until ``sent`` plus the TTL, as for a call that grants one.
    """
    left_ms = min(granted_ms + lease_ttl_ms - clock_ms, lease_ttl_ms)
    return sent + left_ms / 1000


def handed_granted_at(sent: float, clock_ms: int, granted_ms: int) -> float:
    """The monotonic instant a handed-over lease was granted, as near as the pop can tell: the Redis
    clock read ``clock_ms`` as the pop sent at ``sent`` ran, and the grant came ``granted_ms`` less that
    later (or earlier, for a lease waiting in the list before the pop). A best estimate, unlike
    handed_deadline's bound (which counts a lease granted while the pop waited from the pop's start)."""
    return sent + (granted_ms - clock_ms) / 1000


def long_step_s(lease_ttl_ms: int) -> float:
    """A coroutine step that held the event loop this long may have outlived a lease's margin
    together with a few like it: the leases are looked at before anything else runs."""
    return min(0.02, lease_margin_s(lease_ttl_ms) / 4)


class StepTimed(Generic[T]):
    """Awaits a coroutine one step at a time; after a step that held the event loop for
    ``threshold_s`` or more, ``after_long_step`` is called before the loop runs anything else.

    The watchdog's thread notices a blocked loop and queues the executor's
    check of every lease behind it, but the loop runs the callbacks that were
    already ready first: a handler that passed its lease check just before
    another handler blocked the loop for longer than the lease, and is only
    waiting for its turn to send, would send then. Timed here, the blocking
    handler's own step ends with the check, ahead of them. (Code outside the
    handlers that blocks, a long collection pass say, is left to the watchdog.)
    """

    __slots__ = ("_after_long_step", "_coro", "_threshold_s")

    def __init__(self, coro: Coroutine[Any, Any, T], after_long_step: Callable[[], None], threshold_s: float) -> None:
        self._coro = coro
        self._after_long_step = after_long_step
        self._threshold_s = threshold_s

    def __await__(self) -> Generator[Any, Any, T]:
        coro = self._coro
        value: Any = None
        error: BaseException | None = None
        while True:
            began = time.monotonic()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                self._timed(began)
                return done.value  # type: ignore[no-any-return]
            except BaseException:
                self._timed(began)
                raise
            self._timed(began)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - passed on: a cancellation thrown in by the task
                value, error = None, exc

    def _timed(self, began: float) -> None:
        if time.monotonic() - began >= self._threshold_s:
            self._after_long_step()


class LeaseClock:
    """The monotonic time by which one lease surely has not expired yet."""

    __slots__ = ("deadline", "granted_at", "margin_s")

    def __init__(self, deadline: float, margin_s: float, granted_at: float | None = None) -> None:
        self.deadline = deadline
        #: the monotonic instant the lease was granted, as near as the node can tell (None: unknown); unlike
        #: ``deadline`` a best estimate, not a bound
        self.granted_at = granted_at
        self.margin_s = margin_s

    def extend(self, deadline: float) -> None:
        """A renewal (started at ``deadline - ttl``) succeeded."""
        if deadline > self.deadline:
            self.deadline = deadline

    def time_left(self) -> float:
        """Seconds until the lease may expire (negative once it may have)."""
        return self.deadline - time.monotonic()

    def needs_confirmation(self) -> bool:
        """True when fenced work must first confirm the lease with Redis."""
        return self.time_left() < self.margin_s
