"""Trigger.dev's queues (``queues.list``, ``queues.retrieve``, ``queues.pause`` and ``queues.resume`` of
@trigger.dev/sdk 4.x), served by Baton's queues (runtime/queues.py).

A Baton queue is the deployment's, not one project's: these routes take a key of an operator project
(``api_operator_projects``), as ``/v1/queues`` does. Each queue is shown as Trigger.dev shows a queue of
its own: ``custom`` (Trigger.dev's task queues, one per task, do not exist in Baton; ``{type: "task",
name}`` finds the queue that task's job runs in), version ``V2`` (no concurrency limit of its own: Baton
limits a job's concurrency, ``PUT /v1/jobs/{job}/limits``, or a shared pool's, so the concurrency
override and reset calls are refused), ``running`` its executing runs and ``queued`` its queued ones. Its
id is ``queue_`` and its name.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from ..queues import QueueInfo, list_queues, queue_names
from ..statuses import RunStatus
from .errors import ApiError
from .routing import Req, json_response

__all__ = ["QUEUES_PER_PAGE", "QUEUE_PREFIX", "h_tapi_queue_concurrency", "h_tapi_queue_list",
           "h_tapi_queue_pause", "h_tapi_queue_retrieve"]

#: what a queue's id is its name after
QUEUE_PREFIX = "queue_"
#: queues per page when the SDK gives no perPage
QUEUES_PER_PAGE = 20


def _item(info: QueueInfo) -> dict[str, Any]:
    """A queue as the SDK's QueueItem (V2)."""
    return {"id": QUEUE_PREFIX + info.name, "name": info.name, "type": "custom",
            "running": info.counts[RunStatus.EXECUTING], "queued": info.counts[RunStatus.QUEUED],
            "paused": info.paused, "concurrencyLimit": None, "version": "V2"}


async def _named(req: Req, kind: str) -> str:
    """The queue the path names, read as ``kind`` says (id, task or custom); 404 when Baton knows none."""
    # (the SDK encodes a slash as %2F before it encodes the path: left in it once the server decoded it)
    value = str(req.params["queue"]).replace("%2F", "/")
    if kind == "task":
        await req.baton.refresh_registry()
        options = req.baton.lookup(value)
        if options is None:
            raise ApiError(404, "not_found", f"task {value} not found (no job of that name is registered)")
        name = options.queue
    else:
        name = value.removeprefix(QUEUE_PREFIX) if kind == "id" else value
    if name not in await queue_names(req.baton, req.partial_read()):
        raise ApiError(404, "not_found", f"queue {value} not found (no job, run or setting names it)")
    return name


async def _answer(req: Req, name: str) -> web.Response:
    [info] = await list_queues(req.baton, only=name, partial=req.partial_read())
    return json_response(_item(info))


async def h_tapi_queue_list(req: Req) -> web.StreamResponse:
    """queues.list: a page of every queue, by name."""
    infos = sorted(await list_queues(req.baton, partial=req.partial_read()), key=lambda info: info.name)
    page, per_page = int(req.params.get("page", 1)), int(req.params.get("perPage", QUEUES_PER_PAGE))
    shown = infos[(page - 1) * per_page:page * per_page]
    return json_response({"data": [_item(info) for info in shown],
                          "pagination": {"currentPage": page, "totalPages": math.ceil(len(infos) / per_page),
                                         "count": len(infos)}})


async def h_tapi_queue_retrieve(req: Req) -> web.StreamResponse:
    """queues.retrieve: one queue, by its id or by type and name."""
    return await _answer(req, await _named(req, str(req.params.get("type", "id"))))


async def h_tapi_queue_pause(req: Req) -> web.StreamResponse:
    """queues.pause and queues.resume: no node leases the queue's runs while it is paused."""
    body = req.body or {}
    name = await _named(req, str(body.get("type", "id")))
    if body["action"] == "pause":
        await req.baton.pause_queue(name)
    else:
        await req.baton.resume_queue(name)
    return await _answer(req, name)


async def h_tapi_queue_concurrency(req: Req) -> web.StreamResponse:
    """queues.overrideConcurrencyLimit and queues.resetConcurrencyLimit: refused, with where Baton's limits are."""
    await _named(req, str((req.body or {}).get("type", "id")))
    raise ApiError(400, "unsupported_operation",
                   "a Baton queue has no concurrency limit of its own: limit a job's concurrency "
                   "(PUT /v1/jobs/{job}/limits) or a shared pool's (PUT /v1/limits/{name})")
