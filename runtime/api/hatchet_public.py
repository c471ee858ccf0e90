"""Hatchet's REST API shapes: runs as hatchet-sdk's runs client parses them (V1WorkflowRunDetails,
V1TaskSummary, V1TaskEvent), built on the hatchet view (views.hatchet_run) so the two never disagree.

A Baton run is one task that is its own workflow run: its taskExternalId and workflowRunExternalId are
both the run's hatchet-view UUID, its workflow is its job. Hatchet has no paused, delayed or waiting
status: the view's mapping (paused, delayed and queued read QUEUED; a durable wait reads RUNNING)
holds here too, and a run in a durable wait holds no worker slot, so it reads as evicted (isEvicted),
as a Hatchet durable task waiting off its worker does.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..records import Run, iso, stored_int
from .views import NATIVE_STATUSES, error_text, hatchet_run, hatchet_uuid, status_hatchet, user_idempotency_key

__all__ = ["HATCHET_STATUSES", "RUNNING_FILTERS", "details", "metadata_matches", "natives_for", "task_events",
           "task_summary", "tenant_of"]

#: hatchet-sdk's V1TaskStatus, in its order
HATCHET_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED")
#: the RUNNING bucket of a list's running_filter: ALL, ON_WORKER (executing), EVICTED (in a durable wait)
RUNNING_FILTERS = {"ALL": frozenset({"executing", "waiting"}), "ON_WORKER": frozenset({"executing"}),
                   "EVICTED": frozenset({"waiting"})}
#: the payload keys a copy without payloads keeps empty (include_payloads=false)
_PAYLOADS = ("input", "output")
#: V1TaskEventType of each status a run's timeline records; a durable wait releases the worker's slot, a
#: run that expired before it started timed out waiting to be scheduled
_STATUS_EVENT = {"queued": "QUEUED", "delayed": "QUEUED", "paused": "QUEUED", "executing": "STARTED",
                 "waiting": "SLOT_RELEASED", "completed": "FINISHED", "canceled": "CANCELLED",
                 "expired": "SCHEDULING_TIMED_OUT", "failed": "FAILED", "dead_letter": "FAILED"}
#: an ended attempt that did not end the run well (completed and canceled ones are the status events')
_ATTEMPT_EVENT = {"failed": "FAILED", "crashed": "FAILED", "timed_out": "TIMED_OUT"}


def tenant_of(project: str) -> str:
    """The tenant id a project has in Hatchet's API: the hatchet view's tenantId of its runs."""
    return hatchet_uuid("project", project)


def natives_for(wanted: frozenset[str], running: str = "ALL") -> frozenset[str]:
    """The native statuses whose runs show one of the ``wanted`` V1TaskStatus; RUNNING narrowed by a
    running_filter (every run's hatchet status is its native status's, so this is exact)."""
    return frozenset(n for n in NATIVE_STATUSES if status_hatchet(n) in wanted
                     and (status_hatchet(n) != "RUNNING" or n in RUNNING_FILTERS[running]))


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def metadata_matches(run: Run, pairs: list[tuple[str, str]], every: bool) -> bool:
    """Whether the run's additionalMetadata (its metadata and labels, as the view shows them) holds any
    (``every``: all) of the ``key:value`` pairs; a value that is not text compares as its JSON."""
    shown = {**run.metadata, **run.labels}
    found = (key in shown and _shown(shown[key]) == value for key, value in pairs)
    return all(found) if every else any(found)


def task_summary(run: Run, children: int, payloads: bool = True) -> dict[str, Any]:
    """hatchet-sdk's V1TaskSummary of a run: the hatchet view, and what a task has besides. taskId is an
    integer hatchet-sdk requires; Baton has no numeric ids, so it is 52 bits of the UUID (never read back)."""
    view = hatchet_run(run)
    out = {k: v for k, v in view.items() if k not in ("id", "parentTaskExternalId")}
    external = view["id"]
    out.update({
        "taskExternalId": external, "workflowRunExternalId": external,
        "taskId": int(external.replace("-", "")[:13], 16),
        "taskInsertedAt": view["createdAt"], "type": "TASK", "workflowName": run.job,
        "stepId": hatchet_uuid("step", f"{run.job}@{run.version}"), "numSpawnedChildren": children,
        "attempt": max(run.attempt, 1), "retryCount": max(run.attempt - 1, 0),
        # every Baton handler may wait durably; one waiting holds no worker slot (RUNNING, evicted)
        "isDurable": True, "isEvicted": run.status == "waiting",
    })
    if "parentTaskExternalId" in view:
        out["parentTaskExternalId"] = view["parentTaskExternalId"]
    if (key := user_idempotency_key(run)) is not None:
        out["idempotencyKey"] = key
    if not payloads:
        out.update({name: {} for name in _PAYLOADS})
    return out


def task_events(run: Run, timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's timeline as V1TaskEvents: each status change, and each attempt that failed or timed out.
    An event's id is its position in the timeline (which only grows, so ids are stable)."""
    external = hatchet_run(run)["id"]
    out: list[dict[str, Any]] = []
    failure_shown = False
    for position, event in enumerate(timeline, 1):
        raw = event.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        status = str(data.get("status") or "")
        kind = event.get("type")
        if kind == "status" and status in _STATUS_EVENT:
            if status in ("failed", "dead_letter") and failure_shown:
                continue  # the attempt that ended it already said so
            item: dict[str, Any] = {"eventType": _STATUS_EVENT[status], "message": f"status {status}" + (
                f" ({data['reason']})" if data.get("reason") else "")}
            if status in ("failed", "dead_letter") and (message := error_text(run.error)):
                item["errorMessage"] = message
            if status == "executing" and data.get("node"):
                item["workerId"] = str(data["node"])
        elif kind == "attempt" and status in _ATTEMPT_EVENT:
            failure_shown = True
            item = {"eventType": _ATTEMPT_EVENT[status], "message": f"attempt {data.get('number')} {status}"}
            if (message := error_text(data.get("error") if isinstance(data.get("error"), dict) else None)):
                item["errorMessage"] = message
            if data.get("worker_id"):
                item["workerId"] = str(data["worker_id"])
        else:
            continue
        number = stored_int(data.get("attempt", data.get("number")))
        if number is not None:
            item.update({"attempt": number, "retryCount": max(number - 1, 0)})
        out.append({"id": position, "taskId": external, "timestamp": iso(stored_int(event.get("ts")) or 0),
                    "taskDisplayName": run.job, **item})
    return out


def details(run: Run, timeline: list[dict[str, Any]], children: int) -> dict[str, Any]:
    """hatchet-sdk's V1WorkflowRunDetails: the run (the hatchet view), its events, its shape (one task,
    the run itself) and its tasks (that one)."""
    summary = task_summary(run, children)
    shape = {"taskExternalId": summary["taskExternalId"], "stepId": summary["stepId"], "childrenStepIds": [],
             "taskName": run.job}
    return {"run": hatchet_run(run), "taskEvents": task_events(run, timeline), "shape": [shape],
            "tasks": [summary]}
