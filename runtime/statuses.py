"""Run statuses and attempt outcomes: the one definition every other place derives from.

Python code uses these enums and sets; the README's status list is checked
against them by a test. A status is a ``StrEnum`` member, so it compares equal
to the string stored in Redis and written by the Lua scripts.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FINISHED_BY_OUTCOME", "LIVE", "RETENTION_MARGIN_MS", "TERMINAL", "AttemptOutcome", "RunStatus"]


class RunStatus(StrEnum):
    """A run's status (Strait's vocabulary; views map it onto the other seeds')."""

    DELAYED = "delayed"  #: waiting for its start time or its retry's backoff
    QUEUED = "queued"  #: ready to be claimed
    EXECUTING = "executing"  #: leased by a node
    WAITING = "waiting"  #: in a durable wait (sleep, event, children); holds no lease
    PAUSED = "paused"  #: paused through the API; never leased until resumed
    COMPLETED = "completed"
    FAILED = "failed"  #: PermanentFailure (or a value too large to keep): not retried
    CANCELED = "canceled"
    EXPIRED = "expired"  #: its ttl passed before it started
    DEAD_LETTER = "dead_letter"  #: attempts exhausted


class AttemptOutcome(StrEnum):
    """How one attempt (one lease) of a run ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"
    RELEASED = "released"  #: given back (drain, stall) without charging the attempt
    CRASHED = "crashed"  #: its node's lease expired; counted by the node that reclaimed it
    WAITING = "waiting"  #: ended in a durable wait; not charged


#: a run that is not finished: it may still run (a cron schedule's overlap policy waits for these)
LIVE: tuple[RunStatus, ...] = (RunStatus.DELAYED, RunStatus.QUEUED, RunStatus.EXECUTING, RunStatus.WAITING,
                               RunStatus.PAUSED)
#: a run that is finished for good, in definition order; each has an index set (``st:<status>``)
TERMINAL: tuple[RunStatus, ...] = tuple(s for s in RunStatus if s not in LIVE)
#: how long a finished run's record (and its other keys) outlives its retention: trimming the status
#: index when the retention ends still finds the record's project, and takes the run out of that
#: project's index too (runtime/lua/includes/common.lua trim_index; the nodes trim every minute)
RETENTION_MARGIN_MS = 600_000
#: terminal statuses an attempt's outcome leads to (expiry happens inside the claim and promote scripts)
FINISHED_BY_OUTCOME: tuple[RunStatus, ...] = tuple(s for s in TERMINAL if s is not RunStatus.EXPIRED)
