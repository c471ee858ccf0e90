"""How long the supervisor waits before restarting a crashed actor: doubling from RESTART_BACKOFF_S up to
RESTART_BACKOFF_MAX_S, started over after a steady life, and short while Redis is out."""

from __future__ import annotations

from runtime.redis_faults import OUTAGE_PAUSE_MAX_S

__all__ = ["RESTART_BACKOFF_MAX_S", "RESTART_BACKOFF_S", "STEADY_LIFE_S", "RestartBackoff"]

#: the delay before an actor's first restart; it doubles with each crash, up to RESTART_BACKOFF_MAX_S
RESTART_BACKOFF_S = 0.1
RESTART_BACKOFF_MAX_S = 5.0
#: a life at least this long was a recovery: the next crash starts the backoff over
STEADY_LIFE_S = 10.0


class RestartBackoff:
    """How long the supervisor waits before restarting one crashed actor."""

    def __init__(self) -> None:
        self.delay = RESTART_BACKOFF_S

    def after_crash(self, lived_s: float, outage: bool) -> float:
        """The wait before the next life, for a life of ``lived_s`` that ended in a crash
        (``outage``: on an error of a Redis that is down or failing over)."""
        if lived_s >= STEADY_LIFE_S:
            self.delay = RESTART_BACKOFF_S
        # (on an outage, at most redis_faults.OUTAGE_PAUSE_MAX_S: back at work within it of Redis)
        delay = min(self.delay, OUTAGE_PAUSE_MAX_S) if outage else self.delay
        self.delay = min(self.delay * 2, RESTART_BACKOFF_MAX_S)
        return delay
