"""Messages the actors exchange over their mailboxes (dataclasses, never changed once sent).

A question the supervisor asks carries a future: the actor that owns the
answer resolves it (a one-shot reply channel), so no actor reads another's state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .codec import digits
from .scripts import Claimed, Outcome

__all__ = [
    "AskBusy", "CancelRun", "Drain", "HandedOff", "Hold", "LeaseGranted", "LeasesRenewed", "ReleaseAll", "Released",
    "RunFinished", "Wake", "WhenIdle", "WhenReleased",
]

# The messages sent once per run (LeaseGranted, RunFinished) are slotted dataclasses that are not
# ``frozen``: a frozen one's ``__init__`` sets each field through ``object.__setattr__``, ~4x the
# cost of a plain one (~1.5 against ~0.4 us here), paid on the drain path for every run.
@dataclass(slots=True)
class LeaseGranted:
    """Leaser/receiver -> executor: run this leased run.

    ``deadline`` is the monotonic time by which the lease surely has not expired
    (taken before the call that granted it): see runtime/fencing.py.
    """

    claimed: Claimed
    deadline: float
    #: the monotonic instant of the grant, as near as the node can tell (what a handler's ``now_ms()`` counts
    #: the grant's Redis time from); None: when the call that granted it was sent (``deadline`` less the TTL)
    granted_at: float | None = None


@dataclass(frozen=True)
class LeasesRenewed:
    """Leaser -> executor: these leases were renewed; each now holds until ``deadline`` (monotonic)."""

    run_ids: tuple[str, ...]
    deadline: float


@dataclass(frozen=True)
class CancelRun:
    """Leaser/listener -> executor: stop this run's handler.

    ``reason`` is ``canceled`` (a user asked) or ``lease_lost`` (fencing: another
    node may own the run now; whatever this node reports will be rejected).
    ``job`` and ``attempt`` name the lease in log lines when known. With
    ``token``, only the attempt holding that lease is stopped: news about an
    earlier lease can arrive after the run's next attempt started on this node.
    """

    run_id: str
    reason: str
    job: str = ""
    attempt: int = 0
    token: str = ""


@dataclass(slots=True)  # (per run: not frozen, see LeaseGranted)
class RunFinished:
    """Executor -> reporter: an attempt ended; record its outcome."""

    outcome: Outcome
    partition: int
    job: str
    duration_s: float
    attempt: int = 0  #: the lease number, for log lines about the run
    #: the attempt's ``baton.finish`` span (tracing on), which the reporter ends once the outcome is written
    span: Any = None
    #: the executor found the lease lost already (counted and said): a rejection of the outcome is expected
    lost: bool = False


#: One lease of a run: (run id, lease token). Tokens alone repeat across runs (node and attempt
#: number), and run ids across attempts: a run's next attempt can be leased to a node while the
#: outcome of its last one there is still being written.
Attempt = tuple[str, str]


@dataclass(frozen=True)
class Released:
    """Reporter -> fetcher and leaser: these attempts no longer occupy a slot, nor hold a lease, on this node."""

    leases: tuple[Attempt, ...]


@dataclass(frozen=True)
class SlotsFreed:
    """Reporter -> fetcher: these attempts' handlers ended, so their slots are free; their outcomes
    are being written and their leases held until Released (the next claim need not wait for it)."""

    leases: tuple[Attempt, ...]


@dataclass(frozen=True)
class Wake:
    """Listener/leaser -> fetcher: runs became ready in a partition (or a limit freed up)."""

    partition_prefix: str


@dataclass(frozen=True)
class DueSoon:
    """Listener -> leaser: a run becomes due (delayed, or a durable wait's deadline) in ``in_ms`` ms,
    before any run the leaser's last promote knew of: it promotes then, in the partition whose key
    prefix ``partition`` is (every partition when it is None: a notice of an older node)."""

    in_ms: int
    partition: str | None = None


#: what starts a notice of a run becoming due on the wake channel (includes/common.lua, announce_work)
DUE_NOTICE = "due "


def wake_notice(payload: str) -> Wake | DueSoon:
    """What a message on the wake channel says: ``<partition prefix>`` (runs became ready there) or
    ``due <ms> <partition prefix>`` (a run becomes due there then; ``due <ms>`` from an older node).
    Anything else is taken as a wake-up (a claim too many, never a notice lost); a partition prefix
    never starts so (it is a hash tag, ``{...}``)."""
    notice = payload.removeprefix(DUE_NOTICE)
    if notice == payload:
        return Wake(payload)
    due_in, _, partition = notice.partition(" ")
    if digits(due_in) and (partition.startswith("{") or not partition):
        return DueSoon(int(due_in), partition or None)
    return Wake(payload)


@dataclass(frozen=True)
class Hold:
    """Fetcher/receiver -> leaser: this node now holds these leases; renew them until released.

    ``deadline`` is the monotonic time by which they surely have not expired (see runtime/fencing.py).
    """

    partition: int
    runs: tuple[Claimed, ...]
    deadline: float


@dataclass(frozen=True)
class HandedOff:
    """Receiver -> fetcher: runs leased to this node by runs_create while it waited
    (already given to the executor and their leases to the leaser): they occupy slots."""

    partition: int
    runs: tuple[Claimed, ...]
    #: the room the node's registration as waiting has left after this hand-off (None: it was used
    #: up, as a create of an earlier version does, or the room is not known)
    registration_room: int | None = None
    #: runs also handed over that will not start here (not confirmed by the replicas durable
    #: writes ask for): received, but occupying no slot
    forgone: int = 0


@dataclass(frozen=True)
class Drain:
    """Supervisor -> fetcher: stop claiming new runs (the leaser keeps renewing held leases).

    ``closed`` is resolved once this node is no longer handed runs and every run
    handed to it before has arrived.
    """

    closed: asyncio.Future[None]


@dataclass(frozen=True)
class WhenReleased:
    """Supervisor -> fetcher: resolve ``reply`` once no granted run is left unreported."""

    reply: asyncio.Future[None]


@dataclass(frozen=True)
class WhenIdle:
    """Supervisor -> executor: resolve ``reply`` once no handler runs and no granted run waits."""

    reply: asyncio.Future[None]


@dataclass(frozen=True)
class AskBusy:
    """Supervisor -> executor: resolve ``reply`` with the number of handlers running."""

    reply: asyncio.Future[int]


@dataclass(frozen=True)
class ReleaseAll:
    """Supervisor -> executor: grace is over; give back every unfinished run."""
