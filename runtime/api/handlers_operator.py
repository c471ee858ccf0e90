"""Handlers of the operator endpoints for queues, job limits, shared limits, nodes and rejected stream entries
(see runtime/queues.py, runtime/job_limits.py, runtime/shared_limits.py, runtime/nodes.py,
runtime/rejections.py for what they read and change)."""

from __future__ import annotations

from aiohttp import web

from ..errors import UnknownJob
from ..job_limits import JobLimits, read_limits, set_limits
from ..nodes import list_nodes, request_drain
from ..queues import list_queues, purge_queue, queue_names
from ..rejections import find_rejection, list_rejections
from ..shared_limits import (
    SharedLimit,
    clear_shared_limit,
    list_shared_limits,
    read_shared_limit,
    set_shared_limit,
)
from .errors import ApiError
from .routing import Req, json_response

__all__ = [
    "h_clear_limits", "h_clear_shared_limit", "h_drain_node", "h_get_limits", "h_get_queue", "h_get_shared_limit",
    "h_list_nodes", "h_list_queues", "h_list_rejected", "h_list_shared_limits", "h_pause_queue", "h_purge_queue",
    "h_resume_queue", "h_set_limits", "h_set_shared_limit",
    "known_job", "known_queue",
]

# -- queues ---------------------------------------------------------------------


async def known_queue(req: Req) -> str:
    """The queue the path names; 404 when no job, run or setting names it."""
    queue = str(req.params["queue"])
    if queue not in await queue_names(req.baton, req.partial_read()):
        raise ApiError(404, "not_found", f"queue {queue} not found (no job, run or setting names it)")
    return queue


async def _queue_response(req: Req, queue: str) -> web.Response:
    [info] = await list_queues(req.baton, only=queue, partial=req.partial_read())
    return json_response(info.to_dict())


async def h_list_queues(req: Req) -> web.StreamResponse:
    infos = await list_queues(req.baton, partial=req.partial_read())
    return json_response({"data": [info.to_dict() for info in infos]})


async def h_get_queue(req: Req) -> web.StreamResponse:
    return await _queue_response(req, await known_queue(req))


async def h_pause_queue(req: Req) -> web.StreamResponse:
    queue = await known_queue(req)
    await req.baton.pause_queue(queue)
    return await _queue_response(req, queue)


async def h_resume_queue(req: Req) -> web.StreamResponse:
    queue = await known_queue(req)
    await req.baton.resume_queue(queue)
    return await _queue_response(req, queue)


async def h_purge_queue(req: Req) -> web.StreamResponse:
    queue = await known_queue(req)
    if req.params.get("confirm") != queue:
        raise ApiError(400, "confirmation_required",
                       f"purging cancels queued runs: repeat the queue's name as ?confirm={queue}")
    result = await purge_queue(req.baton, queue, int(req.params.get("limit", 1000)))
    return json_response(result.to_dict())


# -- job limits -----------------------------------------------------------------


async def known_job(req: Req) -> str:
    """The job the path names; 404 (unknown_job) when no worker registered it."""
    job = str(req.params["job"])
    if req.baton.lookup(job) is None:
        await req.baton.refresh_registry()
        if req.baton.lookup(job) is None:
            raise UnknownJob(job)
    return job


async def h_get_limits(req: Req) -> web.StreamResponse:
    return json_response(await read_limits(req.baton, await known_job(req)))


async def h_set_limits(req: Req) -> web.StreamResponse:
    job = await known_job(req)
    await set_limits(req.baton, job, JobLimits.from_dict(req.body))
    return json_response(await read_limits(req.baton, job))


async def h_clear_limits(req: Req) -> web.StreamResponse:
    job = await known_job(req)
    await req.baton.clear_limits(job)
    return json_response(await read_limits(req.baton, job))


# -- shared limits --------------------------------------------------------------


async def _shared_response(req: Req, name: str) -> web.Response:
    state = await read_shared_limit(req.baton, name)
    if state is None:
        raise ApiError(404, "not_found", f"no limit named {name} (no code defines it, no job uses it)")
    return json_response(state)


async def h_list_shared_limits(req: Req) -> web.StreamResponse:
    return json_response({"data": await list_shared_limits(req.baton)})


async def h_get_shared_limit(req: Req) -> web.StreamResponse:
    return await _shared_response(req, str(req.params["name"]))


async def h_set_shared_limit(req: Req) -> web.StreamResponse:
    name = str(req.params["name"])
    await set_shared_limit(req.baton, name, SharedLimit.from_dict(req.body))
    return await _shared_response(req, name)


async def h_clear_shared_limit(req: Req) -> web.StreamResponse:
    name = str(req.params["name"])
    await clear_shared_limit(req.baton, name)
    # answered even when the override was all that named it
    return json_response(await read_shared_limit(req.baton, name, known_only=False))


# -- nodes ----------------------------------------------------------------------


async def h_list_nodes(req: Req) -> web.StreamResponse:
    return json_response({"data": await list_nodes(req.baton)})


async def h_drain_node(req: Req) -> web.StreamResponse:
    node = await request_drain(req.baton, str(req.params["node"]))
    if node is None:
        raise ApiError(404, "not_found", f"no live node {req.params['node']}")
    return json_response(node, status=202)


# -- rejected stream entries ------------------------------------------------------


async def h_list_rejected(req: Req) -> web.StreamResponse:
    if entry_id := req.params.get("entry_id"):
        found = await find_rejection(req.baton, entry_id)
        return json_response({"data": [found] if found else [], "next_cursor": None})
    data, after = await list_rejections(req.baton, req.params["limit"], req.params.get("cursor"))
    return json_response({"data": data, "next_cursor": after})
