"""Trigger.dev's public run API in the route table: the paths, query names and bodies that
@trigger.dev/sdk (4.x) sends for tasks.trigger, batch.trigger (tasks.batchTrigger), batch.retrieve,
runs.retrieve, runs.list (with or without a project ref), runs.cancel, runs.replay, runs.reschedule,
idempotencyKeys.reset, the waitpoint token calls and queues.list, queues.retrieve, queues.pause and
queues.resume, so that a client configured with ``baseURL`` = Baton and a Baton key keeps working.

The SDK sends the key as ``Authorization: Bearer <key>``, which is how every Baton key is presented.
"""

from __future__ import annotations

from .handlers_trigger import (
    PAGE_SIZE,
    h_tapi_cancel,
    h_tapi_idempotency_reset,
    h_tapi_list,
    h_tapi_project_list,
    h_tapi_replay,
    h_tapi_reschedule,
    h_tapi_retrieve,
)
from .routing import Param, Route
from .run_helpers import RUN_ID
from .schemas_trigger import DURATION_PATTERN, QUEUE_KINDS
from .trigger_batches import h_tapi_batch_create, h_tapi_batch_items, h_tapi_batch_retrieve, h_tapi_batch_trigger
from .trigger_public import PUBLIC_STATUSES
from .trigger_queues import (
    QUEUES_PER_PAGE,
    h_tapi_queue_concurrency,
    h_tapi_queue_list,
    h_tapi_queue_pause,
    h_tapi_queue_retrieve,
)
from .trigger_tasks import h_tapi_trigger
from .trigger_tokens import (
    TOKEN_STATUS,
    h_tapi_token_complete,
    h_tapi_token_create,
    h_tapi_token_list,
    h_tapi_token_retrieve,
)

__all__ = ["TRIGGER_API_ROUTES"]

_TAG = "Trigger.dev API"
_QUEUE = Param("queue", {"type": "string", "minLength": 1, "maxLength": 200},
               "The queue's id (queue_ and its name), or its name", location="path", required=True)
_NAME = {"type": "string", "minLength": 1, "maxLength": 128}
_MS = {"type": "integer", "minimum": 0, "maximum": 2**53}


#: how the list filters read an empty value: as Trigger.dev's server does (its SDK sends ``filter[tag]=`` for
#: ``tag: []``)
_EMPTY = "; empty: no filter, as in Trigger.dev"


def _names(name: str, description: str) -> Param:
    """A comma-separated list filter (any of the names)."""
    return Param(name, {"type": "array", "items": _NAME, "minItems": 1, "maxItems": 50}, description + _EMPTY,
                 empty_is_absent=True)


_FILTERS = (
    Param("filter[status]", {"type": "array", "items": {"type": "string", "enum": list(PUBLIC_STATUSES)},
                             "minItems": 1, "maxItems": len(PUBLIC_STATUSES)},
          "Comma-separated public statuses (PENDING_VERSION, DEQUEUED and SYSTEM_FAILURE select none: Baton runs "
          "never show them)" + _EMPTY, empty_is_absent=True),
    _names("filter[taskIdentifier]", "Comma-separated job names"),
    _names("filter[tag]", "Runs carrying any of these comma-separated tags"),
    _names("filter[queue]", "Comma-separated queue names (Baton's; a task's own queue task/NAME does not exist)"),
    Param("filter[batch]", _NAME, "Runs of one batch trigger (its batch_id)"),
    Param("filter[isTest]", {"type": "boolean"}, "Baton has no test runs: true lists none"),
    Param("filter[createdAt][from]", _MS, "Created at or after (epoch ms)"),
    Param("filter[createdAt][to]", _MS, "Created at or before (epoch ms)"),
    Param("filter[createdAt][period]", {"type": "string", "pattern": DURATION_PATTERN},
          "Created within this period before now (e.g. 1h, 7d, 1w2d)"),
    Param("page[size]", {"type": "integer", "minimum": 1, "maximum": 100, "default": PAGE_SIZE},
          f"Page size (at most 100, default {PAGE_SIZE})"),
    Param("page[after]", {"type": "string", "minLength": 1, "maxLength": 200},
          "pagination.next of the previous page, or a run's id (run_...): the runs after it"),
)
#: what the SDK can send that Baton cannot serve, and why
_REFUSED = {
    "filter[version]": "Baton lists runs by status, task, tag, queue, batch and creation time, not by version",
    "filter[bulkAction]": "a Baton run does not record the bulk action that acted on it",
    "filter[schedule]": "a Baton run does not record the schedule that started it",
    "filter[machine]": "Baton has no machine presets",
    "filter[region]": "Baton has no regions",
    "page[before]": "Baton's run lists page forward only (pagination.previous is never given)",
}
_NF = (404,)
_BATCH_ID = Param("batch_id", {"type": "string", "pattern": "^batch_[A-Za-z0-9_-]{1,100}$"},
                  "The batch (batch_...)", location="path", required=True)
_TOKEN_ID = Param("token_id", {"type": "string", "minLength": 1, "maxLength": 200}, "The token (wpt_...)",
                  location="path", required=True)
_ITEMS_AS = ("Each item is read as tasks.trigger reads its body. An item whose task is not a Baton job, or that asks "
             "what Baton cannot honour, makes no run: the batch lists why in processing.errors (PARTIAL_FAILED).")

TRIGGER_API_ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/v1/tasks/{task_id}/trigger", h_tapi_trigger, "triggerApiTriggerTask",
          "Trigger a task (tasks.trigger)", _TAG,
          "A run of the Baton job named as the task, with the payload (JSON text, payloadType application/json) as "
          "its input. Options as Baton's: delay (a duration or a date), ttl, idempotencyKey (isCached: true when it "
          "named a run already made) and idempotencyKeyTTL, tags, metadata, maxAttempts, maxDuration (timeout, "
          "s), priority (Baton's: an integer from -1000 to 1000, higher first), concurrencyKey, queue (a Baton "
          "queue), lockToVersion (the job's version), debounce (mode trailing). What Baton cannot honour answers "
          "400 unsupported_parameter: parentRunId and the other in-task options, machine, region, concurrency, "
          "gates, test runs, superjson payloads, debounce mode leading.",
          params=(Param("task_id", {**_NAME, "maxLength": 100}, "The task: a Baton job's name", location="path",
                        required=True),),
          body="TriggerApiTriggerRequest", responses={200: ("The new run", "TriggerApiTriggered")},
          errors=(404, 429)),
    Route("POST", "/api/v3/batches", h_tapi_batch_create, "triggerApiCreateBatch",
          "Create a batch (batch.trigger, phase 1)", _TAG,
          "A batch of runCount items (at most 1000), sent next to its items endpoint. The same idempotencyKey again "
          "answers the same batch with isCached: true (the SDK then sends no items). parentRunId and "
          "resumeParentOnCompletion (a batch triggered inside a task) answer 400 unsupported_parameter.",
          body="TriggerApiBatchCreateRequest", body_required=True,
          responses={200: ("The batch", "TriggerApiBatchCreated")}),
    Route("POST", "/api/v3/batches/{batch_id}/items", h_tapi_batch_items, "triggerApiStreamBatchItems",
          "Send a batch's items (batch.trigger, phase 2)", _TAG,
          "The items as NDJSON (application/x-ndjson), one {index, task, payload, options} per line; each makes a "
          "run of the job named as its task, with the batch's id as its batch_id. An index received before makes "
          "nothing (itemsDeduplicated): a stream sent again is safe. The batch is sealed once every index below "
          "its runCount came. A line that is not a valid item, or an index past runCount, refuses the whole body "
          "(400) before any run is made. " + _ITEMS_AS,
          params=(_BATCH_ID,), body="TriggerApiBatchItem", body_required=True, body_lines=True,
          responses={200: ("What the items did", "TriggerApiBatchItemsResult")}, errors=_NF),
    Route("POST", "/api/v2/tasks/batch", h_tapi_batch_trigger, "triggerApiBatchTrigger",
          "Trigger a batch in one request (batchTriggerV3 of earlier 4.x SDKs)", _TAG,
          "Makes a batch of the items (at most 1000), indexed by their place, as the two calls above would. "
          + _ITEMS_AS, body="TriggerApiBatchTriggerRequest", body_required=True,
          responses={200: ("The batch", "TriggerApiBatchTriggered")}),
    Route("GET", "/api/v2/batches/{batch_id}", h_tapi_batch_retrieve, "triggerApiRetrieveBatch",
          "Get a batch (batch.retrieve)", _TAG,
          "The batch's runs by index and the items that made none. PROCESSING until every item came; then ABORTED "
          "when none made a run, PARTIAL_FAILED when some did not, else PENDING until all its runs finished, then "
          "COMPLETED. processing.completedAt is when its last run was made.",
          params=(_BATCH_ID,), responses={200: ("The batch", "TriggerApiBatch")}, errors=_NF),
    Route("POST", "/api/v1/waitpoints/tokens", h_tapi_token_create, "triggerApiCreateWaitpointToken",
          "Create a waitpoint token (wait.createToken): refused", _TAG,
          "Answers 400 unsupported_operation: a Baton token is made by the run that waits for it (ctx.create_token "
          "in its handler); the other token calls serve the tokens runs made."),
    Route("GET", "/api/v1/waitpoints/tokens", h_tapi_token_list, "triggerApiListWaitpointTokens",
          "List waitpoint tokens (wait.listTokens)", _TAG,
          "The project's tokens, newest first, in one page (of the 500 newest read; pagination.next is never "
          "given). Statuses: WAITING, COMPLETED, TIMED_OUT (an expired token).",
          params=(Param("filter[status]", {"type": "array", "items": {"type": "string", "enum": list(
                      TOKEN_STATUS.values())}, "minItems": 1}, "Comma-separated statuses" + _EMPTY,
                        empty_is_absent=True),
                  _names("filter[tags]", "Tokens carrying any of these comma-separated tags"),
                  Param("filter[createdAt][from]", _MS, "Created at or after (epoch ms)"),
                  Param("filter[createdAt][to]", _MS, "Created at or before (epoch ms)"),
                  Param("filter[createdAt][period]", {"type": "string", "pattern": DURATION_PATTERN},
                        "Created within this period before now (e.g. 1h, 7d)"),
                  Param("page[size]", {"type": "integer", "minimum": 1, "maximum": 100, "default": PAGE_SIZE},
                        f"Page size (at most 100, default {PAGE_SIZE})")),
          responses={200: ("Tokens", "TriggerApiWaitpointTokenPage")},
          refused={"filter[idempotencyKey]": "a Baton token has no idempotency key (its run makes it once)",
                   "page[after]": "Baton's token listing is one page, newest first",
                   "page[before]": "Baton's token listing is one page, newest first"}),
    Route("GET", "/api/v1/waitpoints/tokens/{token_id}", h_tapi_token_retrieve, "triggerApiRetrieveWaitpointToken",
          "Get a waitpoint token (wait.retrieveToken)", _TAG, "With its output (JSON text) once completed.",
          params=(_TOKEN_ID,), responses={200: ("The token", "TriggerApiWaitpointToken")}, errors=_NF),
    Route("POST", "/api/v1/waitpoints/tokens/{token_id}/complete", h_tapi_token_complete,
          "triggerApiCompleteWaitpointToken", "Complete a waitpoint token (wait.completeToken)", _TAG,
          "The run waiting for the token resumes with data. A token settles once: 409 already_completed after a "
          "completion, 410 token_expired after its timeout.", params=(_TOKEN_ID,), body="TriggerApiWaitpointComplete",
          responses={200: ("Completed", "TriggerApiWaitpointCompleted")}, errors=(404, 409, 410)),
    Route("GET", "/api/v1/queues", h_tapi_queue_list, "triggerApiListQueues", "List queues (queues.list)", _TAG,
          "Every queue Baton knows, by name, as custom V2 queues (running: executing runs, queued: queued ones; no "
          "concurrency limit of its own). A deployment's queues: a key of an operator project.",
          params=(Param("page", {"type": "integer", "minimum": 1, "maximum": 100_000, "default": 1}, "Page number"),
                  Param("perPage", {"type": "integer", "minimum": 1, "maximum": 100, "default": QUEUES_PER_PAGE},
                        f"Queues per page (at most 100, default {QUEUES_PER_PAGE})")),
          responses={200: ("A page of queues", "TriggerApiQueuePage")}, operator=True),
    Route("GET", "/api/v1/queues/{queue}", h_tapi_queue_retrieve, "triggerApiRetrieveQueue",
          "Get a queue (queues.retrieve)", _TAG,
          "By its id (queue_ and its name), or by type and name: custom, a queue's name; task, the queue the job of "
          "that name runs in.", params=(_QUEUE, Param("type", {"type": "string", "enum": list(QUEUE_KINDS)},
                                                       "How the path names the queue (default id)")),
          responses={200: ("The queue", "TriggerApiQueue")}, errors=_NF, operator=True),
    Route("POST", "/api/v1/queues/{queue}/pause", h_tapi_queue_pause, "triggerApiPauseQueue",
          "Pause or resume a queue (queues.pause, queues.resume)", _TAG,
          "While paused no node leases its runs; runs keep arriving and running ones go on.", params=(_QUEUE,),
          body="TriggerApiQueuePause", body_required=True, responses={200: ("The queue", "TriggerApiQueue")},
          errors=_NF, operator=True),
    *(Route("POST", f"/api/v1/queues/{{queue}}/concurrency/{verb}", h_tapi_queue_concurrency,
            f"triggerApi{verb.capitalize()}QueueConcurrency", f"{verb.capitalize()} a queue's concurrency limit "
            f"(queues.{verb}ConcurrencyLimit): refused", _TAG,
            "Answers 400 unsupported_operation: a Baton queue has no concurrency limit of its own (a job's is set "
            "with PUT /v1/jobs/{job}/limits, a shared pool's with PUT /v1/limits/{name}).", params=(_QUEUE,),
            body="TriggerApiQueueConcurrency", errors=_NF, operator=True) for verb in ("override", "reset")),
    Route("POST", "/api/v1/idempotencyKeys/{key}/reset", h_tapi_idempotency_reset, "triggerApiResetIdempotencyKey",
          "Reset an idempotency key (idempotencyKeys.reset)", _TAG,
          "The run of the task that holds the key forgets it (as DELETE /v1/runs/{run_id}/idempotency-key): the next "
          "trigger with the key makes a new run. The key as the SDK sends it (hashed as tasks.trigger hashed it).",
          params=(Param("key", {"type": "string", "minLength": 1, "maxLength": 128}, "The idempotency key",
                        location="path", required=True),),
          body="TriggerApiIdempotencyReset", body_required=True,
          responses={200: ("The run that held it", "TriggerApiRunId")}, errors=_NF),
    Route("GET", "/api/v3/runs/{run_id}", h_tapi_retrieve, "triggerApiRetrieveRun", "Get a run (runs.retrieve)", _TAG,
          "The run as Trigger.dev's public API answers it: public statuses, status booleans, relatedRuns with "
          "root, parent and children in full. costInCents and baseCostInCents are 0 (Baton has no billing).",
          params=(RUN_ID,), responses={200: ("The run", "TriggerApiRun")}, errors=_NF),
    Route("GET", "/api/v1/runs", h_tapi_list, "triggerApiListRuns", "List runs (runs.list)", _TAG,
          "Newest first; pagination.next continues (as page[after]). A status filter is exact, so a page may hold "
          "fewer runs than page[size] and still have a next page. filter[version], filter[bulkAction], "
          "filter[schedule], filter[machine], filter[region] and page[before] answer 400 (unsupported_parameter).",
          params=_FILTERS, responses={200: ("A page of runs", "TriggerApiRunPage")}, refused=_REFUSED),
    Route("GET", "/api/v1/projects/{project_ref}/runs", h_tapi_project_list, "triggerApiListProjectRuns",
          "List a project's runs (runs.list with a project ref)", _TAG,
          "As GET /api/v1/runs: the caller's runs. A Baton deployment is one Trigger.dev project whose environments "
          "are Baton's projects (each listed run's env), so any project ref names it, and filter[env] lists the "
          "caller's runs only when it names the caller's project (none otherwise).",
          params=(Param("project_ref", {"type": "string", "minLength": 1, "maxLength": 200},
                        "The project's ref (any: a deployment is one project)", location="path", required=True),
                  *_FILTERS, _names("filter[env]", "Comma-separated environments: Baton projects")),
          responses={200: ("A page of runs", "TriggerApiRunPage")}, refused=_REFUSED),
    Route("POST", "/api/v1/runs/{run_id}/replay", h_tapi_replay, "triggerApiReplayRun",
          "Replay a finished run (runs.replay)", _TAG,
          "A new run with the same input and options (replay_of); the SDK's replay options cannot be honoured and "
          "answer 400. 409 while the run has not finished.", params=(RUN_ID,), body="TriggerApiReplayRequest",
          responses={200: ("The new run", "TriggerApiRunId")}, errors=(404, 409)),
    Route("POST", "/api/v2/runs/{run_id}/cancel", h_tapi_cancel, "triggerApiCancelRun", "Cancel a run (runs.cancel)",
          _TAG, "As DELETE /v1/runs/{run_id}; a run that already finished is left as it is (200 all the same, as "
                "Trigger.dev answers).", params=(RUN_ID,), responses={200: ("The run", "TriggerApiRunId")}, errors=_NF),
    Route("POST", "/api/v1/runs/{run_id}/reschedule", h_tapi_reschedule, "triggerApiRescheduleRun",
          "Reschedule a run (runs.reschedule)", _TAG,
          "A queued, delayed or paused run starts after `delay` (a duration from now, by the Redis clock, or an "
          "ISO-8601 time); 409 for executing, waiting or finished runs.", params=(RUN_ID,),
          body="TriggerApiRescheduleRequest", body_required=True, responses={200: ("The run", "TriggerApiRun")},
          errors=(404, 409)),
)
