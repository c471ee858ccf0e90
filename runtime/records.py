"""The run record as read back from Redis: Baton's native run shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from .codec import text
from .statuses import LIVE, TERMINAL
from .submission import DEFAULT_BACKOFF, DEFAULT_SOURCE, RECORD_DEFAULTS

__all__ = ["ATTEMPT_FIELDS", "LIVE_STATUSES", "SOURCE_TRIGGER", "TERMINAL_STATUSES", "Attempt", "Run", "iso",
           "record_attempts", "stored_int", "stored_json", "stored_ms", "text", "timeline_entry", "triggered_by"]

#: Statuses a run never leaves (its record then expires by retention).
TERMINAL_STATUSES = frozenset(TERMINAL)
#: Statuses of runs still in flight.
LIVE_STATUSES = frozenset(LIVE)


#: Integers read back are kept within what JSON readers represent exactly (and orjson can write), so
#: that a stored value, its differences and sums never fail to render.
_SAFE_INT = 2**53 - 1
#: Epoch milliseconds of 0001-01-01 and of the end of 9999-12-31 (what datetime can show)
_MIN_MS, _MAX_MS = -62_135_596_800_000, 253_402_300_799_999


def iso(ms: float | None) -> str | None:
    """Epoch milliseconds as an ISO-8601 UTC string; None when absent or past what a date can show
    (years 1 to 9999): a stored time must never stop its run from rendering."""
    if ms is None:
        return None
    try:
        when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stored_int(value: Any) -> int | None:
    """A stored number as an int (Lua may write "12.0"); None when absent, not a number, not finite or
    beyond +-2**53, so that old or corrupt records read back instead of raising."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number: float = value
    else:
        raw = text(value).strip()
        if not raw:
            return None
        try:
            number = int(raw)
        except ValueError:
            try:
                number = float(raw)
            except ValueError:
                return None
    if isinstance(number, float) and number != number:  # NaN
        return None
    if not -_SAFE_INT <= number <= _SAFE_INT:
        return None
    return int(number)


def stored_ms(value: Any) -> int | None:
    """A stored time (epoch ms); None unless it is one a date can show (years 1 to 9999)."""
    ms = stored_int(value)
    return ms if ms is not None and _MIN_MS <= ms <= _MAX_MS else None


def stored_json(value: Any, default: Any = None) -> Any:
    """A stored JSON text decoded; ``default`` when absent, the raw text when it is not JSON."""
    if value is None or value in ("", b""):
        return default
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return text(value)


def timeline_entry(eid: Any, fields: dict[Any, Any]) -> dict[str, Any]:
    """One entry of a run's timeline stream as {"id", "type", "data", "ts"}, decoded tolerantly."""
    f = {text(k): v for k, v in fields.items()}
    return {"id": text(eid), "type": text(f.get("type", b"")), "data": stored_json(f.get("data")),
            "ts": stored_int(f.get("ts")) or 0}


#: The record fields :func:`record_attempts` reads.
ATTEMPT_FIELDS = ("status", "attempts", "attempt", "attempt_started_at", "finished_at", "done_by", "lease_node")


def record_attempts(fields: dict[str, str]) -> list[dict[str, Any]]:
    """Every ended attempt of a run, from its record fields (text values by name).

    ``attempts`` holds each ended attempt as JSON, except the one that completed the run:
    runs_finish writes no entry for it (one attempt's JSON, ~130 bytes, would switch the
    record to Redis's hashtable encoding, four times larger) and leaves the last lease's
    ``lease_node`` in place (``done_by`` in records of earlier versions); its number, start
    and end are the record's ``attempt``, ``attempt_started_at`` and ``finished_at``. A
    completed record with neither (older runs) has them all stored.
    """
    stored = stored_json(fields.get("attempts"), [])
    attempts = [a for a in stored if isinstance(a, dict)] if isinstance(stored, list) else []
    number = stored_int(fields.get("attempt"))
    node = fields.get("done_by", fields.get("lease_node"))
    if fields.get("status") == "completed" and node is not None and number is not None \
            and all(stored_int(a.get("number")) != number for a in attempts):
        attempts.append({"number": number, "status": "completed",
                         "started_at": stored_int(fields.get("attempt_started_at")),
                         "finished_at": stored_int(fields.get("finished_at")),
                         "worker_id": node, "error": None})
    return attempts


def _latest(*values: int | None) -> int | None:
    """The latest of the times that are set (None when none is)."""
    return max((v for v in values if v is not None), default=None)


def _typed(value: Any, kind: type, default: Any) -> Any:
    """``value`` when it has the type a field needs, else ``default`` (a record written by other code)."""
    return value if isinstance(value, kind) else default


def _fraction(value: Any) -> float | None:
    """A stored jitter fraction (0..1); None when it is not one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= 1 else None


def _backoff(raw: str) -> dict[str, Any]:
    """A stored retry backoff (JSON, or the older "kind,initial,max,jitter") as kind, initial_ms, max_ms,
    jitter; the parts that do not read back are left out."""
    if raw.startswith("{"):
        given = stored_json(raw, {})
        if not isinstance(given, dict):
            return {}
        kind, initial, cap, jitter = given.get("kind"), given.get("initial_ms"), given.get("max_ms"), \
            given.get("jitter")
    else:
        parts = raw.split(",")
        if len(parts) != 4:
            return {}
        kind, initial, cap, jitter = parts
    out: dict[str, Any] = {"kind": kind if isinstance(kind, str) else None,
                           "initial_ms": stored_int(initial), "max_ms": stored_int(cap),
                           "jitter": _fraction(jitter)}
    return {k: v for k, v in out.items() if v is not None}


#: What started a run, by its source, when the submitter did not say (a child is "spawn"ed, a
#: continue_as_new run "continue"s its chain); other sources name themselves.
SOURCE_TRIGGER = {"child": "spawn", "continuation": "continue"}


def triggered_by(fields: Mapping[str, str | None]) -> str:
    """What started a run, from its record's fields (decoded): the submitter's word, else one
    derived from its source (a record stores no source for DEFAULT_SOURCE)."""
    source = fields.get("source") or DEFAULT_SOURCE
    return fields.get("triggered_by") or SOURCE_TRIGGER.get(source, source)


def _error(value: Any) -> dict[str, Any] | None:
    """An error field as the views read it: a JSON object, or any other stored value as its message."""
    if value is None or isinstance(value, dict):
        return value
    return {"message": value if isinstance(value, str) else orjson.dumps(value).decode()}


@dataclass(frozen=True)
class Attempt:
    """One lease of a run: when it started and ended, how, on which worker."""

    number: int
    status: str  #: completed | failed | timed_out | crashed | canceled | released
    started_at_ms: int | None
    finished_at_ms: int | None
    worker_id: str
    error: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "number": self.number, "status": self.status, "started_at": iso(self.started_at_ms),
            "finished_at": iso(self.finished_at_ms), "worker_id": self.worker_id, "error": self.error,
        }


@dataclass(frozen=True)
class Run:
    """One execution of a job with an input, with its whole recorded history."""

    id: str
    job: str
    queue: str
    status: str
    input: Any
    output: Any
    error: dict[str, Any] | None
    priority: int
    attempt: int  #: leases taken so far (also crashed and released ones)
    attempts_charged: int  #: attempts counted against max_attempts
    max_attempts: int
    timeout_ms: int
    labels: dict[str, str]
    tags: list[str]
    metadata: dict[str, Any]
    concurrency_key: str | None
    idempotency_key: str | None
    version: str
    source: str
    created_at_ms: int
    scheduled_at_ms: int | None
    started_at_ms: int | None
    finished_at_ms: int | None
    heartbeat_at_ms: int | None
    next_retry_at_ms: int | None
    updated_at_ms: int | None
    lease_node: str | None
    cancel_requested: bool
    replay_of: str | None
    entry_id: str | None
    attempts: list[Attempt] = field(default_factory=list)
    #: the run's retry backoff: kind, initial_ms, max_ms, jitter (the parts it has)
    backoff: dict[str, Any] = field(default_factory=dict)
    project: str = "default"  #: the project of the API key that triggered it
    #: what started it: the submitter's word (api, manual, cron, event, workflow) or one derived from source
    triggered_by: str = DEFAULT_SOURCE
    batch_id: str | None = None
    progress: dict[str, Any] | None = None  #: the last ctx.progress(...) (current, total, message)
    current_step_index: int | None = None
    completed_step_count: int = 0
    parent_id: str | None = None
    root_id: str | None = None
    lineage_depth: int = 0
    continuation_of: str | None = None
    continued_as: str | None = None
    replayed_as: str | None = None
    restart_of: str | None = None
    restarted_as: str | None = None
    debug_mode: bool = False
    pause_requested: bool = False
    paused_at_ms: int | None = None
    expires_at_ms: int | None = None  #: when a run that has not started ends expired (its ttl)
    wait_kind: str | None = None  #: sleep, event, children ... while waiting
    wait_key: str | None = None
    wait_step: str | None = None
    wait_started_at_ms: int | None = None
    attempt_started_at_ms: int | None = None  #: when the current (or last) lease was taken
    lease_expires_at_ms: int | None = None
    #: options the trigger set itself (max_attempts, timeout) rather than taking the job's
    overrides: frozenset[str] = frozenset()
    #: every stored field as text, for fields no view reads (tests and debugging)
    raw: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def wait(self) -> dict[str, str | None] | None:
        """The durable wait it is in (kind, key, step), or None."""
        return {"kind": self.wait_kind, "key": self.wait_key, "step": self.wait_step} if self.wait_kind else None

    @property
    def finished(self) -> bool:
        """True once the run is in a terminal status."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_hash(cls, h: dict[bytes, bytes] | dict[str, str], input_json: bytes | str | None = None,
                  run_id: str = "") -> Run:
        """Decode the run record HASH (and its input, stored in its own key). Every field degrades
        rather than raising (a number that is not one reads as absent, JSON that is not JSON as its
        text, a field of the wrong type as its default): a stored run is always renderable."""
        d = {text(k): text(v) for k, v in h.items()}
        if input_json is not None and "input" not in d:
            d["input"] = text(input_json)

        source = d.get("source") or DEFAULT_SOURCE
        status = d.get("status", "")
        # a finished run keeps its last lease's fields (no delete per run): they describe a
        # lease only while the run executes
        leased = status == "executing"

        def num(name: str) -> int | None:
            return stored_int(d.get(name))

        def ms(name: str) -> int | None:
            return stored_ms(d.get(name))

        def js(name: str, default: Any) -> Any:
            return stored_json(d.get(name), default)

        attempts = [
            Attempt(
                number=stored_int(a.get("number")) or 0, status=text(a.get("status") or ""),
                started_at_ms=stored_ms(a.get("started_at")), finished_at_ms=stored_ms(a.get("finished_at")),
                worker_id=text(a.get("worker_id") or ""), error=_error(a.get("error") or None),
            )
            for a in record_attempts(d)
        ]
        return cls(
            id=d.get("id") or run_id, job=d.get("job", ""), queue=d.get("queue", ""), status=status,
            input=js("input", None), output=js("output", None), error=_error(js("error", None)),
            priority=num("priority") or 0, attempt=num("attempt") or 0, attempts_charged=num("charged") or 0,
            # (a record leaves these out when they are the defaults)
            max_attempts=num("max_attempts") or RECORD_DEFAULTS.max_attempts,
            timeout_ms=num("timeout_ms") or RECORD_DEFAULTS.timeout_ms,
            labels={k: v for k, v in _typed(js("labels", {}), dict, {}).items() if isinstance(v, str)},
            tags=[t for t in _typed(js("tags", []), list, []) if isinstance(t, str)],
            metadata=_typed(js("metadata", {}), dict, {}),
            concurrency_key=d.get("concurrency_key") or None, idempotency_key=d.get("idempotency_key") or None,
            version=d.get("version", ""), source=source,
            # (records hold scheduled_at only when it is later than created_at, and no id: the key is it)
            created_at_ms=ms("created_at") or 0, scheduled_at_ms=ms("scheduled_at") or ms("created_at"),
            # the first attempt's start (records of earlier versions have it stored as started_at)
            started_at_ms=ms("started_at") or (attempts[0].started_at_ms if attempts else ms("attempt_started_at")),
            finished_at_ms=ms("finished_at"),
            # a lease's start and a completion are not written again as heartbeat_at and
            # updated_at (one field each fewer per transition): both are derived here
            heartbeat_at_ms=_latest(ms("heartbeat_at"), ms("attempt_started_at"),
                                    ms("finished_at") if status == "completed" else None),
            next_retry_at_ms=ms("next_retry_at"),
            updated_at_ms=_latest(ms("updated_at"), ms("attempt_started_at"), ms("finished_at"), ms("created_at")),
            lease_node=(d.get("lease_node") or None) if leased else None,
            cancel_requested=d.get("cancel_requested") == "1", replay_of=d.get("replay_of") or None,
            entry_id=d.get("entry_id") or None, attempts=attempts,
            backoff=_backoff(d.get("backoff") or DEFAULT_BACKOFF.encoded),  # none stored: the default
            project=d.get("project") or "default",
            triggered_by=triggered_by(d),
            batch_id=d.get("batch_id") or None,
            progress=progress if isinstance(progress := js("progress", None), dict) else None,
            current_step_index=num("current_step_index"), completed_step_count=num("completed_step_count") or 0,
            parent_id=d.get("parent_id") or None, root_id=d.get("root_id") or None,
            lineage_depth=num("lineage_depth") or 0, continuation_of=d.get("continuation_of") or None,
            continued_as=d.get("continued_as") or None, replayed_as=d.get("replayed_as") or None,
            restart_of=d.get("restart_of") or None, restarted_as=d.get("restarted_as") or None,
            debug_mode=d.get("debug_mode") == "1", pause_requested=d.get("pause_requested") == "1",
            paused_at_ms=ms("paused_at"), expires_at_ms=ms("expires_at"), wait_kind=d.get("wait_kind") or None,
            wait_key=d.get("wait_key") or None, wait_step=d.get("wait_step") or None,
            wait_started_at_ms=ms("wait_started_at"), attempt_started_at_ms=ms("attempt_started_at"),
            lease_expires_at_ms=ms("lease_expires_at") if leased else None,
            overrides=frozenset(o for o in d.get("overrides", "").split(",") if o), raw=d,
        )

    def to_dict(self) -> dict[str, Any]:
        """The native JSON shape of a run."""
        return {
            "id": self.id, "job": self.job, "queue": self.queue, "status": self.status,
            "input": self.input, "output": self.output, "error": self.error, "priority": self.priority,
            "attempt": self.attempt, "attempts_charged": self.attempts_charged,
            "max_attempts": self.max_attempts, "timeout_ms": self.timeout_ms, "labels": self.labels,
            "tags": self.tags, "metadata": self.metadata, "concurrency_key": self.concurrency_key,
            "idempotency_key": self.idempotency_key, "version": self.version, "source": self.source,
            "created_at": iso(self.created_at_ms), "scheduled_at": iso(self.scheduled_at_ms),
            "started_at": iso(self.started_at_ms), "finished_at": iso(self.finished_at_ms),
            "heartbeat_at": iso(self.heartbeat_at_ms), "next_retry_at": iso(self.next_retry_at_ms),
            "updated_at": iso(self.updated_at_ms), "lease_node": self.lease_node,
            "cancel_requested": self.cancel_requested, "replay_of": self.replay_of,
            "entry_id": self.entry_id, "attempts": [a.to_dict() for a in self.attempts],
        }


async def read_runs(redis: Any, keys: Any, run_ids: list[str]) -> list[Run | None]:
    """Read runs (record and input) in one pipelined round trip; None for missing ones."""
    if not run_ids:
        return []
    pipe = redis.pipeline(transaction=False)
    for run_id in run_ids:
        p = keys.partition_of_run(run_id)
        pipe.hgetall(p.run(run_id))
        pipe.get(p.input(run_id))
    raw = await pipe.execute()
    return [Run.from_hash(raw[2 * i], raw[2 * i + 1], run_ids[i]) if raw[2 * i] else None
            for i in range(len(run_ids))]
