"""Handlers of Trigger.dev's public run API (the paths @trigger.dev/sdk calls): retrieve, list, cancel,
replay and reschedule a run, and reset an idempotency key, answering the SDK's shapes
(runtime/api/trigger_public.py)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web

from ..codec import text
from ..errors import RunAlreadyFinished
from ..records import Run
from .errors import ApiError
from .listing import RunFilter, RunIndex, list_runs, parse_ms, project_cursor, scoped_key
from .routing import Req, json_response
from .run_helpers import MAX_CHILDREN, children_ids, load_run, load_runs, reload_run
from .schemas_trigger import DURATION_PATTERN
from .trigger_public import api_run, list_item, natives_for, public_status, run_id
from .views import TRIGGER_PREFIX

__all__ = ["PAGE_SIZE", "h_tapi_cancel", "h_tapi_idempotency_reset", "h_tapi_list", "h_tapi_replay",
           "h_tapi_reschedule", "h_tapi_retrieve", "seconds_of"]

#: the SDK's default page size (Trigger.dev's)
PAGE_SIZE = 25
_DURATION = re.compile(DURATION_PATTERN)
_UNIT_S = (7 * 86400, 86400, 3600, 60, 1)


def seconds_of(duration: str) -> int | None:
    """The seconds of a Trigger.dev duration (``1h30m``, ``2d``, ``45s``); None when it is not one."""
    match = _DURATION.match(duration)
    if match is None:
        return None
    return sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_S, strict=True) if n)


async def _api_run(req: Req, run: Run) -> dict[str, Any]:
    """The run as runs.retrieve answers it, with its root, parent and children (up to MAX_CHILDREN)."""
    wanted = [i for i in dict.fromkeys((run.root_id, run.parent_id)) if i]
    known = {r.id: r for r in await load_runs(req, wanted)}
    children = await load_runs(req, (await children_ids(req, run))[:MAX_CHILDREN])
    return api_run(run, known.get(run.root_id or ""), known.get(run.parent_id or ""), children)


async def h_tapi_retrieve(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response(await _api_run(req, run))


def _list_filter(req: Req) -> tuple[RunFilter, frozenset[str] | None]:
    """The listing filter of the SDK's filter[...] parameters, and the public statuses wanted (None for
    any): a status filter selects native statuses first, then each run by the status it shows."""
    p = req.params
    wanted = frozenset(p["filter[status]"]) if "filter[status]" in p else None
    queues = p.get("filter[queue]")
    if queues and any(q.startswith("task/") for q in queues):
        raise ApiError(400, "invalid_parameter", "filter[queue]: Baton has no queue per task (task/NAME); a job's "
                       "runs are in the queue its options name: filter by taskIdentifier, or name that queue")
    after = p.get("filter[createdAt][from]")
    if "filter[createdAt][period]" in p:
        since = int(time.time() * 1000) - (seconds_of(p["filter[createdAt][period]"]) or 0) * 1000
        after = since if after is None else max(after, since)

    def listed(name: str) -> frozenset[str] | None:
        return frozenset(p[name]) if name in p else None

    fltr = RunFilter(project=req.project, statuses=None if wanted is None else natives_for(wanted),
                     jobs=listed("filter[taskIdentifier]"), queues=listed("filter[queue]"),
                     any_tag=listed("filter[tag]"), batch_id=p.get("filter[batch]"), created_after_ms=after,
                     created_before_ms=p.get("filter[createdAt][to]"))
    return fltr, wanted


async def h_tapi_list(req: Req) -> web.StreamResponse:
    fltr, wanted = _list_filter(req)
    if req.params.get("filter[isTest]") is True:  # Baton has no test runs
        return json_response({"data": [], "pagination": {}})
    after = req.params.get("page[after]")
    if after is not None and after.startswith(TRIGGER_PREFIX):
        # a run's id, as Trigger.dev pages ("Pagination uses run IDs"): the listing goes on after that run
        # (pagination.next, which the SDK passes back, stays an opaque cursor: it also passes runs a status
        # filter left out)
        try:
            after = project_cursor(await load_run(req, after))
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise ApiError(400, "bad_cursor", f"page[after] names no run of this project: {after}") from None
    page = await list_runs(req.baton, RunIndex.of_project(req.project), fltr, req.params.get("page[size]", PAGE_SIZE),
                           after, req.state.settings.api_scan_limit, req.partial_read())
    # a page the status filter thins may be short: its cursor still continues after every run it examined
    runs = [r for r in page.runs if wanted is None or public_status(r) in wanted]
    pagination = {"next": page.next_cursor} if page.next_cursor else {}
    return json_response({"data": [list_item(r) for r in runs], "pagination": pagination})


async def h_tapi_project_list(req: Req) -> web.StreamResponse:
    """runs.list(projectRef, ...): the caller's runs, as GET /api/v1/runs lists them. A Baton deployment is one
    Trigger.dev project whose environments are Baton's projects (a listed run's env), so any project ref names
    it, and filter[env] selects the caller's runs only when it names the caller's project."""
    envs = req.params.get("filter[env]")
    if envs is not None and req.project not in envs:
        return json_response({"data": [], "pagination": {}})
    return await h_tapi_list(req)


async def h_tapi_cancel(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    try:
        await req.baton.cancel(run.id)
    except RunAlreadyFinished:
        pass  # as Trigger.dev: canceling a finished run leaves it as it is, and says which run it was
    return json_response({"id": run_id(run)})


async def h_tapi_replay(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    new = await reload_run(req, await req.baton.replay(run.id))
    return json_response({"id": run_id(new)})


async def h_tapi_reschedule(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    delay = str(req.body["delay"])
    seconds = seconds_of(delay)
    if seconds is not None:
        await req.baton.reschedule(run.id, delay=float(seconds))
    else:
        await req.baton.reschedule(run.id, run_at=parse_ms(delay, "delay", "invalid_body",
                                                                 "a duration (e.g. 1h30m) or an ISO-8601 date-time"))
    return json_response(await _api_run(req, await reload_run(req, run)))


async def h_tapi_idempotency_reset(req: Req) -> web.StreamResponse:
    """idempotencyKeys.reset: the task's run that holds the key forgets it, so the next trigger with it makes a
    new run; 404 when no run of the task holds it. The key is as the SDK sends it (it hashes the one a
    caller gives, as tasks.trigger does)."""
    job, key = str(req.body["taskIdentifier"]), scoped_key(req.project, str(req.params["key"]))
    baton = req.baton
    # (which partition a key's runs live in depends on the job's other options: each is asked)
    found = await asyncio.gather(*(baton.redis.get(p.idempotency(job, key)) for p in baton.keys.partitions))
    for holder in (text(raw) for raw in found if raw):
        run = await load_run(req, holder)
        if await baton.reset_idempotency_key(run.id):
            return json_response({"id": run_id(run)})
    raise ApiError(404, "not_found", f"no run of task {job} holds idempotency key {req.params['key']}")
