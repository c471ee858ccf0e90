"""Handlers of the bulk run endpoints: cancel and replay many runs."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import BatonError
from ..statuses import RunStatus
from .bulk_actions import MAX_RUNS, BulkRunner, action_filter
from .errors import ApiError
from .listing import RunFilter, RunIndex, list_runs
from .routing import Req, json_response
from .run_helpers import CANCELABLE, load_run, load_runs, render_run, run_filter

__all__ = [
    "h_bulk_cancel", "h_bulk_dlq_replay", "h_bulk_replay", "h_cancel_all", "h_cancel_bulk_action",
    "h_create_bulk_action", "h_get_bulk_action", "h_list_bulk_actions",
]

# -- runs: bulk -----------------------------------------------------------------


def _bulk_error(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def h_bulk_cancel(req: Req) -> web.StreamResponse:
    results = []
    canceled = 0
    for run_id in dict.fromkeys(req.body["run_ids"]):
        try:
            run = await load_run(req, run_id)
            status = await req.baton.cancel(run.id)
            results.append({"id": run_id, "status": status, "error": None})
            canceled += 1
        except (ApiError, BatonError) as exc:  # one run's conflict must not stop the others
            results.append({"id": run_id, "status": "failed", "error": _bulk_error(exc)})
    return json_response({"results": results, "total": len(results), "canceled": canceled,
                          "failed": len(results) - canceled, "has_more": False})


async def h_cancel_all(req: Req) -> web.StreamResponse:
    body = dict(req.body or {})
    limit = int(body.pop("limit", 1000))
    fltr = run_filter(req, body)
    wanted = fltr.statuses & CANCELABLE if fltr.statuses is not None else CANCELABLE
    fltr.statuses = frozenset(wanted)
    results: list[dict[str, Any]] = []
    canceled = 0
    cursor: str | None = None
    has_more = bool(wanted)
    budget = req.state.settings.api_scan_limit * 10
    while wanted and len(results) < limit and budget > 0:
        page = await list_runs(req.baton, RunIndex.of_project(req.project), fltr, min(100, limit - len(results)),
                               cursor, min(req.state.settings.api_scan_limit, budget))
        budget -= page.scanned
        for run in page.runs:
            try:
                status = await req.baton.cancel(run.id)
                results.append({"id": run.id, "status": status, "error": None})
                canceled += 1
            except BatonError as exc:  # finished meanwhile: report and go on
                results.append({"id": run.id, "status": "failed", "error": _bulk_error(exc)})
        cursor = page.next_cursor
        has_more = page.has_more
        if not page.has_more:
            break
    return json_response({"results": results, "total": len(results), "canceled": canceled,
                          "failed": len(results) - canceled, "has_more": has_more})


async def _replay_many(req: Req, ids: list[str], dead_letter_only: bool) -> web.StreamResponse:
    results: list[dict[str, Any]] = []
    new_ids: list[str] = []
    for run_id in dict.fromkeys(ids):
        try:
            run = await load_run(req, run_id)
            new_id = await req.baton.replay(run.id, dead_letter_only=dead_letter_only)
            results.append({"id": run_id, "status": "replayed", "error": None, "new_run_id": new_id})
            new_ids.append(new_id)
        except (ApiError, BatonError) as exc:  # one run's conflict must not stop the others
            results.append({"id": run_id, "status": "failed", "error": _bulk_error(exc), "new_run_id": None})
    runs = await load_runs(req, new_ids)
    return json_response({"replayed": [render_run(req, r) for r in runs], "results": results, "count": len(new_ids),
                          "failed": len(results) - len(new_ids)})


async def h_bulk_replay(req: Req) -> web.StreamResponse:
    return await _replay_many(req, list(req.body["run_ids"]), dead_letter_only=False)


async def h_bulk_dlq_replay(req: Req) -> web.StreamResponse:
    body = req.body or {}
    ids = list(body.get("run_ids") or [])
    if not ids:
        limit = int(body.get("limit", 100))
        fltr = RunFilter(project=req.project, statuses=frozenset({"dead_letter"}))
        cursor: str | None = None
        budget = req.state.settings.api_scan_limit * 10
        while len(ids) < limit and budget > 0:
            page = await list_runs(req.baton, RunIndex.of_status(RunStatus.DEAD_LETTER), fltr, 100, cursor,
                                   min(req.state.settings.api_scan_limit, budget))
            budget -= page.scanned
            ids.extend(r.id for r in page.runs if not r.raw.get("replayed_as"))
            cursor = page.next_cursor
            if not page.has_more:
                break
        ids = ids[:limit]
    return await _replay_many(req, ids, dead_letter_only=True)


# -- background bulk actions ----------------------------------------------------


def _runner(req: Req) -> BulkRunner:
    assert req.state.bulk is not None  # create_app sets it
    return req.state.bulk


async def h_create_bulk_action(req: Req) -> web.StreamResponse:
    body = req.body
    filter_body = dict(body.get("filter") or {})
    fltr = action_filter(req.project, body["action"], filter_body)
    view = await _runner(req).create(req.project, body["action"], filter_body, fltr,
                                     int(body.get("limit", MAX_RUNS)))
    return json_response(view, status=202, headers={"Location": f"/v1/bulk-actions/{view['id']}"})


async def h_list_bulk_actions(req: Req) -> web.StreamResponse:
    return json_response({"data": await _runner(req).list(req.project)})


def _found(view: dict[str, Any] | None, action_id: str) -> dict[str, Any]:
    if view is None:
        raise ApiError(404, "not_found", f"bulk action {action_id} not found")
    return view


async def h_get_bulk_action(req: Req) -> web.StreamResponse:
    action_id = str(req.params["action_id"])
    return json_response(_found(await _runner(req).get(req.project, action_id), action_id))


async def h_cancel_bulk_action(req: Req) -> web.StreamResponse:
    action_id = str(req.params["action_id"])
    return json_response(_found(await _runner(req).cancel(req.project, action_id), action_id))
