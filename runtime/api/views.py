"""Views: a native run rendered in Baton's own shape or in one of the seed systems' shapes.

Baton's native run is a superset of the four seed shapes; each view keeps the
seed's field names, types and status vocabulary:

===========  =========  ==========  =====================  =========  ==========
native       durably    strait      trigger                hatchet    notes
===========  =========  ==========  =====================  =========  ==========
delayed      pending    delayed     DELAYED / REATTEMPTING QUEUED     REATTEMPTING when a retry waits
queued       pending    queued      QUEUED                 QUEUED
executing    leased     executing   EXECUTING              RUNNING
waiting      pending    waiting     WAITING_TO_RESUME      RUNNING    durable wait (sleep, event, children)
paused       pending    waiting     WAITING_TO_RESUME      QUEUED     no seed has "paused"
completed    completed  completed   COMPLETED_SUCCESSFULLY COMPLETED
failed       failed     failed      COMPLETED_WITH_ERRORS  FAILED     PermanentFailure
dead_letter  failed     dead_letter CRASHED / TIMED_OUT /  FAILED     by the last attempt's status
                                    COMPLETED_WITH_ERRORS
canceled     cancelled  canceled    CANCELLED              CANCELLED
expired      failed     expired     EXPIRED                FAILED     TTL passed before start
===========  =========  ==========  =====================  =========  ==========

Attempt statuses (trigger view): completed -> COMPLETED, failed / timed_out /
crashed -> FAILED, canceled -> CANCELED, waiting / released -> PAUSED.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..records import Run, iso, stored_int, stored_json
from ..statuses import RunStatus

__all__ = [
    "VIEWS",
    "event_view",
    "native_run",
    "render",
    "status_durably",
    "status_hatchet",
    "status_strait",
    "status_trigger",
]

VIEWS = ("native", "durably", "trigger", "hatchet", "strait")

#: uuid5 namespace of the ids the hatchet view derives (tenant, workflow, version, long run ids)
_NS = uuid.UUID("6f1c1f1e-3b3c-4f39-9d62-0b8a7c1b2a90")

_DURABLY = {"delayed": "pending", "queued": "pending", "waiting": "pending", "paused": "pending",
            "executing": "leased", "completed": "completed", "failed": "failed", "dead_letter": "failed",
            "expired": "failed", "canceled": "cancelled"}
_HATCHET = {"delayed": "QUEUED", "queued": "QUEUED", "paused": "QUEUED", "executing": "RUNNING",
            "waiting": "RUNNING", "completed": "COMPLETED", "failed": "FAILED", "dead_letter": "FAILED",
            "expired": "FAILED", "canceled": "CANCELLED"}
_TRIGGER = {"queued": "QUEUED", "executing": "EXECUTING", "waiting": "WAITING_TO_RESUME",
            "paused": "WAITING_TO_RESUME", "delayed": "DELAYED", "completed": "COMPLETED_SUCCESSFULLY",
            "failed": "COMPLETED_WITH_ERRORS", "canceled": "CANCELLED", "expired": "EXPIRED"}
_TRIGGER_ATTEMPT = {"completed": "COMPLETED", "failed": "FAILED", "timed_out": "FAILED", "crashed": "FAILED",
                    "canceled": "CANCELED", "waiting": "PAUSED", "released": "PAUSED"}
#: Strait's run status vocabulary (seed 003)
STRAIT_STATUSES = ("delayed", "queued", "dequeued", "executing", "waiting", "completed", "failed", "timed_out",
                   "crashed", "system_failed", "canceled", "expired", "dead_letter")
#: Baton's native statuses
NATIVE_STATUSES = tuple(str(s) for s in RunStatus)
_SOURCE_TRIGGER = {"child": "spawn", "continuation": "continue", "client": "client", "stream": "stream",
                   "replay": "replay", "restart": "restart", "cron": "cron"}


def _int(raw: dict[str, str], name: str) -> int | None:
    return stored_int(raw.get(name))


def _json(raw: dict[str, str], name: str) -> Any:
    return stored_json(raw.get(name))


def user_idempotency_key(run: Run) -> str | None:
    """The idempotency key as the submitter gave it (API keys of a project are stored scoped)."""
    key = run.idempotency_key
    project = run.raw.get("project") or "default"
    if key and project != "default" and key.startswith(f"{project}/"):
        return key[len(project) + 1:]
    return key


def status_durably(status: str) -> str:
    """durably's RunStatus for a native status."""
    return _DURABLY.get(status, "pending")


def status_hatchet(status: str) -> str:
    """Hatchet's V1TaskStatus for a native status."""
    return _HATCHET.get(status, "QUEUED")


def status_strait(status: str) -> str:
    """Strait's status (Baton's vocabulary, but Strait has no "paused": it reads as waiting)."""
    return "waiting" if status == "paused" else status if status in STRAIT_STATUSES else "queued"


def status_trigger(run: Run) -> str:
    """Trigger.dev's run status for a native run."""
    if run.status == "dead_letter":
        last = run.attempts[-1].status if run.attempts else ""
        return {"crashed": "CRASHED", "timed_out": "TIMED_OUT"}.get(last, "COMPLETED_WITH_ERRORS")
    if run.status == "delayed" and run.attempt > 0:
        return "REATTEMPTING"
    return _TRIGGER.get(run.status, "QUEUED")


def native_run(run: Run) -> dict[str, Any]:
    """Baton's native shape: the record with every field the seeds need, times in ISO-8601."""
    raw = run.raw
    out = run.to_dict()
    wait = None
    if raw.get("wait_kind"):
        wait = {"kind": raw["wait_kind"], "key": raw.get("wait_key"), "step": raw.get("wait_step")}
    out.update({
        "project": raw.get("project") or "default",
        "idempotency_key": user_idempotency_key(run),
        "triggered_by": raw.get("triggered_by") or _SOURCE_TRIGGER.get(run.source, run.source or "client"),
        "batch_id": raw.get("batch_id") or None,
        "progress": progress if isinstance(progress := _json(raw, "progress"), dict) else None,
        "current_step_index": _int(raw, "current_step_index"),
        "completed_step_count": _int(raw, "completed_step_count") or 0,
        "parent_id": raw.get("parent_id") or None,
        "root_id": raw.get("root_id") or None,
        "lineage_depth": _int(raw, "lineage_depth") or 0,
        "continuation_of": raw.get("continuation_of") or None,
        "continued_as": raw.get("continued_as") or None,
        "replayed_as": raw.get("replayed_as") or None,
        "restart_of": raw.get("restart_of") or None,
        "restarted_as": raw.get("restarted_as") or None,
        "debug_mode": raw.get("debug_mode") == "1",
        "pause_requested": raw.get("pause_requested") == "1",
        "paused_at": iso(_int(raw, "paused_at")),
        "wait": wait,
        "expires_at": iso(_int(raw, "expires_at")),
    })
    return out


def _progress(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(value.get("current"), int | float):
        return None
    out: dict[str, Any] = {"current": value["current"]}
    if isinstance(value.get("total"), int | float):
        out["total"] = value["total"]
    if isinstance(value.get("message"), str):
        out["message"] = value["message"]
    return out


def _error_message(run: Run) -> str | None:
    if not run.error:
        return None
    return str(run.error.get("message") or run.error.get("type") or "error")


def durably_run(run: Run) -> dict[str, Any]:
    """durably's ClientRun (seed 000)."""
    return {
        "id": run.id, "jobName": run.job, "status": status_durably(run.status), "input": run.input,
        "output": run.output, "error": _error_message(run),
        "currentStepIndex": _int(run.raw, "current_step_index") or 0,
        "completedStepCount": _int(run.raw, "completed_step_count") or 0,
        "progress": _progress(_json(run.raw, "progress")), "labels": run.labels,
        "startedAt": iso(run.started_at_ms), "completedAt": iso(run.finished_at_ms),
        "createdAt": iso(run.created_at_ms),
    }


def _ref(run_id: str, status: str | None = None, job: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f"run_{run_id}"}
    if status:
        out["status"] = status
    if job:
        out["taskIdentifier"] = job
    return out


def trigger_run(run: Run, children: list[Run] | None = None) -> dict[str, Any]:
    """Trigger.dev's run (seeds 001 and 004); ids carry the ``run_`` prefix."""
    attempts = []
    for a in run.attempts:
        item: dict[str, Any] = {"id": f"attempt_{run.id}_{a.number}",
                                "status": _TRIGGER_ATTEMPT.get(a.status, a.status.upper())}
        if a.started_at_ms is not None:
            item["startedAt"] = iso(a.started_at_ms)
        item["completedAt"] = iso(a.finished_at_ms)
        if a.error:
            err: dict[str, Any] = {"message": str(a.error.get("message") or a.error.get("type") or "error")}
            if a.error.get("stack"):
                err["stack"] = str(a.error["stack"])
            item["error"] = err
        attempts.append(item)
    related: dict[str, Any] = {}
    root, parent = run.raw.get("root_id"), run.raw.get("parent_id")
    if root:
        related["root"] = _ref(root)
    if parent:
        related["parent"] = _ref(parent)
    if children is not None:
        related["children"] = [_ref(c.id, status_trigger(c), c.job) for c in children]
    out: dict[str, Any] = {
        "id": f"run_{run.id}", "status": status_trigger(run), "taskIdentifier": run.job,
        "version": run.version, "createdAt": iso(run.created_at_ms),
        "updatedAt": iso(run.updated_at_ms or run.created_at_ms), "startedAt": iso(run.started_at_ms),
        "finishedAt": iso(run.finished_at_ms), "isTest": False, "payload": run.input,
        "tags": run.tags[:10], "metadata": run.metadata, "relatedRuns": related, "attempts": attempts,
    }
    if run.status == "completed":
        out["output"] = run.output
    return out


def _uuid_or(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return str(uuid.uuid5(_NS, value))


def _object(value: Any) -> dict[str, Any]:
    """Hatchet's input/output are JSON objects: other values are wrapped as {"value": ...}."""
    if isinstance(value, dict):
        return value
    return {} if value is None else {"value": value}


def hatchet_run(run: Run) -> dict[str, Any]:
    """Hatchet's V1WorkflowRun (seed 002)."""
    project = run.raw.get("project") or "default"
    created = iso(run.created_at_ms)
    out: dict[str, Any] = {
        "id": run.id,
        "metadata": {"id": run.id if len(run.id) <= 36 else str(uuid.uuid5(_NS, run.id)), "createdAt": created,
                     "updatedAt": iso(run.updated_at_ms or run.created_at_ms)},
        "status": status_hatchet(run.status),
        "tenantId": str(uuid.uuid5(_NS, f"project:{project}")),
        "additionalMetadata": {**run.metadata, **run.labels},
        "displayName": f"{run.job}/{run.id}",
        "workflowId": str(uuid.uuid5(_NS, f"job:{run.job}")),
        "workflowVersionId": str(uuid.uuid5(_NS, f"job:{run.job}@{run.version}")),
        "output": _object(run.output if run.status == "completed" else None),
        "input": _object(run.input),
        "createdAt": created,
    }
    if run.started_at_ms is not None:
        out["startedAt"] = iso(run.started_at_ms)
    if run.finished_at_ms is not None:
        out["finishedAt"] = iso(run.finished_at_ms)
        if run.started_at_ms is not None:
            out["duration"] = max(run.finished_at_ms - run.started_at_ms, 0)
    message = _error_message(run)
    if message is not None and run.status != "completed":
        out["errorMessage"] = message
    parent = run.raw.get("parent_id")
    if parent:
        out["parentTaskExternalId"] = _uuid_or(parent)
    return out


def _str_map(values: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in values.items()}


def strait_run(run: Run, finished_ttl_ms: int = 0, failed_ttl_ms: int = 0) -> dict[str, Any]:
    """Strait's run object (seed 003). Tags are a string map: labels plus each tag as ``tag: "true"``."""
    raw = run.raw
    backoff = run.backoff
    started, created, finished = run.started_at_ms, run.created_at_ms, run.finished_at_ms
    expires = _int(raw, "expires_at")
    if finished is not None:
        ttl = failed_ttl_ms if run.status in ("failed", "dead_letter") else finished_ttl_ms
        expires = finished + ttl if ttl else None
    version = run.version or ""
    return {
        "id": run.id, "job_id": run.job, "project_id": raw.get("project") or "default",
        "status": status_strait(run.status), "attempt": run.attempt, "payload": run.input, "result": run.output,
        "metadata": _str_map(run.metadata), "error": _error_message(run),
        "triggered_by": raw.get("triggered_by") or _SOURCE_TRIGGER.get(run.source, run.source or "client"),
        "scheduled_at": iso(run.scheduled_at_ms), "started_at": iso(started), "finished_at": iso(finished),
        "heartbeat_at": iso(run.heartbeat_at_ms), "next_retry_at": iso(run.next_retry_at_ms),
        "expires_at": iso(expires), "parent_run_id": raw.get("parent_id") or None, "priority": run.priority,
        "idempotency_key": user_idempotency_key(run),
        "job_version": stored_int(version) if version.isascii() and version.isdigit() else None,
        "workflow_step_run_id": None, "max_attempts_override": run.max_attempts,
        "timeout_secs_override": run.timeout_ms // 1000 if run.timeout_ms else None,
        "retry_backoff": backoff.get("kind"),
        "retry_initial_delay_secs": backoff["initial_ms"] // 1000 if "initial_ms" in backoff else None,
        "retry_max_delay_secs": backoff["max_ms"] // 1000 if "max_ms" in backoff else None,
        "execution_trace": {
            "queue_wait_ms": max(started - created, 0) if started is not None else None,
            "dequeue_ms": None, "connect_ms": None, "ttfb_ms": None, "transfer_ms": None,
            "total_ms": max(finished - created, 0) if finished is not None else None,
            "dispatch_ms": None,
        },
        "debug_mode": raw.get("debug_mode") == "1", "continuation_of": raw.get("continuation_of") or None,
        "lineage_depth": _int(raw, "lineage_depth") or 0,
        "tags": {**_str_map(run.labels), **{t: "true" for t in run.tags}},
        "job_version_id": version or None, "created_by": raw.get("triggered_by") or run.source or None,
        "batch_id": raw.get("batch_id") or None, "concurrency_key": run.concurrency_key,
        "created_at": iso(created),
    }


def render(run: Run, view: str, *, children: list[Run] | None = None, finished_ttl_ms: int = 0,
           failed_ttl_ms: int = 0) -> dict[str, Any]:
    """The run in the requested view (one of :data:`VIEWS`)."""
    if view == "durably":
        return durably_run(run)
    if view == "trigger":
        return trigger_run(run, children)
    if view == "hatchet":
        return hatchet_run(run)
    if view == "strait":
        return strait_run(run, finished_ttl_ms, failed_ttl_ms)
    return native_run(run)


_ERROR_STATUSES = frozenset({"failed", "timed_out", "crashed", "dead_letter"})


def event_view(run_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry as Strait's run event: id, run_id, type, level, message, data, created_at."""
    kind, data = str(event.get("type") or ""), event.get("data")
    d = data if isinstance(data, dict) else {}
    level, message = "info", kind
    if kind == "log":
        level, message, data = str(d.get("level") or "info"), str(d.get("message") or ""), d
    elif kind == "status":
        status = str(d.get("status") or "")
        level = "error" if status in _ERROR_STATUSES else "info"
        message = f"status {status}" + (f" ({d['reason']})" if d.get("reason") else "")
    elif kind == "attempt":
        status = str(d.get("status") or "")
        level = "error" if status in _ERROR_STATUSES else "warn" if status == "canceled" else "info"
        message = f"attempt {d.get('number')} {status}"
    elif kind == "step":
        status = str(d.get("status") or "")
        level = "error" if status in _ERROR_STATUSES else "info"
        message = f"step {d.get('name')} {status}"
    elif kind == "progress":
        message = str(d.get("message") or f"progress {d.get('current')}/{d.get('total')}")
    elif kind == "checkpoint":
        message = f"checkpoint {d.get('sequence')}"
    return {"id": str(event.get("id")), "run_id": run_id, "type": kind, "level": level, "message": message,
            "data": data, "created_at": iso(stored_int(event.get("ts")) or 0)}
