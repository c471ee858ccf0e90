"""The run record as read back from Redis: Baton's native run shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["LIVE_STATUSES", "TERMINAL_STATUSES", "Attempt", "Run", "iso"]

#: Statuses a run never leaves (its record then expires by retention).
TERMINAL_STATUSES = frozenset({"completed", "failed", "canceled", "dead_letter", "expired"})
#: Statuses of runs still in flight.
LIVE_STATUSES = frozenset({"queued", "delayed", "executing", "waiting"})


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO-8601 UTC string."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    raw: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def backoff(self) -> dict[str, Any]:
        """The run's retry backoff: kind, initial_ms, max_ms, jitter."""
        raw = self.raw.get("backoff") or ""
        if raw.startswith("{"):
            return dict(orjson.loads(raw))
        parts = raw.split(",")
        if len(parts) != 4:
            return {}
        return {"kind": parts[0], "initial_ms": int(float(parts[1])), "max_ms": int(float(parts[2])),
                "jitter": float(parts[3])}

    @property
    def finished(self) -> bool:
        """True once the run is in a terminal status."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_hash(cls, h: dict[bytes, bytes] | dict[str, str], input_json: bytes | str | None = None) -> Run:
        """Decode the run record HASH (and its input, stored in its own key)."""
        d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in h.items()}
        if input_json is not None and "input" not in d:
            d["input"] = input_json.decode() if isinstance(input_json, bytes) else input_json

        def num(name: str) -> int | None:
            v = d.get(name)
            return int(float(v)) if v not in (None, "") else None

        def js(name: str, default: Any) -> Any:
            v = d.get(name)
            return orjson.loads(v) if v else default

        attempts = [
            Attempt(
                number=int(a.get("number") or 0), status=a.get("status", ""),
                started_at_ms=_int_or_none(a.get("started_at")), finished_at_ms=_int_or_none(a.get("finished_at")),
                worker_id=a.get("worker_id") or "", error=a.get("error") or None,
            )
            for a in js("attempts", [])
        ]
        return cls(
            id=d["id"], job=d.get("job", ""), queue=d.get("queue", ""), status=d.get("status", ""),
            input=js("input", None), output=js("output", None), error=js("error", None),
            priority=num("priority") or 0, attempt=num("attempt") or 0, attempts_charged=num("charged") or 0,
            max_attempts=num("max_attempts") or 1, timeout_ms=num("timeout_ms") or 0,
            labels=js("labels", {}), tags=js("tags", []), metadata=js("metadata", {}),
            concurrency_key=d.get("concurrency_key") or None, idempotency_key=d.get("idempotency_key") or None,
            version=d.get("version", ""), source=d.get("source", ""),
            created_at_ms=num("created_at") or 0, scheduled_at_ms=num("scheduled_at"),
            started_at_ms=num("started_at"), finished_at_ms=num("finished_at"),
            heartbeat_at_ms=num("heartbeat_at"), next_retry_at_ms=num("next_retry_at"),
            updated_at_ms=num("updated_at") or num("created_at"), lease_node=d.get("lease_node") or None,
            cancel_requested=d.get("cancel_requested") == "1", replay_of=d.get("replay_of") or None,
            entry_id=d.get("entry_id") or None, attempts=attempts, raw=d,
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


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


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
    return [Run.from_hash(raw[2 * i], raw[2 * i + 1]) if raw[2 * i] else None for i in range(len(run_ids))]
