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

__all__ = ["MARGIN_FRACTION", "LeaseClock", "handed_deadline", "lease_margin_s"]

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


class LeaseClock:
    """The monotonic time by which one lease surely has not expired yet."""

    __slots__ = ("deadline", "margin_s")

    def __init__(self, deadline: float, margin_s: float) -> None:
        self.deadline = deadline
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
