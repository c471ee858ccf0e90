"""What Baton's Lua operations answer, as Python reads it: the runs a claim or a hand-off leases
(Claimed, parsed by position from CLAIM_FIELDS), a create's, claim's and reap's replies, and the outcome
of an attempt that runs_finish records. runtime/scripts.py sends the calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from .codec import text

__all__ = ["CLAIM_FIELDS", "RELEASED_BECAUSE", "ClaimReply", "Claimed", "CreateReply", "Outcome", "Reaped",
           "claimed_runs", "handed_off", "handed_off_runs", "released"]

#: The fields of one claimed run in a claim reply or a hand-off push, in order; Lua places
#: each by name (the generated include claim_reply.lua), Python reads them by name.
CLAIM_FIELDS = ("run_id", "token", "attempt", "job", "input", "timeout_ms", "ready_at_ms", "metadata", "tags",
                "step_count")

class Claimed(NamedTuple):
    """A run leased to this node by runs_claim.

    A named tuple rather than a frozen dataclass: one is made per leased run on
    the drain path, and a frozen dataclass's ``__init__`` costs several times more.
    """

    run_id: str
    token: str
    attempt: int
    job: str
    input_json: bytes
    timeout_ms: int
    ready_at_ms: int
    partition: int
    claimed_at_ms: int
    metadata_json: bytes | str | None = None
    tags_json: bytes | str | None = None
    #: 1 when the run has recorded steps (a retried or resumed run), else 0
    step_count: int = 0


class CreateReply(NamedTuple):
    """What one runs_create call returns (Scripts.create_leasing)."""

    #: (id, code) per run, in order
    results: list[tuple[str, int]]
    #: the runs leased to the calling node
    claimed: list[Claimed]
    #: what the calling node's registration as waiting has left after them (None: used up)
    registration_room: int | None


@dataclass(frozen=True)
class ClaimReply:
    """What runs_claim answers (Scripts.claim_detailed)."""

    runs: list[Claimed]
    #: ms until a rate limit lets a held-back run start (-1: none held back by a rate limit)
    retry_in_ms: int
    #: the room the node registered as waiting for: 0 not registered, -1 registration left as it was
    registered_room: int


@dataclass(slots=True)
class Outcome:
    """The result of one attempt, as runs_finish records it.

    Treated as immutable, but not ``frozen``: one is made per attempt on the drain
    path, and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field)
    costs ~4x a plain one's (~1.5 against ~0.4 us here).
    """

    run_id: str
    token: str
    outcome: str  #: completed | failed | timed_out | canceled | released | waiting
    output_json: str = "null"
    error_json: str = ""
    permanent: bool = False


#: why an attempt was given back uncharged, as its record says (its error, of type Released): each way a run
#: goes back to its queue without its attempt counting
RELEASED_BECAUSE = {
    "drain": "given back: the node drained (SIGTERM or a drain request) before the handler finished",
    "stall": "given back: another run blocked the node's event loop past this run's lease",
    "outage": "given back: a write of the handler waited out a Redis outage until its lease may have expired",
    "unconfirmed": "given back before it started: no replica confirmed its lease in time (durable_replicas)",
    "late_claim": "given back before it started: the claim came back after the node's slots were taken",
}


def released(run_id: str, token: str, why: str) -> Outcome:
    """The outcome of an attempt given back uncharged, for reason ``why`` (a key of RELEASED_BECAUSE)."""
    error = orjson.dumps({"message": RELEASED_BECAUSE[why], "type": "Released"}).decode()
    return Outcome(run_id, token, "released", error_json=error)


@dataclass(frozen=True, slots=True)
class Reaped:
    """What one leases_reap call did in a partition."""

    #: (id, former node, new status) per reclaimed run
    runs: list[tuple[str, str, str]]
    #: how long no reaper had reached the partition, when this call found Redis itself had been out
    #: and began a grace (else 0)
    gap_ms: int
    #: ms left of a grace in which only leases that expired before the gap are reaped (0: none)
    grace_ms: int


def claimed_runs(flat: Sequence[Any], now: int, partition: int) -> list[Claimed]:
    """Claimed runs from a claim reply's flat list (CLAIM_FIELDS per run, see includes/claim.lua)."""
    out = []
    size = len(CLAIM_FIELDS)
    for i in range(0, len(flat), size):
        # by position, in CLAIM_FIELDS order (tests/unit/test_claim_reply.py): a dict per run
        # cost more than the rest of this together
        run_id, token, attempt, job, raw_input, timeout_ms, ready_at_ms, metadata, tags, step_count = \
            flat[i:i + size]
        out.append(Claimed(
            text(run_id), text(token), int(attempt), text(job),
            raw_input if isinstance(raw_input, bytes) else str(raw_input).encode(),
            int(timeout_ms or 0), int(ready_at_ms or now), partition, now, metadata or None, tags or None,
            int(step_count or 0),
        ))
    return out


def handed_off_runs(payload: bytes, partition: int) -> list[Claimed]:
    """The runs in one hand-off push (see ``handed_off``)."""
    return handed_off(payload, partition)[0]


def handed_off(payload: bytes, partition: int) -> tuple[list[Claimed], int | None]:
    """One hand-off push, JSON ``[now_ms, [CLAIM_FIELDS per run], room]`` (includes/claim.lua): its runs,
    and the room the node's registration has left after it. The room is there only when the
    registration was kept (a node of this version registered); without it (None) the push used the
    registration up, and the node must register again to be handed more runs."""
    entry = orjson.loads(payload)
    now, flat = entry[0], entry[1]
    # JSON has no nil inside arrays: Lua's false stands for a missing field
    runs = claimed_runs([None if v is False else v for v in flat], int(now), partition)
    return runs, int(entry[2]) if len(entry) > 2 else None
