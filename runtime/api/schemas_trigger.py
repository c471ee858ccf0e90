"""JSON Schemas of Trigger.dev's public run API (runtime/api/trigger_public.py): the shapes the SDK's
schemas parse, with every date a run may lack left out rather than null."""

from __future__ import annotations

from .schemas import ANY, BATCH_MAX, BOOL, INT, OBJ, STR, TIME, Schema, _obj, ref
from .trigger_public import PUBLIC_STATUSES

__all__ = ["DURATION_PATTERN", "QUEUE_KINDS", "TRIGGER_API_SCHEMAS"]

#: a Trigger.dev duration: weeks, days, hours, minutes, seconds, each at most once, in that order
DURATION_PATTERN = r"^(?=\d)(?:(\d{1,6})w)?(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?$"

_NUM: Schema = {"type": "number"}
_FLAGS = ("isQueued", "isExecuting", "isWaiting", "isCompleted", "isSuccess", "isFailed", "isCancelled", "isTest")
#: the fields every run has (the SDK's CommonRunFields); the optional ones last
_COMMON: dict[str, Schema] = {
    "id": {**STR, "pattern": "^run_"}, "status": {"type": "string", "enum": list(PUBLIC_STATUSES)},
    "taskIdentifier": STR, **dict.fromkeys(_FLAGS, BOOL), "createdAt": TIME, "updatedAt": TIME,
    "tags": {"type": "array", "items": STR}, "costInCents": _NUM, "baseCostInCents": _NUM, "durationMs": _NUM,
    "metadata": OBJ,
    "idempotencyKey": STR, "version": STR, "startedAt": TIME, "finishedAt": TIME, "delayedUntil": TIME,
    "expiredAt": TIME,
}
_COMMON_REQUIRED = [name for name in _COMMON if name not in (
    "idempotencyKey", "version", "startedAt", "finishedAt", "delayedUntil", "expiredAt")]
_RELATED: dict[str, Schema] = {
    **_COMMON, "depth": INT,
    "triggerFunction": {"type": "string", "enum": ["triggerAndWait", "trigger", "batchTriggerAndWait", "batchTrigger"]},
    "batchId": STR,
}
_RELATED_REQUIRED = [*_COMMON_REQUIRED, "depth", "triggerFunction"]

RELATED = _obj(_RELATED, _RELATED_REQUIRED, description="A related run (the SDK's RelatedRunDetails).")
RUN = _obj({
    **_RELATED, "payload": ANY, "output": ANY, "attemptCount": INT,
    "error": _obj({"message": STR, "name": STR, "stackTrace": STR}, ["message"]),
    "relatedRuns": _obj({"root": ref("TriggerApiRelatedRun"), "parent": ref("TriggerApiRelatedRun"),
                         "children": {"type": "array", "items": ref("TriggerApiRelatedRun")}}, ["children"]),
}, [*_RELATED_REQUIRED, "attemptCount", "relatedRuns"],
    description="A run as Trigger.dev's public API answers runs.retrieve (the SDK's RetrieveRunResponse).")
ITEM = _obj({**_COMMON, "env": _obj({"id": STR, "name": STR})}, [*_COMMON_REQUIRED, "env"],
            description="A run in a list (the SDK's ListRunResponseItem); env is the run's project.")
PAGE = _obj({
    "data": {"type": "array", "items": ref("TriggerApiRunItem")},
    "pagination": _obj({"next": {**STR, "description": "page[after] of the next page; absent on the last"},
                        "previous": STR}, []),
}, description="A page of runs, newest first; Baton pages forward only, so `previous` is never given.")
RUN_ID = _obj({"id": {**STR, "pattern": "^run_"}}, description="The run acted on, or the new run of a replay.")
REPLAY = _obj({}, [], extra=False, description=(
    "Nothing: Baton replays a run with its own input and options, so none of the SDK's replay options "
    "(payload, tags, delay ...) can be honoured, and a body with any of them answers 400."))
RESCHEDULE = _obj({"delay": {"type": "string", "anyOf": [{"pattern": DURATION_PATTERN}, {"format": "date-time"}],
                             "description": "a duration from now (1h30m, 2d, 45s) or an ISO-8601 time"}},
                  extra=False)

TRIGGERED = _obj({"id": {**STR, "pattern": "^run_"}, "isCached": BOOL}, ["id"],
                 description="The new run (the SDK's TriggerTaskResponse); isCached: an idempotency key named it.")
_DURATION_OR_SECONDS: Schema = {"anyOf": [{"type": "string"}, {"type": "number"}],
                                "description": "a duration (30s, 1h30m, 2d) or seconds"}
#: the trigger options Baton reads (runtime/api/trigger_tasks.py); any other the SDK sends reaches the handler,
#: which refuses by name what Baton cannot honour (machine, region, parentRunId ...)
TRIGGER_OPTIONS = _obj({
    "payloadType": {"type": "string", "description": "application/super+json (the SDK's for any value but a "
                    "string: its json part is the input), application/json, text/plain"},
    "delay": {"type": "string", "description": "a duration from now or an ISO-8601 time"},
    "ttl": _DURATION_OR_SECONDS, "idempotencyKey": STR, "idempotencyKeyTTL": _DURATION_OR_SECONDS,
    "tags": {"anyOf": [STR, {"type": "array", "items": STR}]}, "metadata": OBJ, "maxAttempts": INT,
    "maxDuration": {"type": "number", "description": "seconds: the run's timeout"},
    "priority": {"type": "integer", "description": "Baton's priority: -1000 to 1000, higher first"},
    "concurrencyKey": STR, "lockToVersion": {**STR, "description": "the job's version"},
    "queue": _obj({"name": {**STR, "description": "a Baton queue"}}, ["name"]),
    "debounce": _obj({"key": STR, "delay": STR, "mode": {"type": "string", "enum": ["leading", "trailing"],
                                                           "description": "only trailing is served"},
                      "maxDelay": STR}, ["key", "delay"]),
}, [], description="Trigger.dev's trigger options (the SDK's TriggerTaskRequestBody.options), as far as Baton reads "
                   "them")
TRIGGER = _obj({"payload": {**ANY, "description": "the input, written as payloadType says (superjson text from the "
                            "SDK)"}, "context": ANY, "options": TRIGGER_OPTIONS},
               [], extra=False, description="What tasks.trigger posts: the payload, and the options.")

_COUNT: Schema = {"type": "integer", "minimum": 0}
_NOT_IN_A_TASK = "refused when set: a Baton run is not started from inside a Trigger.dev task"
BATCH_CREATE = _obj({
    "runCount": {"type": "integer", "minimum": 1, "maximum": BATCH_MAX,
                 "description": "the items the stream will hold"},
    "taskIdentifiers": {"type": "array", "items": {**STR, "minLength": 1}, "minItems": 1},
    "idempotencyKey": {**STR, "maxLength": 2048, "description": "the same key again answers the same batch "
                       "(isCached), whose items are not sent again"},
    "idempotencyKeyOptions": OBJ,
    "parentRunId": {**STR, "description": _NOT_IN_A_TASK}, "resumeParentOnCompletion": {**BOOL, "description":
                                                                                          _NOT_IN_A_TASK},
}, ["runCount"], extra=False, description="What batch.trigger posts first (the SDK's CreateBatchRequestBody).")
BATCH_CREATED = _obj({"id": {**STR, "pattern": "^batch_"}, "runCount": INT, "isCached": BOOL, "idempotencyKey": STR},
                     ["id", "runCount", "isCached"], description="The batch (the SDK's CreateBatchResponse).")
BATCH_ITEM = _obj({
    "index": {"type": "integer", "minimum": 0, "maximum": BATCH_MAX - 1,
              "description": "the item's place in the batch, below its runCount: sent again, it makes nothing"},
    "task": {**STR, "minLength": 1, "description": "a Baton job's name"},
    "payload": {**ANY, "description": "the input, written as options.payloadType says"},
    "options": TRIGGER_OPTIONS,
}, ["index", "task"], extra=False, description="One line of the item stream (the SDK's BatchItemNDJSON).")
BATCH_ITEMS_RESULT = _obj({
    "id": STR, "itemsAccepted": _COUNT, "itemsDeduplicated": _COUNT,
    "sealed": {**BOOL, "description": "every index below runCount has been received"},
    "enqueuedCount": {**_COUNT, "description": "the items received so far, when not sealed"},
    "expectedCount": {**_COUNT, "description": "runCount, when not sealed"},
}, ["id", "itemsAccepted", "itemsDeduplicated", "sealed"],
    description="What the item stream did (the SDK's StreamBatchItemsResponse).")
BATCH = _obj({
    "id": STR, "status": {"type": "string", "enum": ["PROCESSING", "PENDING", "COMPLETED", "PARTIAL_FAILED", "ABORTED"],
                          "description": "PROCESSING until every item was received; then ABORTED when no item made a "
                          "run, PARTIAL_FAILED when some did not, else PENDING until every run finished, then "
                          "COMPLETED"},
    "idempotencyKey": STR, "createdAt": TIME, "updatedAt": TIME, "runCount": INT,
    "runs": {"type": "array", "items": {**STR, "pattern": "^run_"}, "description": "the items' runs, by index"},
    "processing": _obj({"completedAt": TIME, "errors": {"type": "array", "items": _obj({
        "index": INT, "taskIdentifier": STR, "error": STR, "errorCode": STR}, ["index", "taskIdentifier", "error"])}},
        ["errors"]),
}, ["id", "status", "createdAt", "updatedAt", "runCount", "runs", "processing"],
    description="A batch (the SDK's RetrieveBatchV2Response).")
BATCH_TRIGGER = _obj({
    "items": {"type": "array", "minItems": 1, "maxItems": BATCH_MAX, "items": _obj({
        "task": {**STR, "minLength": 1}, "payload": ANY, "context": ANY, "options": TRIGGER_OPTIONS}, ["task"],
        extra=False)},
    "parentRunId": {**STR, "description": _NOT_IN_A_TASK},
    "resumeParentOnCompletion": {**BOOL, "description": _NOT_IN_A_TASK},
}, ["items"], extra=False, description="A batch in one request (the SDK's BatchTriggerTaskV3RequestBody).")
BATCH_TRIGGERED = _obj({"id": {**STR, "pattern": "^batch_"}, "runCount": INT},
                       description="The batch (the SDK's BatchTriggerTaskV3Response).")

WAITPOINT_TOKEN = _obj({
    "id": STR, "url": {**STR, "description": "the pre-signed callback URL ('' when the server has no token_secret)"},
    "status": {"type": "string", "enum": ["WAITING", "COMPLETED", "TIMED_OUT"]}, "completedAt": TIME,
    "timeoutAt": TIME, "tags": {"type": "array", "items": STR}, "createdAt": TIME,
    "output": {**STR, "description": "what it was completed with, as JSON text"}, "outputType": STR,
    "outputIsError": BOOL,
}, ["id", "url", "status", "tags", "createdAt"], description="A waitpoint token (the SDK's WaitpointTokenItem; "
                                                            "retrieved, with its output).")
WAITPOINT_TOKEN_PAGE = _obj({"data": {"type": "array", "items": ref("TriggerApiWaitpointToken")},
                             "pagination": _obj({"next": STR}, [])},
                            description="The project's tokens, newest first: one page, no next.")
WAITPOINT_COMPLETE = _obj({"data": {**ANY, "description": "what the run's ctx.wait_for_token returns"}}, [],
                          extra=False, description="What wait.completeToken posts.")
WAITPOINT_COMPLETED = _obj({"success": {"const": True}}, description="The SDK's CompleteWaitpointTokenResponseBody.")

QUEUE = _obj({
    "id": {**STR, "pattern": "^queue_", "description": "queue_ and the queue's name"}, "name": STR,
    "type": {"const": "custom", "description": "every Baton queue is named by its jobs (none is a task's own)"},
    "running": {**INT, "description": "its executing runs"}, "queued": {**INT, "description": "its queued runs"},
    "paused": BOOL, "concurrencyLimit": {"type": "null", "description": "none of its own"},
    "version": {"const": "V2"},
}, ["id", "name", "type", "running", "queued", "paused", "concurrencyLimit", "version"],
    description="A queue (the SDK's QueueItem, V2).")
QUEUE_PAGE = _obj({"data": {"type": "array", "items": ref("TriggerApiQueue")}, "pagination": _obj({
    "currentPage": INT, "totalPages": INT, "count": {**INT, "description": "every queue, on all pages"}},
    ["currentPage", "totalPages", "count"])}, ["data", "pagination"], description="A page of queues, by name.")
#: how a queue call names a queue in its path (its ``type``): by its id, as a task's (the queue the task's job
#: runs in) or as a custom queue (its name)
QUEUE_KINDS = ("id", "task", "custom")
_QUEUE_KIND = {"type": "string", "enum": list(QUEUE_KINDS), "description": "how the path names the queue"}
QUEUE_PAUSE = _obj({"type": _QUEUE_KIND, "action": {"type": "string", "enum": ["pause", "resume"]}}, ["action"],
                   extra=False, description="What queues.pause and queues.resume post.")
QUEUE_CONCURRENCY = _obj({"type": _QUEUE_KIND, "concurrencyLimit": INT}, [],
                         description="What the concurrency limit calls post (refused).")

IDEMPOTENCY_RESET = _obj({"taskIdentifier": {**STR, "minLength": 1, "maxLength": 100,
                                              "description": "the job whose run holds the key"}},
                         ["taskIdentifier"], description="What idempotencyKeys.reset posts.")

TRIGGER_API_SCHEMAS: dict[str, Schema] = {
    "TriggerApiTriggerRequest": TRIGGER, "TriggerApiTriggered": TRIGGERED,
    "TriggerApiRun": RUN, "TriggerApiRelatedRun": RELATED, "TriggerApiRunItem": ITEM, "TriggerApiRunPage": PAGE,
    "TriggerApiRunId": RUN_ID, "TriggerApiReplayRequest": REPLAY, "TriggerApiRescheduleRequest": RESCHEDULE,
    "TriggerApiBatchCreateRequest": BATCH_CREATE, "TriggerApiBatchCreated": BATCH_CREATED,
    "TriggerApiBatchItem": BATCH_ITEM, "TriggerApiBatchItemsResult": BATCH_ITEMS_RESULT, "TriggerApiBatch": BATCH,
    "TriggerApiBatchTriggerRequest": BATCH_TRIGGER, "TriggerApiBatchTriggered": BATCH_TRIGGERED,
    "TriggerApiWaitpointToken": WAITPOINT_TOKEN, "TriggerApiWaitpointTokenPage": WAITPOINT_TOKEN_PAGE,
    "TriggerApiWaitpointComplete": WAITPOINT_COMPLETE, "TriggerApiWaitpointCompleted": WAITPOINT_COMPLETED,
    "TriggerApiQueue": QUEUE, "TriggerApiQueuePage": QUEUE_PAGE, "TriggerApiQueuePause": QUEUE_PAUSE,
    "TriggerApiQueueConcurrency": QUEUE_CONCURRENCY, "TriggerApiIdempotencyReset": IDEMPOTENCY_RESET,
}
