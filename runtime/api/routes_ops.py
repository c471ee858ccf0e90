"""The operator endpoints of the route table: queues, schedules, job limits, shared limits, nodes, rejected
stream entries.

They act on the whole deployment (queues and schedules are shared by every
project), so only keys of the projects in ``api_operator_projects`` may call
them (others get 403).
"""

from __future__ import annotations

from dataclasses import replace

from .handlers_admission import h_get_admission, h_set_admission
from .handlers_operator import (
    h_clear_limits,
    h_clear_shared_limit,
    h_drain_node,
    h_get_limits,
    h_get_queue,
    h_get_shared_limit,
    h_list_nodes,
    h_list_queues,
    h_list_rejected,
    h_list_shared_limits,
    h_pause_queue,
    h_purge_queue,
    h_resume_queue,
    h_set_limits,
    h_set_shared_limit,
)
from .handlers_schedules import (
    h_backfill_schedule,
    h_delete_schedule,
    h_get_schedule,
    h_list_schedules,
    h_pause_schedule,
    h_put_schedule,
    h_resume_schedule,
    h_trigger_schedule,
)
from .routing import Param, Route

__all__ = ["OPS_ROUTES"]

_NAME_PATTERN = "^[A-Za-z0-9_.:-]{1,100}$"
QUEUE = Param("queue", {"type": "string", "pattern": _NAME_PATTERN}, "Queue name", location="path", required=True)
JOB = Param("job", {"type": "string", "pattern": _NAME_PATTERN}, "Job name", location="path", required=True)
SCHEDULE = Param("name", {"type": "string", "pattern": "^[^/\\r\\n]{1,100}$"}, "Schedule name", location="path",
                 required=True)
LIMIT = Param("name", {"type": "string", "pattern": _NAME_PATTERN}, "Name of a shared limit", location="path",
              required=True)
NODE = Param("node", {"type": "string", "pattern": "^[^\\s{}/]{1,200}$"}, "Node id", location="path",
             required=True)
_NF = (404,)
_STREAM_ID = "^[0-9]{1,20}-[0-9]{1,20}$"
_Q, _S, _N = "Queues", "Schedules", "Nodes"


_ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/queues", h_list_queues, "listQueues", "List queues", _Q,
        "Every queue a job, a run or a setting names: paused or not, live runs by state (queued, delayed, executing, "
        "waiting, paused), how long the oldest queued run has waited, and the runs finished per minute over the "
        "last hour.", responses={200: ("Queues", "QueueList")}),
    Route("GET", "/v1/queues/{queue}", h_get_queue, "getQueue", "Get a queue", _Q, params=(QUEUE,),
        responses={200: ("The queue", "Queue")}, errors=_NF),
    Route("POST", "/v1/queues/{queue}/pause", h_pause_queue, "pauseQueue", "Pause a queue", _Q,
        "No node leases runs of the queue until it is resumed; runs keep arriving and running ones go on.",
        params=(QUEUE,), responses={200: ("The queue", "Queue")}, errors=_NF),
    Route("POST", "/v1/queues/{queue}/resume", h_resume_queue, "resumeQueue", "Resume a queue", _Q,
        "Nodes lease its runs again, at once.", params=(QUEUE,), responses={200: ("The queue", "Queue")}, errors=_NF),
    Route("POST", "/v1/queues/{queue}/purge", h_purge_queue, "purgeQueue", "Purge a queue's queued runs", _Q,
        "Cancels queued runs of the queue, of every project, next in line first (their unfinished children too); "
        "delayed, executing, waiting and paused runs are left alone. At most `limit` per call: repeat while "
        "has_more. `confirm` must repeat the queue's name.",
        params=(QUEUE, Param("confirm", {"type": "string", "maxLength": 100}, "The queue's name, again",
                             required=True),
                Param("limit", {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000},
                      "Most runs canceled by this call")),
        responses={200: ("What was purged", "PurgeResult")}, errors=_NF),
    Route("GET", "/v1/schedules", h_list_schedules, "listSchedules", "List cron schedules", _S,
        "Schedules defined in code (registered by workers) and through this API, with their next fire time and "
        "counts.", responses={200: ("Schedules", "ScheduleList")}),
    Route("GET", "/v1/schedules/{name}", h_get_schedule, "getSchedule", "Get a schedule", _S, params=(SCHEDULE,),
        responses={200: ("The schedule", "Schedule")}, errors=_NF),
    Route("PUT", "/v1/schedules/{name}", h_put_schedule, "putSchedule", "Create or replace a schedule", _S,
        "The job must be registered and the options must make a valid trigger. Runs of a tick have the id "
        "cron.<name>.<tick ms> and belong to project default. A worker that defines a schedule of the same name in "
        "code registers its own definition again when it starts.", params=(SCHEDULE,), body="ScheduleRequest",
        body_required=True, responses={201: ("Created", "Schedule"), 200: ("Replaced", "Schedule")}, errors=_NF),
    Route("DELETE", "/v1/schedules/{name}", h_delete_schedule, "deleteSchedule", "Delete a schedule", _S,
        params=(SCHEDULE,), responses={200: ("Deleted", "Deleted")}, errors=_NF),
    Route("POST", "/v1/schedules/{name}/pause", h_pause_schedule, "pauseSchedule", "Pause a schedule", _S,
        "Ticks while paused are not caught up.", params=(SCHEDULE,), responses={200: ("The schedule", "Schedule")},
        errors=_NF),
    Route("POST", "/v1/schedules/{name}/resume", h_resume_schedule, "resumeSchedule", "Resume a schedule", _S,
        "It fires again from its next tick.", params=(SCHEDULE,), responses={200: ("The schedule", "Schedule")},
        errors=_NF),
    Route("POST", "/v1/schedules/{name}/trigger", h_trigger_schedule, "triggerSchedule", "Fire a schedule now", _S,
        "A tick for this moment (Redis clock), with the schedule's overlap policy; a paused schedule fires too.",
        params=(SCHEDULE,), responses={200: ("The run started", "ScheduleTrigger")}, errors=_NF),
    Route("POST", "/v1/schedules/{name}/backfill", h_backfill_schedule, "backfillSchedule",
        "Fire a schedule's ticks of a past time range", _S,
        "Every tick in [start, end], earliest first, at most 1000 per call (then truncated and next_start says "
        "where to go on). Overlap is allowed; a tick whose run exists already (fired or backfilled before) is not "
        "started again.", params=(SCHEDULE,), body="BackfillRequest", body_required=True,
        responses={200: ("Ticks fired", "BackfillResult")}, errors=_NF),
    Route("GET", "/v1/jobs/{job}/limits", h_get_limits, "getJobLimits", "Get a job's limits", "Jobs",
        "Concurrency and rate limits: as the code registered them, the runtime override, and those in force.",
        params=(JOB,), responses={200: ("Limits", "JobLimits")}, errors=_NF),
    Route("PUT", "/v1/jobs/{job}/limits", h_set_limits, "setJobLimits", "Override a job's limits", "Jobs",
        "Replaces the runtime override on every node at once (a field left out is no limit) until it is cleared.",
        params=(JOB,), body="Limits", body_required=True, responses={200: ("Limits", "JobLimits")}, errors=_NF),
    Route("DELETE", "/v1/jobs/{job}/limits", h_clear_limits, "clearJobLimits", "Clear a job's limit override",
        "Jobs", "The limits the code registered apply again.", params=(JOB,),
        responses={200: ("Limits", "JobLimits")}, errors=_NF),
    Route("GET", "/v1/limits", h_list_shared_limits, "listSharedLimits", "List shared limits", "Jobs",
        "Named pools and rate limits that jobs share (`pool=`, `shared_rate=`): every name the code defines, an "
        "operator overrode or a registered job uses, with its values, the jobs using it and its pool's runs now.",
        responses={200: ("Shared limits", "SharedLimitList")}),
    Route("GET", "/v1/limits/{name}", h_get_shared_limit, "getSharedLimit", "Get a shared limit", "Jobs",
        params=(LIMIT,), responses={200: ("The limit", "SharedLimitState")}, errors=_NF),
    Route("PUT", "/v1/limits/{name}", h_set_shared_limit, "setSharedLimit", "Override a shared limit", "Jobs",
        "Replaces the runtime override of the name on every node at once (a field left out is no limit) until it "
        "is cleared. A smaller pool starts no new run until fewer than its size run; running ones go on.",
        params=(LIMIT,), body="SharedLimit", body_required=True,
        responses={200: ("The limit", "SharedLimitState")}, errors=_NF),
    Route("DELETE", "/v1/limits/{name}", h_clear_shared_limit, "clearSharedLimit",
        "Clear a shared limit's override", "Jobs", "The values the code defined apply again.", params=(LIMIT,),
        responses={200: ("The limit", "SharedLimitState")}, errors=_NF),
    Route("GET", "/v1/queues/{queue}/admission", h_get_admission, "getQueueAdmission", "Get a queue's max_queued",
        _Q, "The cap on the queue's runs admitted and not yet started, and how many it counts now.", params=(QUEUE,),
        responses={200: ("Admission", "Admission")}, errors=_NF),
    Route("PUT", "/v1/queues/{queue}/admission", h_set_admission, "setQueueAdmission", "Set a queue's max_queued",
        _Q, "Past the cap a trigger is refused (429 queue_full; a stream entry goes to the rejected stream). Counted "
        "per partition.", params=(QUEUE,), body="AdmissionRequest", body_required=True,
        responses={200: ("Admission", "Admission")}, errors=_NF),
    Route("GET", "/v1/jobs/{job}/admission", h_get_admission, "getJobAdmission", "Get a job's max_queued", "Jobs",
        "The cap in force (the runtime override, else the code's max_queued) and how many runs it counts now.",
        params=(JOB,), responses={200: ("Admission", "Admission")}, errors=_NF),
    Route("PUT", "/v1/jobs/{job}/admission", h_set_admission, "setJobAdmission", "Override a job's max_queued",
        "Jobs", "Overrides the code's max_queued on every node until set to null.", params=(JOB,),
        body="AdmissionRequest", body_required=True, responses={200: ("Admission", "Admission")}, errors=_NF),
    Route("GET", "/v1/nodes", h_list_nodes, "listNodes", "List nodes", _N,
        "Nodes that heartbeated within the last hour, most recent first, with heartbeat age, slots, leases held "
        "and version.", responses={200: ("Nodes", "NodeList")}),
    Route("POST", "/v1/nodes/{node}/drain", h_drain_node, "drainNode", "Drain a node", _N,
        "The node acts on it at its next heartbeat (within renew_interval_ms): it stops taking work, lets running "
        "handlers finish within shutdown_grace_s, gives back the rest and exits, as on SIGTERM.",
        params=(NODE,), responses={202: ("Drain requested", "Node")}, errors=_NF),
    Route("GET", "/v1/rejected", h_list_rejected, "listRejected", "List rejected stream entries", "Jobs",
        "Entries of the submission stream that made no run, newest first, each with the reason and message (the "
        "same as the rejected stream's and the baton_intake_entries_rejected_total metric's) and the first bytes "
        "of its fields. The stream keeps the latest rejected_max_len. entry_id finds one entry's rejection.",
        params=(Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}, "Page size"),
                Param("cursor", {"type": "string", "pattern": _STREAM_ID}, "next_cursor of the previous page"),
                Param("entry_id", {"type": "string", "pattern": _STREAM_ID},
                      "The submission stream entry whose rejection to find (the others are ignored)")),
        responses={200: ("Rejected entries", "RejectionList")}),
)
OPS_ROUTES: tuple[Route, ...] = tuple(replace(route, operator=True) for route in _ROUTES)
