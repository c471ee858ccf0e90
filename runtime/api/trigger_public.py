"""Trigger.dev's public run API: runs as @trigger.dev/sdk's runs.retrieve and runs.list parse them.

The ``?view=trigger`` run follows the seed documents (001, 004), whose statuses
are the internal TaskRunStatus words (COMPLETED_SUCCESSFULLY ...). The SDK's
public API names a status in another vocabulary (RunStatus: COMPLETED, FAILED,
WAITING ...) and adds booleans, cost, duration and depth. Each public status is
derived from the seed view's status (views.status_trigger), so the two views
never disagree about a run.

A date a run does not have is left out, never null: the SDK reads every date
with a coercing parser, which would turn null into 1970-01-01.
"""

from __future__ import annotations

from typing import Any

from ..records import Run, iso
from .views import (
    NATIVE_STATUSES,
    TRIGGER_PREFIX,
    error_text,
    execution_trace,
    status_trigger,
    trigger_statuses,
    user_idempotency_key,
)

__all__ = ["PUBLIC_STATUSES", "SHOWN_STATUSES", "api_run", "list_item", "natives_for", "public_status", "run_id"]

#: the public RunStatus for each status the trigger view shows. A run between attempts is EXECUTING, as
#: Trigger.dev shows a run retrying after a failure; a paused run is WAITING, as Trigger.dev's paused ones
PUBLIC = {"QUEUED": "QUEUED", "EXECUTING": "EXECUTING", "WAITING_TO_RESUME": "WAITING", "REATTEMPTING": "EXECUTING",
          "DELAYED": "DELAYED", "COMPLETED_SUCCESSFULLY": "COMPLETED", "COMPLETED_WITH_ERRORS": "FAILED",
          "CANCELLED": "CANCELED", "EXPIRED": "EXPIRED", "CRASHED": "CRASHED", "TIMED_OUT": "TIMED_OUT"}
#: the SDK's RunStatus enum, in its order
PUBLIC_STATUSES = ("PENDING_VERSION", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING", "COMPLETED", "CANCELED",
                   "FAILED", "CRASHED", "SYSTEM_FAILURE", "DELAYED", "EXPIRED", "TIMED_OUT")
#: the public statuses a Baton run can show (never PENDING_VERSION, DEQUEUED or SYSTEM_FAILURE: Baton has no
#: deployment versions to wait for, no separate dequeue step, and no failure of its own that ends a run)
SHOWN_STATUSES = tuple(s for s in PUBLIC_STATUSES if s in PUBLIC.values())
_QUEUED = frozenset({"QUEUED", "PENDING_VERSION", "DELAYED"})
_EXECUTING = frozenset({"EXECUTING", "DEQUEUED"})
_FINAL = frozenset({"COMPLETED", "CANCELED", "FAILED", "CRASHED", "SYSTEM_FAILURE", "EXPIRED", "TIMED_OUT"})


def public_status(run: Run) -> str:
    """The public RunStatus of a run."""
    return PUBLIC[status_trigger(run)]


def natives_for(wanted: frozenset[str]) -> frozenset[str]:
    """The native statuses whose runs may show one of the ``wanted`` public statuses (a dead letter's
    and a delayed run's depend on more than the status: filter those by public_status too)."""
    return frozenset(n for n in NATIVE_STATUSES if {PUBLIC[t] for t in trigger_statuses(n)} & wanted)


def run_id(run: Run) -> str:
    """A run's id as Trigger.dev's API shows it (the trigger view's)."""
    return TRIGGER_PREFIX + run.id


def _flags(status: str) -> dict[str, bool]:
    """The SDK's status booleans; a run that ended any other way than COMPLETED counts as failed, a
    canceled one too (as Trigger.dev reports them)."""
    done = status in _FINAL
    return {"isQueued": status in _QUEUED, "isExecuting": status in _EXECUTING, "isWaiting": status == "WAITING",
            "isCompleted": done, "isSuccess": status == "COMPLETED", "isFailed": done and status != "COMPLETED",
            "isCancelled": status == "CANCELED"}


def _common(run: Run) -> dict[str, Any]:
    """The fields every run of the public API has (the SDK's CommonRunFields)."""
    status = public_status(run)
    out: dict[str, Any] = {
        "id": run_id(run), "status": status, "taskIdentifier": run.job, **_flags(status), "isTest": False,
        "createdAt": iso(run.created_at_ms), "updatedAt": iso(run.updated_at_ms or run.created_at_ms),
        "tags": sorted(run.tags),
        # Baton has no billing: nothing costs anything
        "costInCents": 0, "baseCostInCents": 0,
        "durationMs": execution_trace(run)["dispatch_ms"] or 0, "metadata": run.metadata,
    }
    if (key := user_idempotency_key(run)) is not None:
        out["idempotencyKey"] = key
    if run.version:
        out["version"] = run.version
    dates = {"startedAt": run.started_at_ms, "finishedAt": run.finished_at_ms,
             "delayedUntil": run.scheduled_at_ms if status == "DELAYED" else None,
             "expiredAt": run.finished_at_ms if status == "EXPIRED" else None}
    out.update({name: iso(ms) for name, ms in dates.items() if ms is not None})
    return out


def _related(run: Run) -> dict[str, Any]:
    """A related run (root, parent, child): the common fields, depth and how it was triggered. Baton
    records no difference between a child the parent waits for and one it does not: a child reads as
    triggered (batchTrigger when a batch made it)."""
    out = {**_common(run), "depth": run.lineage_depth,
           "triggerFunction": "batchTrigger" if run.batch_id else "trigger"}
    if run.batch_id:
        out["batchId"] = run.batch_id
    return out


def api_run(run: Run, root: Run | None, parent: Run | None, children: list[Run]) -> dict[str, Any]:
    """The SDK's RetrieveRunResponse; ``root`` and ``parent`` are None when the run has none or their
    records have expired."""
    out = {**_related(run), "payload": run.input, "attemptCount": run.attempt}
    if run.status == "completed":
        out["output"] = run.output
    elif run.error:
        error: dict[str, Any] = {"message": error_text(run.error)}
        if run.error.get("type"):
            error["name"] = str(run.error["type"])
        if run.error.get("stack"):
            error["stackTrace"] = str(run.error["stack"])
        out["error"] = error
    related: dict[str, Any] = {"children": [_related(c) for c in children]}
    if root is not None and root.id != run.id:
        related["root"] = _related(root)
    if parent is not None:
        related["parent"] = _related(parent)
    out["relatedRuns"] = related
    return out


def list_item(run: Run) -> dict[str, Any]:
    """The SDK's ListRunResponseItem: the common fields and the environment, which in Baton is the
    run's project."""
    return {**_common(run), "env": {"id": run.project, "name": run.project}}
