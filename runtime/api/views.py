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
from collections.abc import Callable
from typing import Any

import orjson

from ..affinity import affinity_view
from ..codec import digits
from ..ids import run_id_as_uuid, run_id_from_uuid
from ..records import Run, iso, stored_int
from ..settings import API_VIEWS
from ..statuses import RunStatus

__all__ = [
    "DURABLY_STATUSES",
    "NATIVE_STATUSES",
    "STATUS_WORDS",
    "STRAIT_RECORDS",
    "STRAIT_STATUSES",
    "STRAIT_TRIGGERS",
    "TRIGGER_PREFIX",
    "VIEWS",
    "durably_log",
    "durably_run",
    "durably_step",
    "error_text",
    "event_view",
    "execution_trace",
    "hatchet_id",
    "hatchet_ids",
    "hatchet_run",
    "hatchet_run_id",
    "hatchet_uuid",
    "native_run",
    "render",
    "status_durably",
    "status_hatchet",
    "status_strait",
    "status_trigger",
    "status_words",
    "statuses_for",
    "strait_record",
    "strait_run",
    "trigger_run",
    "trigger_statuses",
    "trigger_strait",
    "triggers_for",
    "user_idempotency_key",
]

#: what the trigger view (and Trigger.dev's API) puts before a run's id: run ids there start with it
TRIGGER_PREFIX = "run_"

VIEWS = API_VIEWS

#: uuid5 namespace of the ids the hatchet view derives (tenant, workflow, version, caller-chosen run ids)
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
#: a dead letter's trigger status by its last attempt's (any other: _TRIGGER_FAILED); a delayed run whose
#: retry waits is _TRIGGER_RETRY
_TRIGGER_DEAD = {"crashed": "CRASHED", "timed_out": "TIMED_OUT"}
_TRIGGER_FAILED = _TRIGGER["failed"]
_TRIGGER_RETRY = "REATTEMPTING"
_TRIGGER_ATTEMPT = {"completed": "COMPLETED", "failed": "FAILED", "timed_out": "FAILED", "crashed": "FAILED",
                    "canceled": "CANCELED", "waiting": "PAUSED", "released": "PAUSED"}
#: Strait's run status vocabulary (seed 003)
STRAIT_STATUSES = ("delayed", "queued", "dequeued", "executing", "waiting", "completed", "failed", "timed_out",
                   "crashed", "system_failed", "canceled", "expired", "dead_letter")
#: Baton's native statuses
NATIVE_STATUSES = tuple(str(s) for s in RunStatus)
#: durably's RunStatus vocabulary (seed 000)
DURABLY_STATUSES = tuple(dict.fromkeys(_DURABLY.values()))
#: the words a status filter takes: native statuses, Strait's and durably's (see statuses_for)
STATUS_WORDS = tuple(dict.fromkeys((*NATIVE_STATUSES, *STRAIT_STATUSES, *DURABLY_STATUSES)))
#: Strait's triggered_by for Baton's: an API, Python or stream submission is Strait's "manual" trigger, a
#: child or continue_as_new run is "spawn"ed by its run, a replay or restart is a "retry"
_STRAIT_TRIGGER = {"api": "manual", "manual": "manual", "client": "manual", "stream": "manual", "spawn": "spawn",
                   "continue": "spawn", "replay": "retry", "restart": "retry", "cron": "cron", "event": "event",
                   "workflow": "workflow"}
#: Strait's triggered_by vocabulary (seed 003, the triggered_by filter)
STRAIT_TRIGGERS = ("manual", "cron", "spawn", "workflow", "retry", "event")
#: durably's log levels (LogEntry.level) for Baton's
_DURABLY_LEVEL = {"debug": "info", "info": "info", "warn": "warn", "warning": "warn", "error": "error",
                  "critical": "error"}
#: durably's StepRecord.status for Baton's finished step statuses (a wait in progress is no record yet)
_DURABLY_STEP = {"completed": "completed", "failed": "failed", "timed_out": "failed", "canceled": "cancelled",
                 "cancelled": "cancelled"}


def status_durably(status: str) -> str:
    """durably's RunStatus for a native status."""
    return _DURABLY.get(status, "pending")


def status_hatchet(status: str) -> str:
    """Hatchet's V1TaskStatus for a native status."""
    return _HATCHET.get(status, "QUEUED")


def status_strait(status: str) -> str:
    """Strait's status (Baton's vocabulary, but Strait has no "paused": it reads as waiting)."""
    return "waiting" if status == "paused" else status if status in STRAIT_STATUSES else "queued"


def status_words(view: str) -> tuple[str, ...]:
    """The statuses a status filter takes in ``view`` (statuses_for): another view's are refused, since a
    word the view never shows would select nothing, silently."""
    if view == "strait":
        return STRAIT_STATUSES
    if view == "durably":
        return tuple(dict.fromkeys((*NATIVE_STATUSES, *DURABLY_STATUSES)))
    return NATIVE_STATUSES


def statuses_for(view: str, wanted: list[str]) -> frozenset[str]:
    """The native statuses a status filter given in ``view``'s vocabulary selects. In the strait view a
    status is the Strait status a run shows (waiting includes paused runs; dequeued, timed_out, crashed
    and system_failed are statuses Baton runs never show, so they select none); in the durably view,
    durably's status a run shows or a native one (pending: queued, delayed, waiting or paused; leased:
    executing; failed: failed, dead_letter or expired); elsewhere statuses are native."""
    if view == "strait":
        return frozenset(n for n in NATIVE_STATUSES if status_strait(n) in wanted)
    if view == "durably":
        return frozenset(n for n in NATIVE_STATUSES if n in wanted or status_durably(n) in wanted)
    return frozenset(s for s in wanted if s in NATIVE_STATUSES)


def trigger_strait(triggered_by: str) -> str:
    """Strait's triggered_by for a native one (a word written by other code reads as manual)."""
    return _STRAIT_TRIGGER.get(triggered_by, "manual")


def triggers_for(view: str, wanted: str) -> frozenset[str]:
    """The native triggered_by values a filter given in ``view``'s vocabulary selects."""
    if view != "strait":
        return frozenset({wanted})
    return frozenset(n for n, s in _STRAIT_TRIGGER.items() if s == wanted)


def status_trigger(run: Run) -> str:
    """Trigger.dev's run status for a native run."""
    if run.status == "dead_letter":
        last = run.attempts[-1].status if run.attempts else ""
        return _TRIGGER_DEAD.get(last, _TRIGGER_FAILED)
    if run.status == "delayed" and run.attempt > 0:
        return _TRIGGER_RETRY
    return _TRIGGER.get(run.status, "QUEUED")


def trigger_statuses(native: str) -> frozenset[str]:
    """Every Trigger.dev status (as status_trigger names it) a run in native status ``native`` may show:
    a dead letter's depends on its last attempt, a delayed run's on whether a retry waits."""
    if native == "dead_letter":
        return frozenset({*_TRIGGER_DEAD.values(), _TRIGGER_FAILED})
    if native == "delayed":
        return frozenset({_TRIGGER["delayed"], _TRIGGER_RETRY})
    return frozenset({_TRIGGER.get(native, "QUEUED")})


def user_idempotency_key(run: Run) -> str | None:
    """The idempotency key as the submitter gave it (API keys of a project are stored scoped)."""
    key = run.idempotency_key
    if key and run.project != "default" and key.startswith(f"{run.project}/"):
        return key[len(run.project) + 1:]
    return key


def native_run(run: Run) -> dict[str, Any]:
    """Baton's native shape: the record with every field the seeds need, times in ISO-8601."""
    out = run.to_dict()
    out.update({
        "project": run.project, "idempotency_key": user_idempotency_key(run), "triggered_by": run.triggered_by,
        "batch_id": run.batch_id, "progress": run.progress, "current_step_index": run.current_step_index,
        "completed_step_count": run.completed_step_count, "parent_id": run.parent_id, "root_id": run.root_id,
        "lineage_depth": run.lineage_depth, "continuation_of": run.continuation_of,
        "continued_as": run.continued_as, "replayed_as": run.replayed_as, "restart_of": run.restart_of,
        "restarted_as": run.restarted_as, "debug_mode": run.debug_mode, "pause_requested": run.pause_requested,
        "paused_at": iso(run.paused_at_ms), "wait": run.wait, "expires_at": iso(run.expires_at_ms),
        # (the attempt under way, or the last one: started_at is the first attempt's start)
        "attempt_started_at": iso(run.attempt_started_at_ms),
        # a hook run's source and kind (README "Completion hooks"); when the idempotency key was forgotten
        "hook_of": run.raw.get("hook_of") or None, "hook_kind": run.raw.get("hook_kind") or None,
        "idempotency_reset_at": iso(stored_int(run.raw.get("idempotency_reset_at"))),
    })
    out.update(affinity_view(run.raw, run.status))
    return out


def _progress(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(value.get("current"), int | float):
        return None
    out: dict[str, Any] = {"current": value["current"]}
    if isinstance(value.get("total"), int | float):
        out["total"] = value["total"]
    if isinstance(value.get("message"), str):
        out["message"] = value["message"]
    return out


def error_text(error: dict[str, Any] | None) -> str | None:
    """A stored error's message (its type when it has none); None for no error."""
    if not error:
        return None
    return str(error.get("message") or error.get("type") or "error")


def _error_message(run: Run) -> str | None:
    return error_text(run.error)


def durably_run(run: Run) -> dict[str, Any]:
    """durably's ClientRun (seed 000). Its error is the failure's ("when failed": not a canceled run's, nor
    the last attempt's of a run that will retry), and its current step the one the run is at: durably moves
    it past each step it completes, so it is the number of steps completed (Baton's record keeps the index
    of the last step recorded)."""
    status = status_durably(run.status)
    return {
        "id": run.id, "jobName": run.job, "status": status, "input": run.input, "output": run.output,
        "error": _error_message(run) if status == "failed" else None,
        "currentStepIndex": run.completed_step_count,
        "completedStepCount": run.completed_step_count, "progress": _progress(run.progress),
        "labels": run.labels, "startedAt": iso(run.started_at_ms), "completedAt": iso(run.finished_at_ms),
        "createdAt": iso(run.created_at_ms),
    }


def durably_step(step: dict[str, Any]) -> dict[str, Any] | None:
    """durably's StepRecord for a stored step; None for a step still in progress (a durable wait), which
    durably records only once it ends."""
    status = _DURABLY_STEP.get(str(step.get("status") or ""))
    started = iso(stored_int(step.get("started_at")))
    if status is None or started is None:
        return None
    error = step.get("error")
    if status == "failed" and not error:
        error = "timed out" if step.get("status") == "timed_out" else "failed"
    return {"name": str(step.get("name") or ""), "status": status, "output": step.get("output"),
            "error": None if error is None else str(error), "startedAt": started,
            "completedAt": iso(stored_int(step.get("completed_at")))}


def durably_log(run_id: str, data: Any, ts: int) -> dict[str, Any]:
    """durably's LogEntry for a log event's data (as ctx.log wrote it)."""
    d = data if isinstance(data, dict) else {"message": data}
    step = d.get("stepName")
    return {"id": str(d.get("id") or f"{run_id}:{ts}"), "runId": run_id,
            "stepName": step if isinstance(step, str) else None,
            "level": _DURABLY_LEVEL.get(str(d.get("level") or "info"), "info"),
            "message": str(d.get("message") or ""), "data": d.get("data"),
            "timestamp": d["timestamp"] if isinstance(d.get("timestamp"), str) else iso(ts)}


def _ref(run_id: str, run: Run | None) -> dict[str, Any]:
    """A Trigger.dev RunReference: the run's summary, or its id alone once its record has expired."""
    out: dict[str, Any] = {"id": TRIGGER_PREFIX + run_id}
    if run is not None:
        out["status"] = status_trigger(run)
        out["taskIdentifier"] = run.job
    return out


def trigger_run(run: Run, children: list[Run] | None = None,
                relatives: dict[str, Run] | None = None) -> dict[str, Any]:
    """Trigger.dev's run (seeds 001 and 004); ids carry the ``run_`` prefix."""
    attempts = []
    for a in run.attempts:
        item: dict[str, Any] = {"id": f"attempt_{run.id}_{a.number}",
                                "status": _TRIGGER_ATTEMPT.get(a.status, a.status.upper())}
        if a.started_at_ms is not None:
            item["startedAt"] = iso(a.started_at_ms)
        item["completedAt"] = iso(a.finished_at_ms)
        if a.error:
            err: dict[str, Any] = {"message": error_text(a.error)}
            if a.error.get("stack"):
                err["stack"] = str(a.error["stack"])
            item["error"] = err
        attempts.append(item)
    if run.status == "executing" and all(a.number != run.attempt for a in run.attempts):
        # the attempt in progress is recorded when it ends: show it as Trigger.dev does, EXECUTING
        current: dict[str, Any] = {"id": f"attempt_{run.id}_{run.attempt}", "status": "EXECUTING"}
        started = run.attempt_started_at_ms or run.started_at_ms
        if started is not None:
            current["startedAt"] = iso(started)
        current["completedAt"] = None
        attempts.append(current)
    known = relatives or {}
    related: dict[str, Any] = {}
    if run.root_id:
        related["root"] = _ref(run.root_id, known.get(run.root_id))
    if run.parent_id:
        related["parent"] = _ref(run.parent_id, known.get(run.parent_id))
    if children is not None:
        related["children"] = [_ref(c.id, c) for c in children]
    out: dict[str, Any] = {
        "id": TRIGGER_PREFIX + run.id, "status": status_trigger(run), "taskIdentifier": run.job,
        "createdAt": iso(run.created_at_ms),
        "updatedAt": iso(run.updated_at_ms or run.created_at_ms), "startedAt": iso(run.started_at_ms),
        "finishedAt": iso(run.finished_at_ms), "isTest": False, "payload": run.input,
        "tags": run.tags[:10], "metadata": run.metadata, "relatedRuns": related, "attempts": attempts,
    }
    if run.version:
        # a run of an unversioned job is locked to no version: Trigger.dev leaves the field out then
        out["version"] = run.version
    if run.status == "completed":
        out["output"] = run.output
    return out


def hatchet_id(run_id: str) -> str:
    """The UUID a run has in the hatchet view. A generated id is 128 bits, the same as a UUID, so the API
    turns the UUID back into the id; an id that is a UUID stays itself; any other (caller-chosen) id gets
    a UUIDv5, which the API resolves through an alias stored when the view emits it (:func:`hatchet_ids`)."""
    if (same := run_id_as_uuid(run_id)) is not None:
        return same
    if run_id_from_uuid(run_id) is not None:  # a UUID in canonical form
        return run_id
    return str(uuid.uuid5(_NS, f"run:{run_id}"))


def hatchet_uuid(kind: str, name: str) -> str:
    """A UUIDv5 the hatchet view derives: ``kind`` project (the tenant), job (the workflow), job@version ..."""
    return str(uuid.uuid5(_NS, f"{kind}:{name}"))


def _own_id(run: Run, run_id: str) -> str:
    """A run id of ``run``'s project as its caller chose it (ids a project other than default chooses
    are stored as ``<project>:<id>``; the API finds them by either form)."""
    scope = f"{run.project}:"
    return run_id[len(scope):] if run.project != "default" and run_id.startswith(scope) else run_id


def hatchet_run_id(run: Run) -> str:
    """The run's own id in the hatchet view (its id, metadata.id, a task's taskExternalId)."""
    return hatchet_id(_own_id(run, run.id))


def hatchet_ids(run: Run) -> dict[str, str]:
    """The derived UUIDs (uuid -> run id) the hatchet view of ``run`` emits that only an alias resolves."""
    out = {}
    for run_id in (run.id, run.parent_id):
        if run_id:
            own = _own_id(run, run_id)
            derived = hatchet_id(own)
            if derived != own and run_id_from_uuid(derived) != own:
                out[derived] = run_id
    return out


def _object(value: Any, absent: Any = None) -> Any:
    """A JSON object where a seed has one: an object as it is, any other value as {"value": ...};
    ``absent`` for None."""
    if isinstance(value, dict):
        return value
    return absent if value is None else {"value": value}


def hatchet_run(run: Run) -> dict[str, Any]:
    """Hatchet's V1WorkflowRun (seed 002). Its ids are UUIDs the API accepts back (see hatchet_id)."""
    created = iso(run.created_at_ms)
    external = hatchet_run_id(run)
    out: dict[str, Any] = {
        "id": external,
        "metadata": {"id": external, "createdAt": created,
                     "updatedAt": iso(run.updated_at_ms or run.created_at_ms)},
        "status": status_hatchet(run.status),
        "tenantId": hatchet_uuid("project", run.project),
        "additionalMetadata": {**run.metadata, **run.labels},
        "displayName": f"{run.job}/{run.id}",
        "workflowId": hatchet_uuid("job", run.job),
        "workflowVersionId": hatchet_uuid("job", f"{run.job}@{run.version}"),
        "output": _object(run.output if run.status == "completed" else None, {}),
        "input": _object(run.input, {}),
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
    if run.parent_id:
        out["parentTaskExternalId"] = hatchet_id(_own_id(run, run.parent_id))
    return out


def _str_map(values: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in values.items()}


def _since(end: int | None, start: int | None) -> int | None:
    return max(end - start, 0) if end is not None and start is not None else None


def execution_trace(run: Run) -> dict[str, int | None]:
    """Strait's execution_trace from what Baton records. Strait calls an HTTP endpoint per run; Baton
    runs the handler in the worker, so the phases of that call (connect, first byte, transfer) do not
    exist and stay null. queue_wait_ms: due time to the first lease; dequeue_ms: first lease to the
    latest (earlier attempts, backoff, durable waits); dispatch_ms: time handlers ran (finished
    attempts); total_ms: creation to the end."""
    due = max(run.created_at_ms, run.scheduled_at_ms or 0)
    ran = [a.finished_at_ms - a.started_at_ms for a in run.attempts
           if a.started_at_ms is not None and a.finished_at_ms is not None]
    return {
        "queue_wait_ms": _since(run.started_at_ms, due),
        "dequeue_ms": _since(run.attempt_started_at_ms, run.started_at_ms),
        "connect_ms": None, "ttfb_ms": None, "transfer_ms": None,
        "total_ms": _since(run.finished_at_ms, run.created_at_ms),
        "dispatch_ms": sum(max(r, 0) for r in ran) if ran else None,
    }


def strait_run(run: Run, finished_ttl_ms: int = 0, failed_ttl_ms: int = 0) -> dict[str, Any]:
    """Strait's run object (seed 003). Tags are a string map: labels plus each tag as ``tag: "true"``.
    payload and result are objects (any other value as {"value": ...}); the *_override fields are set
    only when the trigger chose the value (Baton triggers override max_attempts and timeout, never the
    job's backoff)."""
    finished = run.finished_at_ms
    expires = run.expires_at_ms
    if finished is not None:
        ttl = failed_ttl_ms if run.status in ("failed", "dead_letter") else finished_ttl_ms
        expires = finished + ttl if ttl else None
    version = run.version
    return {
        "id": run.id, "job_id": run.job, "project_id": run.project,
        "status": status_strait(run.status), "attempt": run.attempt, "payload": _object(run.input, {}),
        "result": _object(run.output), "metadata": _str_map(run.metadata), "error": _error_message(run),
        "triggered_by": trigger_strait(run.triggered_by),
        "scheduled_at": iso(run.scheduled_at_ms), "started_at": iso(run.started_at_ms), "finished_at": iso(finished),
        "heartbeat_at": iso(run.heartbeat_at_ms), "next_retry_at": iso(run.next_retry_at_ms),
        "expires_at": iso(expires), "parent_run_id": run.parent_id, "priority": run.priority,
        "idempotency_key": user_idempotency_key(run),
        "job_version": stored_int(version) if digits(version) else None,
        "workflow_step_run_id": None,
        "max_attempts_override": run.max_attempts if "max_attempts" in run.overrides else None,
        "timeout_secs_override": -(-run.timeout_ms // 1000) if "timeout" in run.overrides else None,
        "retry_backoff": None, "retry_initial_delay_secs": None, "retry_max_delay_secs": None,
        "execution_trace": execution_trace(run),
        "debug_mode": run.debug_mode, "continuation_of": run.continuation_of,
        "lineage_depth": run.lineage_depth,
        # (a label and a tag of one name: the label's value, which a bare "true" would lose)
        "tags": {**{t: "true" for t in run.tags}, **_str_map(run.labels)},
        "job_version_id": version or None, "created_by": run.triggered_by,
        "batch_id": run.batch_id, "concurrency_key": run.concurrency_key,
        "created_at": iso(run.created_at_ms),
    }


#: Strait's run records (seed 003): each kind's fields, and which of them are JSON objects
STRAIT_RECORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "event": (("id", "run_id", "type", "level", "message", "data", "created_at"), ("data",)),
    "checkpoint": (("id", "run_id", "sequence", "source", "state", "created_at"), ("state",)),
    "usage": (("id", "run_id", "provider", "model", "prompt_tokens", "completion_tokens", "total_tokens",
               "cost_microusd", "created_at"), ()),
    "tool_call": (("id", "run_id", "tool_name", "input", "output", "duration_ms", "status", "created_at"),
                  ("input", "output")),
    "output": (("id", "run_id", "output_key", "schema", "value", "created_at"), ("schema", "value")),
}


def strait_record(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """A run record in Strait's shape: Strait's fields only; its JSON fields objects, any other value as
    {"value": ...} and an absent one as {} (for an output's schema, the schema that admits every value,
    which is what no schema means)."""
    names, objects = STRAIT_RECORDS[kind]
    return {k: _object(record.get(k), {}) if k in objects else record.get(k) for k in names}


def render(run: Run, view: str, *, children: list[Run] | None = None, relatives: dict[str, Run] | None = None,
           finished_ttl_ms: int = 0, failed_ttl_ms: int = 0) -> dict[str, Any]:
    """The run in the requested view (one of :data:`VIEWS`); ``relatives`` are its root and parent runs
    (the trigger view summarises them), ``children`` its children (the trigger view lists them)."""
    if view == "durably":
        return durably_run(run)
    if view == "trigger":
        return trigger_run(run, children, relatives)
    if view == "hatchet":
        return hatchet_run(run)
    if view == "strait":
        return strait_run(run, finished_ttl_ms, failed_ttl_ms)
    return native_run(run)


_ERROR_STATUSES = frozenset({"failed", "timed_out", "crashed", "dead_letter"})


def _at(ms: Any) -> str:
    return iso(stored_int(ms)) or ""


#: what an operator's or a handler's event says past its type, from its data ('' when the data lacks it:
#: the type alone): a timeline that read "rescheduled" or "debug_mode" did not say to when, or on or off
_SAID_FROM_DATA: dict[str, Callable[[dict[str, Any]], str]] = {
    "rescheduled": lambda d: f"to {_at(d['scheduled_at'])}" if _at(d.get("scheduled_at")) else "",
    "debug_mode": lambda d: ("on" if d["debug_mode"] else "off") if isinstance(d.get("debug_mode"), bool) else "",
    "pause_requested": lambda d: f"while {d['status']}" if d.get("status") else "",
    "pause_withdrawn": lambda d: f"while {d['status']}" if d.get("status") else "",
    "continued": lambda d: f"as {d['run_id']}" if d.get("run_id") else "",
    "token": lambda d: f"{d['id']} {d.get('status') or ''}".rstrip() if d.get("id") else "",
    "signal": lambda d: f"{d['name']} " + ("delivered" if d.get("delivered") else "buffered") if d.get("name") else "",
}


def event_view(run_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry as Strait's run event: id, run_id, type, level, message, data (an object),
    created_at."""
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
    elif kind in _SAID_FROM_DATA and (said := _SAID_FROM_DATA[kind](d)):
        message = f"{kind} {said}"
    return {"id": str(event.get("id")), "run_id": run_id, "type": kind, "level": level, "message": message,
            "data": _object(data, {}), "created_at": iso(stored_int(event.get("ts")) or 0)}
