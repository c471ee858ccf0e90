"""Hatchet's REST API for runs in the route table: the paths, query names and bodies hatchet-sdk's runs
client (1.x) sends for runs.get, get_status, get_task_run, list, cancel, replay and the bulk calls by
filter, so that a client whose token is a Baton key keeps working.

The SDK sends its token as ``Authorization: Bearer <token>``, which is how every Baton key is presented;
it reads the tenant id from the token (a JWT's ``sub``), and the tenant in a path must be the key's
project's (the hatchet view's tenantId), else 403.
"""

from __future__ import annotations

from .handlers_hatchet import (
    ACT_LIMIT,
    IDS_LIMIT,
    PAGE_SIZE,
    h_hapi_cancel,
    h_hapi_external_ids,
    h_hapi_get,
    h_hapi_list,
    h_hapi_replay,
    h_hapi_status,
    h_hapi_task,
    h_hapi_trigger,
)
from .hatchet_public import HATCHET_STATUSES, RUNNING_FILTERS
from .routing import Param, Route
from .schemas_hatchet import PAIR, UUID, uuids

__all__ = ["HATCHET_API_ROUTES"]

_TAG = "Hatchet API"
_RUN = Param("run_id", {"type": "string", "minLength": 1, "maxLength": 132},
             "The run's id as the hatchet view shows it (a UUID); Baton's own id is accepted too",
             location="path", required=True)
_TENANT = Param("tenant", UUID, "The key's project's tenant id (the hatchet view's tenantId); another answers 403",
                location="path", required=True)
_TIME = {"type": "string", "format": "date-time"}
_SELECT = (
    Param("since", _TIME, "Created at or after", required=True),
    Param("until", _TIME, "Created at or before"),
    Param("statuses", {"type": "array", "items": {"type": "string", "enum": list(HATCHET_STATUSES)}, "minItems": 1,
                       "maxItems": len(HATCHET_STATUSES)}, "Any of these V1TaskStatus"),
    Param("workflow_ids", uuids(50, minItems=1), "Runs of any of these workflows (a job's workflowId)"),
    Param("additional_metadata", {"type": "array", "items": PAIR, "minItems": 1, "maxItems": 20},
          "key:value pairs of additionalMetadata (a run's metadata and labels); a value holding a comma cannot be "
          "given"),
    Param("running_filter", {"type": "string", "enum": list(RUNNING_FILTERS)},
          "Within RUNNING: ON_WORKER executing runs, EVICTED runs in a durable wait, ALL both (default)"),
)
_LIST = (
    _TENANT, *_SELECT,
    Param("offset", {"type": "integer", "minimum": 0, "maximum": 100_000, "default": 0}, "Runs to skip"),
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": PAGE_SIZE},
          f"Page size (default {PAGE_SIZE})"),
    Param("additional_metadata_operator", {"type": "string", "enum": ["OR", "AND"]},
          "Any of the pairs (OR, default) or all of them (AND)"),
    Param("only_tasks", {"type": "boolean"}, "Every Baton run is a task (none is a DAG): either lists the same"),
    Param("parent_task_external_id", UUID, "Children of this run"),
    Param("idempotency_keys", {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128},
                               "minItems": 1, "maxItems": 50}, "Runs created with any of these idempotency keys"),
    Param("include_payloads", {"type": "boolean"}, "false: input and output are {} (default true)"),
    Param("include_num_pages", {"type": "boolean"}, "false: pagination.num_pages is 0 (default true)"),
)
#: what the SDK can send that Baton cannot serve, and why
_REFUSED = {
    "worker_id": "Baton's workers are its nodes, named by Baton, not Hatchet worker UUIDs",
    "triggering_event_external_id": "a Baton run does not record the event that triggered it",
}
_NF = (404,)

HATCHET_API_ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/v1/stable/tenants/{tenant}/workflow-runs/trigger", h_hapi_trigger,
          "hatchetApiTriggerWorkflowRun", "Trigger a workflow run (runs.create)", _TAG,
          "A run of the Baton job named as the workflow, with the input; additionalMetadata is its metadata and "
          "priority (1 to 3) its Baton priority. Answered as runs.get answers the run.", params=(_TENANT,),
          body="HatchetTriggerRequest", body_required=True, responses={200: ("The new run", "HatchetRunDetails")},
          errors=(403, 404, 429)),
    Route("GET", "/api/v1/stable/workflow-runs/{run_id}", h_hapi_get, "hatchetApiGetWorkflowRun",
          "Get a workflow run (runs.get)", _TAG,
          "The run in the hatchet view, its status changes and failed attempts as task events, and itself as "
          "the one task of its shape and tasks.", params=(_RUN,),
          responses={200: ("The run", "HatchetRunDetails")}, errors=_NF),
    Route("GET", "/api/v1/stable/workflow-runs/{run_id}/status", h_hapi_status, "hatchetApiGetWorkflowRunStatus",
          "Get a workflow run's status (runs.get_status)", _TAG, params=(_RUN,),
          responses={200: ("Its V1TaskStatus (a JSON string)", "HatchetTaskStatus")}, errors=_NF),
    Route("GET", "/api/v1/stable/tasks/{run_id}", h_hapi_task, "hatchetApiGetTask", "Get a task (runs.get_task_run)",
          _TAG, params=(_RUN,), responses={200: ("The run as a task", "HatchetTaskSummary")}, errors=_NF),
    Route("GET", "/api/v1/stable/tenants/{tenant}/workflow-runs", h_hapi_list, "hatchetApiListWorkflowRuns",
          "List runs (runs.list)", _TAG,
          "Newest first, by offset and limit; pagination.next_page is given while more runs follow. A page far "
          "down walks the runs before it: past api_scan_limit x 10 runs examined it answers 400 (too_broad). "
          "worker_id and triggering_event_external_id answer 400 (unsupported_parameter).",
          params=_LIST, responses={200: ("A page of runs", "HatchetTaskSummaryList")}, errors=(403,),
          refused=_REFUSED),
    Route("GET", "/api/v1/stable/tenants/{tenant}/workflow-runs/external-ids", h_hapi_external_ids,
          "hatchetApiListExternalIds", "List run ids (the bulk calls by filter)", _TAG,
          f"The ids of the runs a filter selects, newest first; more than {IDS_LIMIT} answer 400 (too_many_runs).",
          params=(_TENANT, *_SELECT), responses={200: ("Run ids", "HatchetExternalIds")}, errors=(403,)),
    Route("POST", "/api/v1/stable/tenants/{tenant}/tasks/cancel", h_hapi_cancel, "hatchetApiCancelTasks",
          "Cancel runs (runs.cancel, bulk_cancel)", _TAG,
          "By ids or by filter (the live runs it selects). A run that already finished is left as it is and is "
          f"not among the ids answered; a filter selecting more than {ACT_LIMIT} runs answers 400 "
          "(too_many_runs) before canceling any.", params=(_TENANT,), body="HatchetTaskRequest",
          body_required=True, responses={200: ("The runs canceled", "HatchetTaskIds")}, errors=(403,)),
    Route("POST", "/api/v1/stable/tenants/{tenant}/tasks/replay", h_hapi_replay, "hatchetApiReplayTasks",
          "Replay runs (runs.replay, bulk_replay)", _TAG,
          "By ids or by filter (the finished runs it selects). Each finished run starts again as a new run with "
          "the same input and options (replay_of); the answer's ids are the new runs'. A live run is not "
          f"replayed; a filter selecting more than {ACT_LIMIT} runs answers 400 (too_many_runs) before replaying "
          "any.", params=(_TENANT,), body="HatchetTaskRequest", body_required=True,
          responses={200: ("The new runs", "HatchetTaskIds")}, errors=(403,)),
)
