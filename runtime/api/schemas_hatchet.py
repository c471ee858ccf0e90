"""JSON Schemas of Hatchet's REST API for runs (runtime/api/hatchet_public.py): the models hatchet-sdk's
runs client validates, with the fields it requires required here too."""

from __future__ import annotations

from typing import Any

from .hatchet_public import HATCHET_STATUSES
from .schemas import BOOL, INT, OBJ, STR, TIME, Schema, _obj, ref

__all__ = ["HATCHET_API_SCHEMAS", "UUID", "uuids"]

_HEX = "[0-9a-fA-F]"
UUID: Schema = {"type": "string", "pattern": f"^{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}$"}
STATUS: Schema = {"type": "string", "enum": list(HATCHET_STATUSES)}
#: a key:value pair of additional metadata (a comma would split it in a query)
PAIR: Schema = {"type": "string", "pattern": "^[^,:]+:[^,]*$", "maxLength": 512}


def uuids(most: int, **extra: Any) -> Schema:
    """A list of UUIDs."""
    return {"type": "array", "items": UUID, "maxItems": most, **extra}


_META = _obj({"id": UUID, "createdAt": TIME, "updatedAt": TIME})
_COMMON: dict[str, Schema] = {
    "metadata": _META, "status": STATUS, "startedAt": TIME, "finishedAt": TIME, "duration": INT, "tenantId": UUID,
    "additionalMetadata": OBJ, "displayName": STR, "workflowId": UUID, "workflowVersionId": UUID, "output": OBJ,
    "errorMessage": STR, "input": OBJ, "createdAt": TIME, "parentTaskExternalId": UUID,
}
SUMMARY = _obj({
    **_COMMON, "taskExternalId": UUID, "workflowRunExternalId": UUID,
    "taskId": {**INT, "description": "52 bits of the UUID: hatchet-sdk requires an integer; Baton never reads it"},
    "taskInsertedAt": TIME, "type": {"type": "string", "enum": ["DAG", "TASK"]}, "workflowName": STR, "stepId": UUID,
    "numSpawnedChildren": INT, "attempt": INT, "retryCount": INT, "isDurable": BOOL,
    "isEvicted": {**BOOL, "description": "true in a durable wait (RUNNING, holding no worker slot)"},
    "idempotencyKey": STR,
}, ["metadata", "createdAt", "displayName", "input", "numSpawnedChildren", "output", "status", "taskExternalId",
    "taskId", "taskInsertedAt", "tenantId", "type", "workflowId", "workflowRunExternalId"],
    description="A run as a Hatchet task (hatchet-sdk's V1TaskSummary): every Baton run is one TASK, its own "
                "workflow run.")
EVENT = _obj({
    "id": {**INT, "description": "the event's position in the run's timeline"}, "taskId": UUID, "timestamp": TIME,
    "eventType": {"type": "string", "enum": ["QUEUED", "STARTED", "SLOT_RELEASED", "FINISHED", "FAILED", "TIMED_OUT",
                                             "CANCELLED", "SCHEDULING_TIMED_OUT"]},
    "message": STR, "errorMessage": STR, "workerId": STR, "taskDisplayName": STR, "attempt": INT, "retryCount": INT,
}, ["id", "taskId", "timestamp", "eventType", "message"],
    description="A status change or a failed attempt of the run (hatchet-sdk's V1TaskEvent).")
SHAPE = _obj({"taskExternalId": UUID, "stepId": UUID, "childrenStepIds": uuids(0), "taskName": STR},
             description="The run's one task (hatchet-sdk's WorkflowRunShapeItemForWorkflowRunDetails).")
DETAILS = _obj({
    "run": ref("HatchetRun"), "taskEvents": {"type": "array", "items": ref("HatchetTaskEvent")},
    "shape": {"type": "array", "items": ref("HatchetShapeItem"), "minItems": 1, "maxItems": 1},
    "tasks": {"type": "array", "items": ref("HatchetTaskSummary"), "minItems": 1, "maxItems": 1},
}, description="A workflow run (hatchet-sdk's V1WorkflowRunDetails): the run in the hatchet view, its events, "
               "its shape and its tasks (the run itself).")
PAGE = _obj({
    "rows": {"type": "array", "items": ref("HatchetTaskSummary")},
    "pagination": _obj({"current_page": INT, "next_page": {**INT, "description": "absent on the last page"},
                        "num_pages": {**INT, "description": "0 when include_num_pages=false; else given on the "
                                                            "last page only (counting would walk every run)"}},
                       ["current_page"]),
}, description="A page of runs, newest first (hatchet-sdk's V1TaskSummaryList).")
FILTER = _obj({
    "since": TIME, "until": TIME, "statuses": {"type": "array", "items": STATUS, "maxItems": 5},
    "workflowIds": uuids(50), "additionalMetadata": {"type": "array", "items": PAIR, "maxItems": 20},
}, ["since"], extra=False, description="Runs created since (and until), in these statuses, of these workflows "
                                       "(jobs), with any of these key:value pairs of additional metadata.")
REQUEST = _obj({"externalIds": uuids(1000), "filter": ref("HatchetTaskFilter")}, [], extra=False, description=(
    "The runs to act on: by their ids, or by a filter (one of them). Ids no run of the project has are not "
    "acted on; a filter selecting more than 1000 runs answers 400 before acting on any."))
IDS = _obj({"ids": uuids(1000)}, description="The runs canceled, or the new runs a replay started.")
TRIGGER = _obj({
    "workflowName": {"type": "string", "minLength": 1, "maxLength": 100, "description": "a Baton job's name"},
    "input": {"type": "object", "description": "the run's input"},
    "additionalMetadata": {"anyOf": [{"type": "null"}, {"type": "object"}], "description": "the run's metadata"},
    "priority": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1, "maximum": 3}],
                 "description": "Hatchet's 1 (low) to 3 (high): the run's Baton priority, higher first"},
}, ["workflowName", "input"], extra=False, description="What runs.create posts (hatchet-sdk's "
                                                        "V1TriggerWorkflowRunRequest).")

HATCHET_API_SCHEMAS: dict[str, Schema] = {
    "HatchetTaskStatus": {**STATUS, "description": "A run's V1TaskStatus"}, "HatchetTaskSummary": SUMMARY,
    "HatchetTaskEvent": EVENT, "HatchetShapeItem": SHAPE, "HatchetRunDetails": DETAILS,
    "HatchetTaskSummaryList": PAGE, "HatchetTaskFilter": FILTER, "HatchetTaskRequest": REQUEST,
    "HatchetTaskIds": IDS, "HatchetTriggerRequest": TRIGGER,
    "HatchetExternalIds": {**uuids(10_000), "description": "Run ids, newest first"},
}
