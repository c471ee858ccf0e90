"""JSON Schemas of the operator endpoints' bodies: queues, schedules, job limits, nodes, bulk actions.

With ``schemas.SCHEMAS`` they make ``COMPONENTS``: the OpenAPI components and what requests are
validated against.
"""

from __future__ import annotations

from ..admission import MAX_QUEUED
from ..job_limits import MAX_LIMIT, MAX_WINDOW_S
from ..queues import LIVE_STATES, THROUGHPUT_MINUTES
from .bulk_actions import ACTIONS, MAX_ERRORS, MAX_RUNS
from .schemas import (
                               BOOL,
                               FILTER_NEEDS,
                               FILTER_PROPS,
                               IN_ANY,
                               INT,
                               INT_OR_NULL,
                               SCHEMAS,
                               STR,
                               STR_MAP,
                               STR_OR_NULL,
                               TIME,
                               TIME_OR_NULL,
                               Schema,
                               _list,
                               _obj,
)
from .schemas import ref as _ref
from .schemas_hatchet import HATCHET_API_SCHEMAS
from .schemas_hooks import HOOK_SCHEMAS
from .schemas_messages import MESSAGE_SCHEMAS
from .schemas_trigger import TRIGGER_API_SCHEMAS

__all__ = ["COMPONENTS", "OPS_SCHEMAS"]

STR_LIST: Schema = {"type": "array", "items": STR}
#: the filters of GET /v1/runs, as a JSON object
FILTER_PROPS_OBJECT: Schema = {**_obj(FILTER_PROPS, [], extra=False), **FILTER_NEEDS}


QUEUE = _obj({
    "name": STR, "paused": BOOL,
    "counts": _obj({str(s): INT for s in LIVE_STATES}),
    "counts_exact": {**BOOL, "description": "false when a large state set was sampled and the counts scaled"},
    "oldest_queued_age_ms": {**INT, "description": "how long the oldest queued run has been ready (0: none)"},
    "throughput": _obj({
        "interval_s": INT,
        "points": {"type": "array", "items": INT, "minItems": THROUGHPUT_MINUTES, "maxItems": THROUGHPUT_MINUTES,
                   "description": "runs finished per minute, oldest first; the last is the minute in progress"},
        "end_minute_ms": {**INT, "description": "epoch ms of the start of the last point's minute"},
        "last_hour_total": INT,
    }),
}, description="A queue: paused or not, live runs by state, oldest queued run, finished runs per minute.")

PURGE_RESULT = _obj({"queue": STR, "purged": INT, "skipped": INT, "remaining": INT, "has_more": BOOL},
                    description="Queued runs canceled by this call; skipped ones left the queue meanwhile.")

SCHEDULE_FIELDS: dict[str, Schema] = {
    "job": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"},
    "expression": {"type": "string", "minLength": 1, "maxLength": 200,
                   "description": "cron: 5 fields, or 6 with seconds first"},
    "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "description": "IANA name (default UTC)"},
    "input": IN_ANY,
    "overlap": {"type": "string", "enum": ["allow", "skip", "cancel"],
                "description": "when a tick comes while the previous run is unfinished (default allow)"},
    "catch_up": {"type": "string", "enum": ["skip", "run_once"],
                 "description": "ticks missed during downtime: drop them, or fire one run for them (default skip)"},
    "options": {"type": "object", "description": "trigger options of each run (priority, queue, tags ...)"},
}
SCHEDULE = _obj({
    "name": STR, **SCHEDULE_FIELDS, "paused": BOOL, "next_fire_at": TIME_OR_NULL, "last_run_id": STR_OR_NULL,
    "fired_count": INT, "skipped_count": INT, "missed_count": INT,
    "refused": {**STR_OR_NULL, "description": "why its last tick started no run (its job no longer defined, its "
                "options refused, its queue full); null once a tick fires"},
    "error": {**STR, "description": "only on a schedule that cannot fire at all (stored by hand or by an older "
              "version, it does not parse): why"},
}, description="A cron schedule and its state.")
SCHEDULE_REQUEST = _obj(SCHEDULE_FIELDS, ["job", "expression"], extra=False)
SCHEDULE_TRIGGER = _obj({"schedule": STR, "tick_at": TIME, "run_id": STR_OR_NULL, "skipped": BOOL},
                        description="The run a trigger-now started (run_id null when the overlap policy skipped)")
BACKFILL_REQUEST = _obj({"start": TIME, "end": TIME}, extra=False)
BACKFILL_RESULT = _obj({
    "schedule": STR, "ticks": INT, "created": INT, "existing": INT, "run_ids": STR_LIST, "truncated": BOOL,
    "next_start": {**TIME_OR_NULL, "description": "when truncated: start the next call here"},
}, description="Ticks in the range fired; a tick whose run already existed counts as existing.")
DELETED = _obj({"name": STR, "deleted": BOOL})

RATE: Schema = {"anyOf": [{"type": "null"}, _obj({
    "count": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    "window_s": {"type": "number", "minimum": 0.001, "maximum": MAX_WINDOW_S}}, extra=False)]}
LIMITS = _obj({
    "max_concurrency": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT, "description": "0 = none"},
    "max_concurrency_per_key": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT, "description": "0 = none"},
    "rate_limit": RATE, "rate_limit_per_key": RATE,
}, [], extra=False, description="A job's limits; a field left out is no limit.")
JOB_LIMITS = _obj({
    "job": STR, "registered": _ref("Limits"),
    "override": {"anyOf": [{"type": "null"}, _ref("Limits")]}, "effective": _ref("Limits"),
}, description="The limits the code registered, the runtime override (null without one) and those in force.")

SHARED_LIMIT = _obj({
    "pool_size": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT,
                  "description": "most runs of the jobs with pool=<name> executing at once (0 = none)"},
    "rate_limit": {**RATE, "description": "starts of the jobs with shared_rate=<name> per window (null = none)"},
}, [], extra=False, description="A shared limit's values; a field left out is no limit.")
SHARED_LIMIT_STATE = _obj({
    "name": STR, "registered": _ref("SharedLimit"),
    "override": {"anyOf": [{"type": "null"}, _ref("SharedLimit")]}, "effective": _ref("SharedLimit"),
    "jobs": {**STR_LIST, "description": "registered jobs that use the name"},
    "pool_leased": {**INT, "description": "runs its pool holds now"},
}, description="A shared limit as the code defined it, the runtime override (null without one) and in force.")
ADMISSION_REQUEST = _obj({"max_queued": {"anyOf": [
    {"type": "integer", "minimum": 1, "maximum": MAX_QUEUED}, {"type": "null"}]}}, ["max_queued"], extra=False,
    description="The cap on runs admitted and not yet started; null removes it (a job's code value applies again).")
ADMISSION = _obj({"scope": {"type": "string", "enum": ["job", "queue"]}, "name": STR, "max_queued": INT_OR_NULL,
                  "admitted": INT}, description=(
    "Admission control of a job or queue: the max_queued in force (null = none) and the runs it counts now "
    "(admitted while a cap was set and not yet started), summed over partitions."))

NODE = _obj({
    "id": STR, "alive": BOOL, "heartbeat_at": TIME_OR_NULL, "heartbeat_age_ms": INT, "version": STR_OR_NULL,
    "slots_total": INT, "slots_used": INT_OR_NULL, "leases_held": INT_OR_NULL, "jobs": STR_LIST,
    "queues": STR_LIST, "draining": BOOL, "drain_requested": BOOL, "labels": STR_MAP,
}, description="A node that heartbeated within the last hour (alive: within two lease TTLs).")

BULK_ACTION_REQUEST = _obj({
    "action": {"type": "string", "enum": list(ACTIONS)},
    "filter": FILTER_PROPS_OBJECT,
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RUNS, "description": f"default {MAX_RUNS}"},
}, ["action"], extra=False)
BULK_ACTION = _obj({
    "id": STR, "action": STR, "status": {"type": "string", "enum": ["running", "completed", "canceled", "failed"]},
    "filter": {"type": "object"}, "limit": INT, "processed": INT, "succeeded": INT, "failed": INT,
    "scanned": {**INT, "description": "index entries examined so far"},
    "errors": {"type": "array", "items": _obj({"id": STR, "error": STR}),
               "description": f"the first {MAX_ERRORS} runs the action could not handle, with why"},
    "error": {**STR_OR_NULL, "description": "why the action failed (status failed)"},
    "cancel_requested": BOOL, "created_at": TIME, "updated_at": TIME, "finished_at": TIME_OR_NULL,
}, description="A background bulk action and its progress.")

REJECTION = _obj({
    "id": {**STR, "description": "the rejection's id in the rejected stream"}, "rejected_at": TIME,
    "entry_id": {**STR, "description": "the submission stream entry rejected"},
    "reason": {**STR, "description": "unknown_job, bad_json, missing_field ... (as the metric's reason label)"},
    "error": STR, "fields": {"type": "object", "additionalProperties": STR,
                             "description": "the entry's fields, each cut to its first bytes"},
    "size": {**INT, "description": "the entry's size in bytes"},
    "truncated": {**BOOL, "description": "whether fields lost anything to the cut"},
}, description="A submission stream entry the intake rejected.")
REJECTION_LIST = _obj({"data": {"type": "array", "items": _ref("Rejection")}, "next_cursor": STR_OR_NULL})

OPS_SCHEMAS: dict[str, Schema] = {
    "Queue": QUEUE, "QueueList": _list("Queue"), "PurgeResult": PURGE_RESULT, "Schedule": SCHEDULE,
    "ScheduleList": _list("Schedule"), "ScheduleRequest": SCHEDULE_REQUEST, "ScheduleTrigger": SCHEDULE_TRIGGER,
    "BackfillRequest": BACKFILL_REQUEST, "BackfillResult": BACKFILL_RESULT, "Deleted": DELETED, "Limits": LIMITS,
    "JobLimits": JOB_LIMITS, "SharedLimit": SHARED_LIMIT, "SharedLimitState": SHARED_LIMIT_STATE,
    "SharedLimitList": _list("SharedLimitState"), "Node": NODE,
    "NodeList": _list("Node"), "BulkActionRequest": BULK_ACTION_REQUEST,
    "BulkAction": BULK_ACTION, "BulkActionList": _list("BulkAction"),
    "AdmissionRequest": ADMISSION_REQUEST, "Admission": ADMISSION, "Rejection": REJECTION,
    "RejectionList": REJECTION_LIST,
}

#: every component schema of the API
COMPONENTS: dict[str, Schema] = {**SCHEMAS, **OPS_SCHEMAS, **HOOK_SCHEMAS, **MESSAGE_SCHEMAS, **TRIGGER_API_SCHEMAS,
                                 **HATCHET_API_SCHEMAS}
