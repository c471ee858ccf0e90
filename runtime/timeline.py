"""A run's timeline: the events stored in its stream merged with those derived from its record.

The status changes every run goes through (a lease taken, an attempt ended, the terminal status)
are all in the run record: ``attempts`` holds each ended attempt (number, status, started_at,
finished_at, worker_id, error; the completing one is derived, see records.record_attempts),
``attempt``/``attempt_started_at``/``lease_node`` the one in
progress, ``status``/``finished_at`` the end. Writing them to the stream as well cost three XADDs
per run that almost nobody reads, so the scripts write them only for a *watched* run (record field
``tl``, set by ``run_watch`` when a live reader opens: it blocks on the stream and must wake for
them). Everything else (steps, logs, progress, checkpoints, waits, pauses ...) is stored as before.

Readers get one timeline: stored events plus derived ones, ordered by id. A derived event's id is
``<its time ms>-<DERIVED_SEQ + n>``, in the stream's own id space, so cursors (``after``, SSE's
Last-Event-ID) work across both; a derived event also stored (a watched run) is shown once.
"""

from __future__ import annotations

from typing import Any

import orjson

from .codec import text
from .keys import Partition
from .records import ATTEMPT_FIELDS, TERMINAL_STATUSES, record_attempts, stored_int, timeline_entry

__all__ = ["DERIVED_SEQ", "DERIVED_TYPES", "RECORD_FIELDS", "TIMELINE_TYPES", "Dedup", "derived_events",
           "event_id_key", "is_derived", "merge", "read_timeline", "same_event_key"]

#: Sequence numbers of derived events start here: far above any a stream gives within one ms, so a
#: derived event sorts after the stored events of its millisecond and never collides with one.
DERIVED_SEQ = 1 << 62
#: The record fields derivation reads.
RECORD_FIELDS = (*ATTEMPT_FIELDS, "lease_node")


def event_id_key(event_id: str) -> tuple[int, int]:
    """A stream id ("ms-seq", or "ms" alone) as a sortable pair; malformed ids sort first."""
    ms, _, seq = event_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return -1, -1


#: The event types derivation makes.
DERIVED_TYPES = frozenset({"status", "attempt"})
#: Every type of timeline event: those derivation makes, those the scripts write (add_event), and those
#: a handler's context writes (logs, progress, metadata, a continuation). The dashboard listens for each
#: by name; a test keeps this set, the scripts, the context and the dashboard in step.
TIMELINE_TYPES = DERIVED_TYPES | frozenset({
    "log", "progress", "metadata", "continued", "step", "checkpoint", "token", "signal", "debug_mode",
    "idempotency_reset", "pause_requested", "pause_withdrawn", "rescheduled",
})


def is_derived(event: dict[str, Any]) -> bool:
    """True for an event made from the record rather than read from the stream."""
    return event_id_key(str(event.get("id", "")))[1] >= DERIVED_SEQ


def same_event_key(event: dict[str, Any]) -> tuple[Any, ...] | None:
    """What makes a derived event and its stored copy (a watched run) the same event: type, time and
    data; None for types derivation never makes."""
    if event.get("type") not in DERIVED_TYPES:
        return None
    return event.get("type"), event.get("ts"), orjson.dumps(event.get("data"), option=orjson.OPT_SORT_KEYS)


def _event(ms: int, seq: int, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"{ms}-{DERIVED_SEQ + seq}", "type": kind, "data": data, "ts": ms}


def derived_events(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """The status and attempt events a run's record implies (``fields``: RECORD_FIELDS by name,
    values as stored), in the shape the scripts would have stored them."""
    f = {k: text(v) for k, v in fields.items() if v is not None}
    out: list[dict[str, Any]] = []
    top = 0
    for a in record_attempts(f):
        number = stored_int(a.get("number")) or 0
        top = max(top, number)
        started, finished = stored_int(a.get("started_at")), stored_int(a.get("finished_at"))
        if started is not None:
            out.append(_event(started, 4 * number, "status",
                              {"status": "executing", "attempt": number, "node": a.get("worker_id") or ""}))
        if finished is not None:
            out.append(_event(finished, 4 * number + 1, "attempt", a))
    status = f.get("status", "")
    current, started = stored_int(f.get("attempt")), stored_int(f.get("attempt_started_at"))
    if status == "executing" and current is not None and started is not None and current > top:
        top = current
        out.append(_event(started, 4 * current, "status",
                          {"status": "executing", "attempt": current, "node": f.get("lease_node", "")}))
    finished = stored_int(f.get("finished_at"))
    if status in TERMINAL_STATUSES and finished is not None:
        out.append(_event(finished, 4 * top + 2, "status", {"status": status}))
    return out


def merge(stored: list[dict[str, Any]], derived: list[dict[str, Any]], after: str = "-",
          count: int | None = None, more: bool = False) -> list[dict[str, Any]]:
    """Stored and derived events after the id ``after`` (all when "-"), in id order, each once, at
    most ``count``. ``stored`` is a slice of the stream in id order that starts no later than the
    millisecond of ``after`` (earlier events only serve to recognise a stored copy of a derived
    one); ``more`` says the stream goes on past its end, so derived events past it wait for the
    next page."""
    floor = event_id_key(after) if after != "-" else (-1, -1)
    ceiling = event_id_key(stored[-1]["id"]) if more and stored else None
    have = {key for e in stored if (key := same_event_key(e)) is not None}
    events = [e for e in stored if event_id_key(e["id"]) > floor]
    events += [e for e in derived if event_id_key(e["id"]) > floor and same_event_key(e) not in have
               and (ceiling is None or event_id_key(e["id"]) < ceiling)]
    events.sort(key=lambda e: event_id_key(e["id"]))
    return events if count is None else events[:count]


class Dedup:
    """Remembers the events a reader has sent, so that each is sent once: a stored event by its id,
    a derived one and its stored copy (a watched run) by their common key."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._keys: dict[tuple[Any, ...], bool] = {}  # key -> sent as a derived event

    def first_time(self, event: dict[str, Any]) -> bool:
        """True (and remembered) unless the event, or its copy, was seen before."""
        if event["id"] in self._ids:
            return False
        key, derived = same_event_key(event), is_derived(event)
        if key is not None and key in self._keys and (derived or self._keys[key]):
            return False
        self._ids.add(event["id"])
        if key is not None:
            self._keys[key] = self._keys.get(key, False) or derived
        return True


#: How many stored events of the cursor's own millisecond a page may re-read to recognise copies.
_SAME_MS_SLACK = 64


async def read_timeline(redis: Any, p: Partition, run_id: str, after: str = "-",
                        count: int = 1000) -> list[dict[str, Any]]:
    """The run's timeline after the id ``after`` (exclusive; "-" for all), at most ``count`` events:
    its stream and its record read in one round trip."""
    start = "-" if after == "-" else f"{max(event_id_key(after)[0], 0)}-0"
    fetch = count + (0 if after == "-" else _SAME_MS_SLACK)
    pipe = redis.pipeline(transaction=False)
    pipe.xrange(p.events(run_id), start, "+", count=fetch)
    pipe.hmget(p.run(run_id), RECORD_FIELDS)
    rows, values = await pipe.execute()
    stored = [timeline_entry(eid, fields) for eid, fields in rows]
    derived = derived_events(dict(zip(RECORD_FIELDS, values, strict=True)))
    return merge(stored, derived, after, count, more=len(rows) >= fetch)
