"""JSON Schemas of the API's bodies: the source of the OpenAPI components and of request validation.

The seed views follow their seeds: ``TriggerRun`` is seed 004's JSON Schema,
``HatchetRun`` seed 002's, ``DurablyRun`` seed 000's ClientRun field list and
``StraitRun`` seed 003's example run object (every field, nullable where a run
may not have a value yet).
"""

from __future__ import annotations

from typing import Any

from ..ranges import json_schema
from .views import NATIVE_STATUSES, STATUS_WORDS, STRAIT_RECORDS, STRAIT_STATUSES, STRAIT_TRIGGERS, VIEWS

__all__ = ["SCHEMAS", "VIEWED", "VIEW_RUN", "ref", "viewed_name"]

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
TIME_OR_NULL: Schema = {"type": ["string", "null"], "format": "date-time"}
STR_OR_NULL: Schema = _nullable("string")
INT_OR_NULL: Schema = _nullable("integer")
ANY: Schema = {}
OBJ: Schema = {"type": "object"}
#: The component of a JSON value a request carries, and what it must be (runtime/json_values.py, which
#: the server applies to every body before any schema). In words only: JSON Schema cannot tell an integer
#: literal beyond 64 bits from the float 1e300 (both are integers to it), nor count nesting.
JSON_VALUE_NAME = "JsonValue"
IN_ANY: Schema = {"$ref": f"#/components/schemas/{JSON_VALUE_NAME}"}
IN_OBJ: Schema = {"type": "object", "additionalProperties": IN_ANY}
JSON_VALUE: Schema = {
    "description": "Any JSON value, with two limits every request body is held to (else 400 invalid_json): "
                   "an integer literal is within 64 bits (-2^63 to 2^64-1), since a longer one would come back "
                   "as a float (send it as a string), and it nests at most 200 levels, since a deeper value "
                   "could not be shown again.",
}
STR_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}


def _obj(props: dict[str, Schema], required: list[str] | None = None, extra: bool = True,
         description: str = "") -> Schema:
    out: Schema = {"type": "object", "properties": props,
                   "required": list(props) if required is None else required}
    if not extra:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


ERROR = _obj({"error": STR, "code": STR, "request_id": STR},
             description="Every error: a message for people, a machine-readable code, the request id.")

ATTEMPT = _obj({
    "number": INT, "status": STR, "started_at": TIME_OR_NULL, "finished_at": TIME_OR_NULL,
    "worker_id": STR, "error": _nullable("object"),
})

NATIVE_RUN = _obj({
    "id": STR, "job": STR, "queue": STR, "status": {"type": "string", "enum": list(NATIVE_STATUSES)},
    "input": ANY, "output": ANY, "error": _nullable("object"), "priority": INT, "attempt": INT,
    "attempts_charged": INT, "max_attempts": INT, "timeout_ms": INT, "labels": STR_MAP,
    "tags": {"type": "array", "items": STR}, "metadata": OBJ, "concurrency_key": STR_OR_NULL,
    "idempotency_key": STR_OR_NULL, "version": STR, "source": STR, "created_at": TIME,
    "scheduled_at": TIME_OR_NULL, "started_at": {**TIME_OR_NULL, "description": "when its first attempt started"},
    "attempt_started_at": {**TIME_OR_NULL, "description": "when its latest attempt started (the one under way)"},
    "finished_at": TIME_OR_NULL,
    "heartbeat_at": TIME_OR_NULL, "next_retry_at": TIME_OR_NULL, "updated_at": TIME_OR_NULL,
    "lease_node": STR_OR_NULL, "cancel_requested": BOOL, "replay_of": STR_OR_NULL, "entry_id": STR_OR_NULL,
    "attempts": {"type": "array", "items": ref("Attempt")}, "project": STR, "triggered_by": STR,
    "batch_id": STR_OR_NULL, "progress": _nullable("object"), "current_step_index": INT_OR_NULL,
    "completed_step_count": INT, "parent_id": STR_OR_NULL, "root_id": STR_OR_NULL, "lineage_depth": INT,
    "continuation_of": STR_OR_NULL, "continued_as": STR_OR_NULL, "replayed_as": STR_OR_NULL,
    "restart_of": STR_OR_NULL, "restarted_as": STR_OR_NULL, "debug_mode": BOOL, "pause_requested": BOOL,
    "hook_of": STR_OR_NULL, "hook_kind": STR_OR_NULL, "idempotency_reset_at": TIME_OR_NULL,
    "paused_at": TIME_OR_NULL, "wait": _nullable("object"), "expires_at": TIME_OR_NULL,
    "node_labels": STR_MAP, "prefer_labels": STR_MAP, "queued_reason": STR_OR_NULL,
}, description="Baton's native run: a superset of the four seed shapes.")

PROGRESS = _obj({"current": {"type": "number"}, "total": {"type": "number"}, "message": STR}, ["current"])

DURABLY_RUN = _obj({
    "id": STR, "jobName": STR,
    "status": {"type": "string", "enum": ["pending", "leased", "completed", "failed", "cancelled"]},
    "input": ANY, "output": ANY, "error": STR_OR_NULL, "currentStepIndex": {"type": "number"},
    "completedStepCount": {"type": "number"}, "progress": {"anyOf": [{"type": "null"}, ref("DurablyProgress")]},
    "labels": STR_MAP, "startedAt": STR_OR_NULL, "completedAt": STR_OR_NULL, "createdAt": STR,
}, description="durably's ClientRun (seed 000).")

TRIGGER_STATUSES = ["QUEUED", "EXECUTING", "REATTEMPTING", "WAITING_FOR_DEPLOY", "WAITING_TO_RESUME",
                    "COMPLETED_SUCCESSFULLY", "COMPLETED_WITH_ERRORS", "INTERRUPTED", "CANCELLED", "CRASHED",
                    "FAILED_TO_RUN", "TIMED_OUT", "EXPIRED", "DELAYED", "SYSTEM_FAILURE"]

TRIGGER_REF: Schema = {"type": "object", "properties": {
    "id": {"type": "string", "pattern": "^run_"}, "status": STR, "taskIdentifier": STR}}
TRIGGER_ATTEMPT: Schema = {"type": "object", "properties": {
    "id": STR, "status": STR, "startedAt": TIME, "completedAt": TIME_OR_NULL,
    "error": {"type": "object", "properties": {"message": STR, "stack": STR}}}}
TRIGGER_RUN: Schema = {
    "type": "object", "description": "A Trigger.dev run (seeds 001 and 004); ids carry the run_ prefix.",
    "required": ["id", "status", "taskIdentifier"],
    "properties": {
        "id": {"type": "string", "pattern": "^run_"},
        "status": {"type": "string", "enum": TRIGGER_STATUSES},
        "taskIdentifier": STR, "version": STR, "createdAt": TIME, "updatedAt": TIME,
        "startedAt": TIME_OR_NULL, "finishedAt": TIME_OR_NULL, "isTest": BOOL, "payload": ANY, "output": ANY,
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 128}, "maxItems": 10},
        "metadata": {"type": "object", "additionalProperties": True},
        "relatedRuns": {"type": "object", "properties": {
            "root": ref("TriggerRunReference"), "parent": ref("TriggerRunReference"),
            "children": {"type": "array", "items": ref("TriggerRunReference")}}},
        "attempts": {"type": "array", "items": ref("TriggerRunAttempt")},
    },
}

HATCHET_RUN: Schema = {
    "type": "object", "description": "Hatchet's V1WorkflowRun (seed 002).",
    "required": ["metadata", "id", "status", "tenantId", "displayName", "workflowId", "output", "input"],
    "properties": {
        "metadata": {"type": "object", "required": ["id", "createdAt", "updatedAt"], "properties": {
            "id": {"type": "string", "minLength": 0, "maxLength": 36}, "createdAt": TIME, "updatedAt": TIME}},
        "status": {"type": "string", "enum": ["QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED"]},
        "startedAt": TIME, "finishedAt": TIME, "duration": INT,
        "tenantId": {"type": "string", "minLength": 36, "maxLength": 36, "format": "uuid"},
        "additionalMetadata": OBJ, "displayName": STR, "workflowId": {"type": "string", "format": "uuid"},
        "output": OBJ, "errorMessage": STR, "workflowVersionId": {"type": "string", "format": "uuid"},
        "input": OBJ, "createdAt": TIME,
        "parentTaskExternalId": {"type": "string", "format": "uuid", "minLength": 36, "maxLength": 36},
    },
}

STRAIT_RUN = _obj({
    "id": STR, "job_id": STR, "project_id": STR, "status": {"type": "string", "enum": list(STRAIT_STATUSES)},
    "attempt": INT, "payload": OBJ, "result": _nullable("object"), "metadata": STR_MAP, "error": STR_OR_NULL,
    "triggered_by": {"type": "string", "enum": list(STRAIT_TRIGGERS)}, "scheduled_at": TIME_OR_NULL,
    "started_at": TIME_OR_NULL, "finished_at": TIME_OR_NULL, "heartbeat_at": TIME_OR_NULL,
    "next_retry_at": TIME_OR_NULL,
    "expires_at": TIME_OR_NULL, "parent_run_id": STR_OR_NULL, "priority": INT, "idempotency_key": STR_OR_NULL,
    "job_version": INT_OR_NULL, "workflow_step_run_id": STR_OR_NULL, "max_attempts_override": INT_OR_NULL,
    "timeout_secs_override": INT_OR_NULL, "retry_backoff": STR_OR_NULL, "retry_initial_delay_secs": INT_OR_NULL,
    "retry_max_delay_secs": INT_OR_NULL,
    "execution_trace": _obj({k: INT_OR_NULL for k in ("queue_wait_ms", "dequeue_ms", "connect_ms", "ttfb_ms",
                                                       "transfer_ms", "total_ms", "dispatch_ms")}),
    "debug_mode": BOOL, "continuation_of": STR_OR_NULL, "lineage_depth": INT, "tags": STR_MAP,
    "job_version_id": STR_OR_NULL, "created_by": STR_OR_NULL, "batch_id": STR_OR_NULL,
    "concurrency_key": STR_OR_NULL, "created_at": TIME,
}, extra=False, description="Strait's run object (seed 003).")


RUN_PAGE = _obj({
    "data": {"type": "array", "items": ref("Run")},
    "next_cursor": {**STR_OR_NULL, "description": "pass as ?cursor= for the next page; null at the end"},
    "has_more": BOOL,
    "scanned": {**INT, "description": "index entries examined for this page (capped by api_scan_limit)"},
})
RUN_LIST = _obj({"data": {"type": "array", "items": ref("Run")}})

EVENT = _obj({"id": STR, "run_id": STR, "type": STR, "level": STR, "message": STR, "data": ANY,
              "created_at": TIME_OR_NULL})
CHECKPOINT = _obj({"id": STR, "run_id": STR, "sequence": INT, "source": STR, "state": ANY,
                   "created_at": TIME_OR_NULL})
USAGE = _obj({"id": STR, "run_id": STR, "provider": STR, "model": STR, "prompt_tokens": INT,
              "completion_tokens": INT, "total_tokens": INT, "cost_microusd": INT, "created_at": TIME},
             ["id", "run_id", "provider", "model", "prompt_tokens", "completion_tokens", "total_tokens",
              "cost_microusd", "created_at"])
TOOL_CALL = _obj({"id": STR, "run_id": STR, "tool_name": STR, "input": ANY, "output": ANY,
                  "duration_ms": INT_OR_NULL, "status": STR, "created_at": TIME},
                 ["id", "run_id", "tool_name", "input", "output", "duration_ms", "status", "created_at"])
OUTPUT = _obj({"id": STR, "run_id": STR, "output_key": STR, "schema": _nullable("object"), "value": ANY,
               "created_at": TIME})
DURABLY_STEP = _obj({"name": STR, "status": {"type": "string", "enum": ["completed", "failed", "cancelled"]},
                     "output": ANY, "error": STR_OR_NULL, "startedAt": TIME, "completedAt": TIME_OR_NULL},
                    extra=False, description="durably's StepRecord (seed 000).")
LOG_ENTRY = _obj({"id": STR, "runId": STR, "stepName": STR_OR_NULL,
                  "level": {"type": "string", "enum": ["info", "warn", "error"]}, "message": STR, "data": ANY,
                  "timestamp": TIME}, extra=False, description="durably's LogEntry (seed 000).")
STEP = _obj({"name": STR, "index": INT_OR_NULL, "status": STR, "output": ANY, "error": STR_OR_NULL,
             "started_at": TIME_OR_NULL, "completed_at": TIME_OR_NULL})

USAGE_LIST = _obj({"data": {"type": "array", "items": ref("Usage")}, "total": _obj({
    "prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT, "cost_microusd": INT, "calls": INT})})


def _list(item: str) -> Schema:
    return _obj({"data": {"type": "array", "items": ref(item)}})


DEBUG_BUNDLE = _obj({
    "run": ref("Run"), "events": {"type": "array", "items": ref("RunEvent")},
    "checkpoints": {"type": "array", "items": ref("Checkpoint")},
    "usage": {"type": "array", "items": ref("Usage")}, "tool_calls": {"type": "array", "items": ref("ToolCall")},
    "outputs": {"type": "array", "items": ref("Output")}, "steps": {"type": "array", "items": ref("Step")},
    "children": {"type": "array", "items": STR},
}, description="Everything recorded about a run, for a bug report.")

DEPENDENCY = _obj({"id": STR, "job_id": STR, "depends_on_job_id": STR_OR_NULL, "depends_on_run_id": STR_OR_NULL,
                   "condition": STR, "status": STR, "satisfied": BOOL, "created_at": TIME_OR_NULL})
DEPENDENCY_STATUS = _obj({
    "run_id": STR, "job_id": STR, "status": STR,
    "dependencies": {"type": "array", "items": ref("Dependency")},
    "dependencies_satisfied": BOOL,
    "parent": {"anyOf": [{"type": "null"}, _obj({"id": STR, "job_id": STR_OR_NULL, "status": STR_OR_NULL})]},
    "children": {"type": "array", "items": _obj({"id": STR, "job_id": STR_OR_NULL, "status": STR_OR_NULL})},
    "waiting_for": _nullable("object"),
}, description=(
    "What the run waits for: each parent it was created to depend on (depends_on; condition 'completed', or "
    "'finished (on_failure ignore|cancel)'; satisfied once that parent no longer holds it back); while it "
    "waits in trigger_and_wait*, each unfinished child (condition 'finished'); in wait_for_event its event key; "
    "in sleep a time. dependencies_satisfied is true when nothing holds it back."))

STATE = _obj({
    "run_id": STR, "status": STR, "attempt": INT, "current_step_index": INT_OR_NULL, "completed_step_count": INT,
    "progress": _nullable("object"), "metadata": OBJ, "wait": _nullable("object"), "paused": BOOL,
    "pause_requested": BOOL, "cancel_requested": BOOL, "debug_mode": BOOL,
    "lease": {"anyOf": [{"type": "null"}, _obj({"node": STR_OR_NULL, "expires_at": TIME_OR_NULL})]},
    "steps": {"type": "array", "items": ref("Step")},
    "latest_checkpoint": {"anyOf": [{"type": "null"}, ref("Checkpoint")]},
    "outputs": OBJ,
}, description="The run's execution state right now.")

BULK_ITEM = _obj({"id": STR, "status": STR, "error": STR_OR_NULL, "new_run_id": STR_OR_NULL},
                 ["id", "status", "error"])
BULK_RESULT = _obj({"results": {"type": "array", "items": ref("BulkItem")}, "total": INT, "canceled": INT,
                    "failed": INT, "has_more": BOOL}, ["results", "total", "canceled", "failed"])
BULK_DELETE_RESULT = _obj({"results": {"type": "array", "items": ref("BulkItem")}, "total": INT, "deleted": INT,
                           "failed": INT}, ["results", "total", "deleted", "failed"])
BULK_REPLAY_RESULT = _obj({"replayed": {"type": "array", "items": ref("Run")},
                           "results": {"type": "array", "items": ref("BulkItem")}, "count": INT, "failed": INT})

#: the most runs one bulk action names by id (the dashboard splits a larger selection into calls of this many)
BULK_IDS_MAX = 100
_RUN_ID_LIST = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}, "minItems": 1,
                "maxItems": BULK_IDS_MAX}
RUN_IDS = _obj({"run_ids": _RUN_ID_LIST}, ["run_ids"], extra=False)
DLQ_REPLAY = _obj({"run_ids": _RUN_ID_LIST, "limit": {"type": "integer", "minimum": 1, "maximum": BULK_IDS_MAX}},
                  [], extra=False)

FILTER_PROPS: dict[str, Schema] = {
    "status": {"type": "array", "items": {"type": "string", "enum": list(STATUS_WORDS)}, "maxItems": 10},
    "job": STR, "queue": STR, "tag": STR, "label": {"type": "string", "pattern": "^[^=]+=.*$"},
    "metadata_key": {"type": "string", "minLength": 1}, "metadata_value": STR, "batch_id": STR, "triggered_by": STR,
    "created_after": TIME, "created_before": TIME, "payload_contains": IN_OBJ,
    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 128},
}
#: a filter's metadata_value needs its metadata_key (said with if/then, which every JSON Schema draft and
#: test generator reads: schemathesis generated filters past dependentRequired, which the server refused)
FILTER_NEEDS: Schema = {"if": {"required": ["metadata_value"]}, "then": {"required": ["metadata_key"]}}
CANCEL_ALL = {**_obj({**FILTER_PROPS, "limit": {"type": "integer", "minimum": 1, "maximum": 1000}}, [],
                     extra=False), **FILTER_NEEDS}

TRIGGER_OPTIONS: dict[str, Schema] = {
    "input": IN_ANY,
    "id": {"type": "string", "pattern": "^[A-Za-z0-9_.:~-]{1,128}$",
           "description": "The run's id, chosen by the caller. Ids live in the caller's project: in a project "
                          "other than default the run's id is <project>:<id> (GET accepts either form), so "
                          "no project can take, or learn of, another project's id."},
    "queue": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"},
    # numeric options: their ranges come from the one table the stream and the client check too
    "priority": json_schema("priority"),
    "fairness_weight": {**json_schema("fairness_weight"), "description": "Turns per fairness round of the "
                        "run's concurrency key (default the job's, 1): weight 3 gets 3 runs to another key's 1."},
    "delay": json_schema("delay"),
    "run_at": {"type": ["string", "integer"]},
    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 128},
    "idempotency_ttl": json_schema("idempotency_ttl"),
    "concurrency_key": {"type": "string", "maxLength": 256},
    "labels": STR_MAP,
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 128}, "maxItems": 10},
    "metadata": IN_OBJ,
    "max_attempts": json_schema("max_attempts"),
    "timeout": json_schema("timeout"),
    "version": {"type": "string", "maxLength": 256},
    "ttl": {**json_schema("ttl"), "description": "Seconds the run may wait to start before it ends expired."},
    "debounce": _obj({
        "key": {"type": "string", "minLength": 1, "maxLength": 256},
        "window": json_schema("debounce_window"),
        "mode": {"type": "string", "enum": ["trailing", "leading"]},
        "max_delay": json_schema("debounce_max"),
    }, ["key", "window"], extra=False),
    "triggered_by": {"type": "string", "enum": ["api", "manual", "cron", "event", "workflow"]},
    "node_labels": {**STR_MAP, "description": "Labels a node must offer to lease the run (default: the job's)."},
    "prefer_labels": {**STR_MAP, "description": "Labels preferred for prefer_wait seconds; then any node."},
    "prefer_wait": {**json_schema("prefer_wait"),
                    "description": "Seconds a run waits for a node with prefer_labels (default: the job's)."},
    "depends_on": {"type": "array", "maxItems": 100, "description": (
        "Parent runs (ids in this project): the run is created waiting and queued once every parent finished; "
        "it reads their outputs with ctx.parent_outputs(). on_failure says what a parent that did not complete "
        "does to it: fail (default), ignore, cancel. A parent that does not exist is 404 unknown_parent. With "
        "delay or run_at, the run starts at the later of that time and its parents' end."),
        "items": {"anyOf": [{"type": "string", "pattern": "^[A-Za-z0-9_.:~-]{1,128}$"}, _obj({
            "id": {"type": "string", "pattern": "^[A-Za-z0-9_.:~-]{1,128}$"},
            "on_failure": {"type": "string", "enum": ["fail", "ignore", "cancel"]},
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"}}, ["id"], extra=False)]}},
}
#: the most runs one batch trigger makes (Baton's own and Trigger.dev's batch API)
BATCH_MAX = 1000
TRIGGER_REQUEST = _obj(TRIGGER_OPTIONS, [], extra=False)
BATCH_ITEM = _obj({"job": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"}, **TRIGGER_OPTIONS},
                  ["job"], extra=False)
BATCH_REQUEST = _obj({"runs": {"type": "array", "items": ref("BatchTriggerItem"), "minItems": 1,
                               "maxItems": BATCH_MAX}}, ["runs"], extra=False)
TRIGGER_RESPONSE = _obj({"id": STR, "created": BOOL, "outcome": STR, "run": ref("Run")})
BATCH_RESPONSE = _obj({"batch_id": STR, "runs": {"type": "array", "items": _obj(
    {"id": STR, "created": BOOL, "outcome": STR, "error": STR}, ["id", "created", "outcome"])}}, description=(
    "One entry per run; outcome queue_full or unknown_parent (with error) for a run refused inside the batch's "
    "script call, whose other runs are created."))

JOB = _obj({"name": STR, "queue": STR, "max_attempts": INT_OR_NULL, "timeout_s": _nullable("number"),
            "backoff": OBJ, "priority": INT, "max_concurrency": INT, "max_concurrency_per_key": INT,
            "version": STR, "options": OBJ},
           ["name", "queue", "max_attempts", "timeout_s", "backoff", "priority", "max_concurrency",
            "max_concurrency_per_key", "version", "options"])

SEND_EVENT = _obj({"key": {"type": "string", "minLength": 1, "maxLength": 200}, "data": IN_ANY}, ["key"],
                  extra=False)
SEND_EVENT_RESPONSE = _obj({"key": STR, "woken": INT})

ACTION = _obj({"id": STR, "result": STR, "run": ref("Run")}, ["id", "result"])
RESCHEDULE = {"type": "object", "additionalProperties": False,
              "properties": {"scheduled_at": TIME, "delay": {"type": "number", "minimum": 0,
                                                            "maximum": 31_536_000}},
              "oneOf": [{"required": ["scheduled_at"]}, {"required": ["delay"]}]}
DEBUG_MODE = _obj({"debug_mode": BOOL}, [], extra=False,
                  description="Strait's body: debug_mode is optional; left out (the seed's own "
                              "example sends {}) it is false.")
RESTART = _obj({"machine_preset": STR}, [], extra=False)
IDEM_RESET = _obj({"status": {"type": "string", "enum": ["reset", "not_set"]}, "run_id": STR})

HEALTH = _obj({"status": STR})
READY = _obj({"status": STR, "redis": BOOL, "draining": BOOL})

STRAIT_DEPENDENCY_STATUS = _obj({
    "run_id": STR, "job_id": STR, "status": {"type": "string", "enum": list(STRAIT_STATUSES)},
    "dependencies": {"type": "array", "items": _obj({"id": STR, "job_id": STR, "depends_on_job_id": STR,
                                                     "condition": STR, "created_at": TIME}, extra=False)},
    "dependencies_satisfied": BOOL,
}, extra=False, description="Strait's dependency status (seed 003): the parents (depends_on) and children a run "
                            "waits for.")
STRAIT_BULK_RESULT = _obj({"results": {"type": "array", "items": _obj({"id": STR, "status": STR,
                                                                      "error": STR_OR_NULL}, extra=False)},
                           "total": INT, "canceled": INT, "failed": INT}, extra=False)


def _strait_record(kind: str, native: Schema) -> Schema:
    """Strait's record of ``kind``: its fields only (views.STRAIT_RECORDS), JSON fields objects."""
    names, objects = STRAIT_RECORDS[kind]
    return _obj({n: OBJ if n in objects else native["properties"][n] for n in names}, extra=False,
                description=f"Strait's run {kind.replace('_', ' ')} (seed 003).")


#: Strait's records by the native component they render
STRAIT_RECORD_SCHEMAS = {
    "RunEvent": _strait_record("event", EVENT), "Checkpoint": _strait_record("checkpoint", CHECKPOINT),
    "Usage": _strait_record("usage", USAGE), "ToolCall": _strait_record("tool_call", TOOL_CALL),
    "Output": _strait_record("output", OUTPUT),
}


def _strait_list(item: str) -> Schema:
    return {"type": "array", "items": ref(f"Strait{item}")}


STRAIT_DEBUG_BUNDLE = _obj({
    "run": ref("StraitRun"), "events": _strait_list("RunEvent"), "checkpoints": _strait_list("Checkpoint"),
    "usage": _strait_list("Usage"), "tool_calls": _strait_list("ToolCall"), "outputs": _strait_list("Output"),
}, extra=False, description="Strait's debug bundle (seed 003).")
_STRAIT_RUNS: Schema = {"type": "array", "items": ref("StraitRun")}

#: Each view's run schema
VIEW_RUN = {"native": "NativeRun", "durably": "DurablyRun", "trigger": "TriggerRun", "hatchet": "HatchetRun",
            "strait": "StraitRun"}
#: Bodies that carry runs, by view: ``<Name>`` is the native one, ``<Name>.<view>`` another view's (runs in
#: that view's shape, and in the strait view Strait's own shape where it differs). The OpenAPI document
#: gives each operation one media type per view (``application/json; view=<view>``, what the server sends).
VIEWED = ("Run", "RunPage", "RunList", "RunAction", "TriggerResponse", "BulkReplayResult", "DlqReplayResult",
          "DebugBundle", "StepList", "BulkResult", "DependencyStatus", "RunEventList", "CheckpointList", "UsageList",
          "ToolCallList", "OutputList")
#: the strait view's own shapes where Strait's differ from Baton's envelope
_STRAIT_SHAPES: dict[str, Schema] = {
    "RunPage": _STRAIT_RUNS, "RunList": _STRAIT_RUNS, "RunAction": ref("StraitRun"),
    "BulkReplayResult": _STRAIT_RUNS,
    "DlqReplayResult": _obj({"replayed": _STRAIT_RUNS, "count": INT}, extra=False),
    "DebugBundle": STRAIT_DEBUG_BUNDLE, "BulkResult": STRAIT_BULK_RESULT,
    "DependencyStatus": STRAIT_DEPENDENCY_STATUS,
    **{f"{item}List": _strait_list(item) for item in STRAIT_RECORD_SCHEMAS},
}


def _with_run(schema: Any, run: str, placeholder: str = "Run") -> Any:
    """``schema`` with every reference to ``placeholder`` (the view-dependent ``Run``) turned into one to
    ``run``."""
    if isinstance(schema, dict):
        if schema.get("$ref") == f"#/components/schemas/{placeholder}":
            return ref(run)
        return {k: _with_run(v, run, placeholder) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_with_run(v, run, placeholder) for v in schema]
    return schema


def viewed_name(name: str, view: str) -> str:
    """The component name of body ``name`` in ``view``."""
    if name == "Run":
        return VIEW_RUN[view]
    return name if view == "native" else f"{name}.{view}"


_SCHEMAS_BASE: dict[str, Schema] = {
    "Error": ERROR, "Attempt": ATTEMPT, "NativeRun": NATIVE_RUN, "DurablyProgress": PROGRESS,
    "DurablyRun": DURABLY_RUN, "TriggerRunReference": TRIGGER_REF, "TriggerRunAttempt": TRIGGER_ATTEMPT,
    "TriggerRun": TRIGGER_RUN, "HatchetRun": HATCHET_RUN, "StraitRun": STRAIT_RUN,
    "RunPage": RUN_PAGE, "RunList": RUN_LIST, "RunEvent": EVENT, "RunEventList": _list("RunEvent"),
    "Checkpoint": CHECKPOINT, "CheckpointList": _list("Checkpoint"), "Usage": USAGE, "UsageList": USAGE_LIST,
    "ToolCall": TOOL_CALL, "ToolCallList": _list("ToolCall"), "Output": OUTPUT, "OutputList": _list("Output"),
    "Step": STEP, "StepList": _list("Step"), "DurablyStep": DURABLY_STEP, "LogEntry": LOG_ENTRY,
    "LogEntryList": _list("LogEntry"), "DlqReplayResult": BULK_REPLAY_RESULT, "DebugBundle": DEBUG_BUNDLE,
    "Dependency": DEPENDENCY, "DependencyStatus": DEPENDENCY_STATUS,
    "RunState": STATE, "BulkItem": BULK_ITEM, "BulkResult": BULK_RESULT, "BulkDeleteResult": BULK_DELETE_RESULT,
    "BulkReplayResult": BULK_REPLAY_RESULT,
    "RunIds": RUN_IDS, "DlqReplayRequest": DLQ_REPLAY, "CancelAllRequest": CANCEL_ALL,
    JSON_VALUE_NAME: JSON_VALUE,
    "TriggerRequest": TRIGGER_REQUEST, "BatchTriggerItem": BATCH_ITEM, "BatchTriggerRequest": BATCH_REQUEST,
    "TriggerResponse": TRIGGER_RESPONSE, "BatchTriggerResponse": BATCH_RESPONSE, "Job": JOB,
    "JobList": _list("Job"), "SendEventRequest": SEND_EVENT, "SendEventResponse": SEND_EVENT_RESPONSE,
    "RunAction": ACTION, "RescheduleRequest": RESCHEDULE, "DebugModeRequest": DEBUG_MODE,
    "RestartRequest": RESTART, "IdempotencyReset": IDEM_RESET, "Health": HEALTH, "Ready": READY,
}


def _viewed() -> dict[str, Schema]:
    """Every body of VIEWED in every view: the native ones under their own names."""
    out: dict[str, Schema] = {}
    for name in VIEWED:
        if name == "Run":
            continue
        for view in VIEWS:
            if view == "strait" and name in _STRAIT_SHAPES:
                shape = _STRAIT_SHAPES[name]
            else:
                shape = _with_run(_SCHEMAS_BASE[name], VIEW_RUN[view])
                if view == "durably":  # steps in durably's StepRecord shape
                    shape = _with_run(shape, "DurablyStep", "Step")
            out[viewed_name(name, view)] = shape
    return out


SCHEMAS: dict[str, Schema] = {**{k: _with_run(v, "NativeRun") for k, v in _SCHEMAS_BASE.items()},
                              **{f"Strait{k}": v for k, v in STRAIT_RECORD_SCHEMAS.items()}, **_viewed()}

#: the view query parameter's values
VIEW_NAMES = list(VIEWS)
