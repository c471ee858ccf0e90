"""The route table: every endpoint, its handler and its OpenAPI declaration (see routing.Route).

The handlers live by resource in handlers_runs, handlers_bulk, handlers_jobs and handlers_ops; the
operator endpoints (queues, schedules, job limits, nodes) in routes_ops; Trigger.dev's public run API
(the paths its SDK calls) in routes_trigger, Hatchet's (the paths hatchet-sdk's runs client calls) in
routes_hatchet.
"""

from __future__ import annotations

from .handlers_bulk import (
    h_bulk_cancel,
    h_bulk_delete,
    h_bulk_dlq_replay,
    h_bulk_replay,
    h_cancel_all,
    h_cancel_bulk_action,
    h_create_bulk_action,
    h_get_bulk_action,
    h_list_bulk_actions,
)
from .handlers_jobs import h_jobs, h_send_event, h_trigger, h_trigger_batch
from .handlers_ops import h_health, h_metrics, h_openapi, h_ready
from .handlers_runs import (
    h_cancel,
    h_checkpoints,
    h_children,
    h_debug,
    h_debug_bundle,
    h_dependency_status,
    h_dlq_replay,
    h_events,
    h_get_run,
    h_idem_reset,
    h_lineage,
    h_list_dlq,
    h_list_runs,
    h_logs,
    h_outputs,
    h_pause,
    h_replay,
    h_reschedule,
    h_restart,
    h_resume,
    h_state,
    h_steps,
    h_stream,
    h_stream_chunks,
    h_tool_calls,
    h_usage,
)
from .routes_hatchet import HATCHET_API_ROUTES
from .routes_hooks import HOOK_ROUTES
from .routes_messages import MESSAGE_ROUTES
from .routes_ops import OPS_ROUTES
from .routes_trigger import TRIGGER_API_ROUTES
from .routing import Param, Route
from .run_helpers import CURSOR, FILTERS, ID_VIEW, LAST_EVENT, LIMIT, PROJECT_ID, RUN_ID, RUN_ID_FILTER, VIEW

__all__ = ["ROUTES"]

# -- the table ------------------------------------------------------------------

_RUN = "Runs"
_BULK = "Bulk actions"
ACTION_ID = Param("action_id", {"type": "string", "pattern": "^bulk_[0-9a-f]{20}$"}, "The action's id",
                  location="path", required=True)
_NF = (404,)
_CONFLICT = (404, 409)
#: a run an action started: 201, or 200 in the strait view (as Strait answers)
_NEW_RUN: dict[int, tuple[str, str | None]] = {201: ("The new run", "Run"),
                                               200: ("The new run (strait view)", "Run")}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/runs", h_list_runs, "listRuns", "List runs", _RUN,
          "Newest first, stable order (created time, id) across partitions, filtered, cursor-paginated. A page "
          "examines at most api_scan_limit index entries (default 5000): a selective filter may return a short "
          "page with has_more=true; follow next_cursor. With run_id, that one run as a page (a search box's "
          "lookup: 200 whether or not it exists).",
          params=(*FILTERS, RUN_ID_FILTER, LIMIT, CURSOR, VIEW, PROJECT_ID),
          responses={200: ("A page of runs", "RunPage")}, errors=(403,)),
    Route("GET", "/v1/runs/dlq", h_list_dlq, "listDeadLetteredRuns", "List dead-lettered runs", _RUN,
          "Runs that exhausted their attempts, most recently dead-lettered first.",
          params=(Param("job", {"type": "string", "minLength": 1, "maxLength": 100}, "Job name"),
                  Param("queue", {"type": "string", "minLength": 1, "maxLength": 100}, "Queue name"),
                  LIMIT, CURSOR, VIEW, PROJECT_ID),
          responses={200: ("A page of dead-lettered runs", "RunPage")}, errors=(403,)),
    Route("POST", "/v1/runs/bulk-cancel", h_bulk_cancel, "bulkCancelRuns", "Cancel runs by id", _RUN,
          "Each id is canceled like DELETE /v1/runs/{run_id}; unknown, foreign or finished ids are reported per id.",
          params=(VIEW,), body="RunIds", body_required=True, responses={200: ("Per-run results", "BulkResult")}),
    Route("POST", "/v1/runs/bulk-cancel-all", h_cancel_all, "cancelAllMatchingRuns",
          "Cancel all live runs matching a filter", _RUN,
          "Filters as GET /v1/runs (as JSON); only live statuses (queued, delayed, executing, waiting, paused) "
          "are canceled; at most `limit` (default 1000) per call: repeat while has_more.",
          params=(VIEW, PROJECT_ID), body="CancelAllRequest", responses={200: ("Per-run results", "BulkResult")},
          errors=(403,)),
    Route("POST", "/v1/runs/bulk-replay", h_bulk_replay, "bulkReplayRuns", "Replay finished runs by id", _RUN,
          "Each finished run starts again as a new linked run (replay_of).", params=(VIEW,),
          body="RunIds", body_required=True, responses={200: ("New runs and per-run results", "BulkReplayResult")}),
    Route("POST", "/v1/runs/bulk-dlq-replay", h_bulk_dlq_replay, "bulkReplayDeadLetteredRuns",
          "Replay dead-lettered runs", _RUN,
          "The given dead-lettered runs, or (without run_ids) up to `limit` (default 100) not replayed yet. Each "
          "dead-lettered run is replayed from the queue at most once (any replay records replayed_as on its source, "
          "and one that has it is not replayed from the queue again).", params=(VIEW,),
          body="DlqReplayRequest", responses={200: ("New runs and per-run results", "DlqReplayResult")}),
    Route("POST", "/v1/runs/bulk-delete", h_bulk_delete, "bulkDeleteRuns", "Delete finished runs by id", _RUN,
          "Each finished run (e.g. a dead letter nobody will replay) is deleted with its whole history: record, "
          "input, timeline, steps, checkpoints, records and chunks; its idempotency key is forgotten. Live, "
          "unknown and foreign ids are reported per id (cancel a live run first).",
          body="RunIds", body_required=True, responses={200: ("Per-run results", "BulkDeleteResult")}),
    Route("POST", "/v1/bulk-actions", h_create_bulk_action, "createBulkAction",
          "Cancel or replay many runs in the background", _BULK,
          "Up to `limit` (at most 100,000) of the caller's runs matching `filter` (the filters of GET /v1/runs), "
          "newest first: `cancel` acts on live runs, `replay` on finished ones. Answers 202 at once; follow the "
          "action's progress at GET /v1/bulk-actions/{action_id} (Location header). The action survives a restart "
          "of this process: another API process takes it over where it stopped.", body="BulkActionRequest",
          body_required=True, responses={202: ("Started", "BulkAction")}),
    Route("GET", "/v1/bulk-actions", h_list_bulk_actions, "listBulkActions", "List bulk actions", _BULK,
          "The caller's project's actions, newest first (finished ones are kept a day).",
          responses={200: ("Bulk actions", "BulkActionList")}),
    Route("GET", "/v1/bulk-actions/{action_id}", h_get_bulk_action, "getBulkAction", "A bulk action's progress",
          _BULK, params=(ACTION_ID,), responses={200: ("The action", "BulkAction")}, errors=_NF),
    Route("DELETE", "/v1/bulk-actions/{action_id}", h_cancel_bulk_action, "cancelBulkAction",
          "Stop a bulk action", _BULK, "It stops after the run in hand (status canceled); what it did stays done.",
          params=(ACTION_ID,), responses={200: ("The action", "BulkAction")}, errors=_NF),
    Route("POST", "/v1/runs/batch", h_trigger_batch, "triggerBatch", "Trigger many runs (a batch)", "Jobs",
          "All runs get one batch_id (filter GET /v1/runs?batch_id=). The batch is validated whole: one invalid "
          "item rejects it.", body="BatchTriggerRequest", body_required=True,
          responses={201: ("The batch", "BatchTriggerResponse")}),
    Route("GET", "/v1/runs/{run_id}", h_get_run, "getRun", "Get a run", _RUN, params=(RUN_ID, VIEW),
          responses={200: ("The run", "Run")}, errors=_NF),
    Route("DELETE", "/v1/runs/{run_id}", h_cancel, "cancelRun", "Cancel a run", _RUN,
          "A queued, delayed, waiting or paused run ends canceled at once (result canceled); an executing one "
          "is stopped via its node (result cancel_requested). Unfinished children are canceled too.",
          params=(RUN_ID, VIEW), responses={200: ("What happened", "RunAction"), 204: ("Canceled (strait view)", None)},
          errors=_CONFLICT),
    Route("POST", "/v1/runs/{run_id}/replay", h_replay, "replayRun", "Replay a finished run", _RUN,
          "A new run with the same input and options, linked by replay_of; the source records it as replayed_as "
          "(its latest replay).", params=(RUN_ID, VIEW),
          responses=_NEW_RUN, errors=_CONFLICT),
    Route("POST", "/v1/runs/{run_id}/dlq-replay", h_dlq_replay, "replayDeadLetteredRun",
          "Replay a dead-lettered run", _RUN, "409 when the run is not dead-lettered or was already replayed "
          "from the queue.", params=(RUN_ID, VIEW), responses=_NEW_RUN, errors=_CONFLICT),
    Route("GET", "/v1/runs/{run_id}/stream", h_stream, "streamRunEvents", "Stream a run's events (SSE)", _RUN,
          "text/event-stream of the timeline (status, attempt, log, progress, step, checkpoint ... each as a "
          "RunEvent), ending with an `end` event when the run finishes. Event ids are stream ids: reconnect with "
          "Last-Event-ID to resume.", params=(RUN_ID, LAST_EVENT, ID_VIEW),
          responses={200: ("Server-sent events", None)}, media_type="text/event-stream", errors=_NF),
    Route("GET", "/v1/runs/{run_id}/stream/chunks", h_stream_chunks, "streamRunChunks",
          "Stream the chunks a run produces (SSE)", _RUN,
          "Each ctx.stream(chunk) as an event `chunk` as soon as it is written, then `end` when the run finishes. "
          "Resumable with Last-Event-ID.", params=(RUN_ID, LAST_EVENT, ID_VIEW),
          responses={200: ("Server-sent events", None)}, media_type="text/event-stream", errors=_NF),
    Route("GET", "/v1/runs/{run_id}/children", h_children, "listChildRuns", "List child runs", _RUN,
          "Runs this run triggered, by id (the cursor: the last child's id). In the strait view a bare array, "
          "newest first, paged as Strait's other lists (the cursor: the last child's created_at).",
          params=(RUN_ID, LIMIT, CURSOR, VIEW),
          responses={200: ("Child runs", "RunPage")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/events", h_events, "listRunEvents", "List a run's events", _RUN,
          "The timeline (capped at 1000 entries per run).",
          params=(RUN_ID, VIEW,
                  Param("level", {"type": "string", "enum": ["info", "warn", "error"]}, "Only this level"),
                  Param("type", {"type": "string", "minLength": 1, "maxLength": 64},
                        "Only this type (status, attempt, log, progress, step, checkpoint ...)")),
          responses={200: ("Events, oldest first", "RunEventList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/checkpoints", h_checkpoints, "listRunCheckpoints", "List a run's checkpoints",
          _RUN, params=(RUN_ID, VIEW), responses={200: ("Checkpoints, oldest first", "CheckpointList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/steps", h_steps, "listRunSteps", "List a run's steps", _RUN,
          "Baton's step records, or in the durably view durably's StepRecords (finished steps only).",
          params=(RUN_ID, VIEW), responses={200: ("Step records in step order", "StepList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/logs", h_logs, "listRunLogs", "List a run's logs", _RUN,
          "Every ctx.log entry as durably's LogEntry, oldest first (the same entries /events has as RunEvents).",
          params=(RUN_ID, ID_VIEW), responses={200: ("Log entries", "LogEntryList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/usage", h_usage, "listRunUsage", "List a run's AI model usage", _RUN,
          "Recorded with ctx.record_usage(...); with totals (not in the strait view).", params=(RUN_ID, VIEW),
          responses={200: ("Usage records", "UsageList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/tool-calls", h_tool_calls, "listRunToolCalls", "List a run's tool calls",
          _RUN, "Recorded with ctx.record_tool_call(...).", params=(RUN_ID, VIEW),
          responses={200: ("Tool calls", "ToolCallList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/outputs", h_outputs, "listRunOutputs", "List a run's structured outputs",
          _RUN, "Recorded with ctx.output(key, value, schema); the latest per key.", params=(RUN_ID, VIEW),
          responses={200: ("Outputs", "OutputList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/debug-bundle", h_debug_bundle, "getRunDebugBundle", "Get a debug bundle",
          _RUN, "The run with its events, checkpoints, usage, tool calls, outputs, steps and children (in the "
          "strait view Strait's bundle: no steps or children).",
          params=(RUN_ID, VIEW), responses={200: ("Everything about the run", "DebugBundle")}, errors=_NF),
    Route("POST", "/v1/runs/{run_id}/debug", h_debug, "setRunDebugMode", "Turn debug mode on or off", _RUN,
          "A flag on the run, recorded on its timeline; handlers read it with await ctx.debug_enabled().",
          params=(RUN_ID, VIEW), body="DebugModeRequest",
          responses={200: ("Done", "RunAction"), 204: ("Done (strait view)", None)}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/lineage", h_lineage, "listRunLineage", "List a run's continuation lineage",
          _RUN, "The chain of continue_as_new runs this run belongs to, first to last (at most 100).",
          params=(RUN_ID, VIEW), responses={200: ("Runs of the chain", "RunList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/dependency-status", h_dependency_status, "getRunDependencyStatus",
          "What a run waits for", _RUN, "Its parents (depends_on), its children and durable waits: see the "
          "DependencyStatus schema.", params=(RUN_ID, VIEW),
          responses={200: ("Dependency status", "DependencyStatus")}, errors=_NF),
    Route("DELETE", "/v1/runs/{run_id}/idempotency-key", h_idem_reset, "resetRunIdempotencyKey",
          "Reset a run's idempotency key", _RUN, "The next trigger with the same job and key creates a new run.",
          params=(RUN_ID, ID_VIEW), responses={200: ("Whether a key was reset", "IdempotencyReset")}, errors=_NF),
    Route("POST", "/v1/runs/{run_id}/reschedule", h_reschedule, "rescheduleRun", "Reschedule a run", _RUN,
          "A queued, delayed or paused run gets a new start time (scheduled_at) or a delay from now (seconds, "
          "by the Redis clock); 409 for executing, waiting or finished runs.", params=(RUN_ID, VIEW),
          body="RescheduleRequest", body_required=True, responses={200: ("Done", "RunAction")}, errors=_CONFLICT),
    Route("POST", "/v1/runs/{run_id}/pause", h_pause, "pauseRun", "Pause a run", _RUN,
          "Queued and delayed runs are paused at once (result paused) and never leased until resumed. An "
          "executing run is paused at its next step boundary: after the next step (or durable call) it records, "
          "its attempt ends uncharged and it is parked; a handler that records no further step runs to its end. "
          "A waiting run keeps waiting and is parked when the wait ends. Both answer pause_requested.",
          params=(RUN_ID, VIEW), responses={200: ("Done", "RunAction")}, errors=_CONFLICT),
    Route("POST", "/v1/runs/{run_id}/resume", h_resume, "resumeRun", "Resume a paused run", _RUN,
          "Queued again (or delayed until its due time); for a run with a pending pause request, the request is "
          "withdrawn (result pause_withdrawn).", params=(RUN_ID, VIEW),
          responses={200: ("Done", "RunAction")}, errors=_CONFLICT),
    Route("POST", "/v1/runs/{run_id}/restart", h_restart, "restartRun", "Restart a run", _RUN,
          "Starts the run over as a new run with the same input and options (restart_of); a live run is canceled "
          "first. machine_preset is accepted for compatibility and ignored (Baton has no machine presets).",
          params=(RUN_ID, VIEW), body="RestartRequest", responses=_NEW_RUN, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/state", h_state, "getRunState", "Get a run's execution state", _RUN,
          params=(RUN_ID, ID_VIEW), responses={200: ("State", "RunState")}, errors=_NF),
    Route("GET", "/v1/jobs", h_jobs, "listJobs", "List jobs with their options", "Jobs",
          "Jobs registered by running workers (and by this process); jobs belong to the deployment, so every "
          "project sees the same list.", responses={200: ("Jobs", "JobList")}),
    Route("POST", "/v1/jobs/{job}/trigger", h_trigger, "triggerJob", "Trigger a run of a job", "Jobs",
          "201 when a run was created; 200 with outcome idempotent/existing/debounced when an existing run answers.",
          params=(Param("job", {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"}, "Job name",
                        location="path", required=True), VIEW),
          body="TriggerRequest", responses={201: ("Created", "TriggerResponse"), 200: ("Existing run",
                                                                                        "TriggerResponse")},
          errors=(404, 409, 429)),
    Route("POST", "/v1/events", h_send_event, "sendEvent", "Send an event", "Events",
          "Wakes the caller's project's runs waiting in ctx.wait_for_event(key), and is kept event_ttl_s for "
          "waits that start later.", body="SendEventRequest", body_required=True,
          responses={200: ("How many runs woke", "SendEventResponse")}),
    *MESSAGE_ROUTES,
    *OPS_ROUTES,
    *HOOK_ROUTES,
    *TRIGGER_API_ROUTES,
    *HATCHET_API_ROUTES,
    Route("GET", "/health", h_health, "health", "Liveness", "Operations", auth=False,
          responses={200: ("The process serves requests", "Health")}),
    Route("GET", "/ready", h_ready, "ready", "Readiness", "Operations",
          "Ready when Redis answers and the node is not draining.", auth=False,
          responses={200: ("Ready", "Ready"), 503: ("Not ready", "Ready")}),
    Route("GET", "/metrics", h_metrics, "metrics", "Prometheus metrics", "Operations",
          "Served on this port only when metrics_port is 0 (a single-port development setup); otherwise the "
          "metrics are on the metrics port, scraped inside the cluster, and this answers 404.", auth=False,
          responses={200: ("Prometheus text exposition", None)}, errors=(404,), media_type="text/plain"),
    Route("GET", "/openapi.json", h_openapi, "openapi", "This OpenAPI document", "Operations", auth=False,
          responses={200: ("OpenAPI 3.1", None)}),
)
