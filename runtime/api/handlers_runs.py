"""Handlers of the run endpoints: lists, one run, its records, lineage and streams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from ..codec import text
from ..dependencies import edge_satisfied, edges_of
from ..ids import RUN_ID_RE
from ..records import Run, iso, stored_int
from ..relatives import lineage, waits_of
from ..statuses import RunStatus
from .errors import ApiError
from .listing import RunFilter, RunIndex, encode_cursor, list_runs
from .routing import Req, json_response
from .run_helpers import (
    CURSOR,
    FILTERS,
    MAX_CHILDREN,
    action,
    children_ids,
    created,
    load_run,
    load_runs,
    parse_ms,
    project_of,
    reload_run,
    render_runs,
    run_events,
    run_filter,
    run_outputs,
    run_records,
    run_steps,
    view_of,
)
from .sse import stream_chunks, stream_events
from .views import durably_log, status_strait, strait_record

__all__ = [
    "h_cancel", "h_checkpoints", "h_children", "h_debug", "h_debug_bundle", "h_dependency_status", "h_dlq_replay",
    "h_events", "h_get_run", "h_idem_reset", "h_lineage", "h_list_dlq", "h_list_runs", "h_logs", "h_outputs", "h_pause",
    "h_replay", "h_reschedule", "h_restart", "h_resume", "h_state", "h_steps", "h_stream", "h_stream_chunks",
    "h_tool_calls", "h_usage",
]

T = TypeVar("T")

# -- runs: lists ----------------------------------------------------------------


def _score(run: Run, index: RunIndex) -> int:
    """A run's place in a listing index: its creation time, or when it entered a status index (its
    finished_at)."""
    return run.created_at_ms if index.by_creation else (run.finished_at_ms or 0)


async def _strait_page(req: Req, index: RunIndex, fltr: RunFilter) -> list[Run]:
    """A page as Strait serves it: runs before the cursor time (a date-time, the previous page's last
    created_at, or finished_at in the dead-letter list), short only at the end. A Strait client's next
    cursor is the time of the last run it got, which cannot point inside a millisecond: a page that would
    end inside one takes the rest of it too (more than ``limit`` runs), so no run is lost or repeated."""
    limit = req.params.get("limit", 50)
    given = req.params.get("cursor")
    cursor = encode_cursor(parse_ms(given, "cursor") - 1, _AFTER_EVERY_ID) if given else None
    runs: list[Run] = []
    budget = req.state.settings.api_scan_limit * 10
    while budget > 0:
        page = await list_runs(req.baton, index, fltr, limit + 1, cursor,
                               min(req.state.settings.api_scan_limit, budget), req.partial_read())
        budget -= page.scanned
        runs.extend(page.runs)
        cursor = page.next_cursor
        if not page.has_more or (len(runs) > limit and _score(runs[-1], index) != _score(runs[limit - 1], index)):
            break
    return _whole_milliseconds(runs, limit, lambda run: _score(run, index))


def _whole_milliseconds(items: list[T], limit: int, ms: Callable[[T], int]) -> list[T]:
    """The first ``limit`` of ``items`` (newest first), and those after them in the millisecond of the last:
    a Strait client's next cursor is a time, which cannot point inside a millisecond."""
    edge = ms(items[limit - 1]) if len(items) >= limit else None
    return items[:limit] + [item for item in items[limit:] if ms(item) == edge]


#: sorts after every run id, so a cursor built with it continues below its time
_AFTER_EVERY_ID = "\U0010ffff"


async def _listing(req: Req, index: RunIndex, fltr: RunFilter) -> web.StreamResponse:
    if req.view == "strait":
        return json_response(await render_runs(req, await _strait_page(req, index, fltr)))
    page = await list_runs(req.baton, index, fltr, req.params.get("limit", 50), req.params.get("cursor"),
                           req.state.settings.api_scan_limit, req.partial_read())
    return json_response({"data": await render_runs(req, page.runs), "next_cursor": page.next_cursor,
                          "has_more": page.has_more, "scanned": page.scanned})


async def h_list_runs(req: Req) -> web.StreamResponse:
    if (run_id := req.params.get("run_id")) is not None:
        return await _one_run_page(req, run_id)
    return await _listing(req, RunIndex.of_project(req.project), run_filter(req, req.params))


async def _one_run_page(req: Req, run_id: str) -> web.StreamResponse:
    """GET /v1/runs?run_id=: the run as a page of one, or an empty page. A search box that takes a run id
    or an idempotency key looks the term up as an id first: GET /v1/runs/{id} answered 404 for every key,
    an error in the browser's console each time."""
    if others := [p.name for p in (*FILTERS, CURSOR) if req.params.get(p.name) is not None]:
        raise ApiError(400, "invalid_parameter", f"run_id names one run: it takes no {others[0]} beside it")
    try:
        runs = [await load_run(req, run_id)]
    except ApiError as exc:
        if exc.status != 404:
            raise
        runs = []
    if req.view == "strait":
        return json_response(await render_runs(req, runs))
    return json_response({"data": await render_runs(req, runs), "next_cursor": None, "has_more": False,
                          "scanned": len(runs)})


async def h_list_dlq(req: Req) -> web.StreamResponse:
    fltr = RunFilter(project=req.project, statuses=frozenset({"dead_letter"}), job=req.params.get("job"),
                     queue=req.params.get("queue"))
    return await _listing(req, RunIndex.of_status(RunStatus.DEAD_LETTER), fltr)


# -- runs: one run --------------------------------------------------------------


async def h_get_run(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response(await view_of(req, run))


async def h_cancel(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    result = await req.baton.cancel(run.id)
    return await action(req, await reload_run(req, run), result, strait_empty=True)


async def _new_run_of(req: Req, make: Callable[[str], Awaitable[str]]) -> web.StreamResponse:
    """Answer an action that makes a new run from the caller's run (replay, restart) with the new run."""
    run = await load_run(req, req.params["run_id"])
    return await created(req, await reload_run(req, await make(run.id)))


async def h_replay(req: Req) -> web.StreamResponse:
    return await _new_run_of(req, req.baton.replay)


async def h_dlq_replay(req: Req) -> web.StreamResponse:
    return await _new_run_of(req, lambda run_id: req.baton.replay(run_id, dead_letter_only=True))


async def h_pause(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    result = await req.baton.pause(run.id)
    return await action(req, await reload_run(req, run), result)


async def h_resume(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    result = await req.baton.resume(run.id)
    return await action(req, await reload_run(req, run), result)


async def h_restart(req: Req) -> web.StreamResponse:
    return await _new_run_of(req, req.baton.restart)


async def h_reschedule(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    body = req.body or {}
    if "scheduled_at" in body:
        await req.baton.reschedule(run.id, run_at=parse_ms(body["scheduled_at"], "scheduled_at", "invalid_body"))
    else:
        await req.baton.reschedule(run.id, delay=float(body["delay"]))
    return await action(req, await reload_run(req, run), "rescheduled")


async def h_debug(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    on = bool((req.body or {}).get("debug_mode", False))  # (optional in Strait's body: absent is off)
    await req.baton.set_debug_mode(run.id, on)
    return await action(req, await reload_run(req, run), "debug_on" if on else "debug_off", strait_empty=True)


async def h_idem_reset(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    reset = await req.baton.reset_idempotency_key(run.id)
    return json_response({"status": "reset" if reset else "not_set", "run_id": run.id})


async def _strait_children(req: Req, ids: list[str]) -> list[Run]:
    """Children as the other Strait lists page (_strait_page): newest first, the cursor a date-time (the
    previous page's last created_at) before which the page starts; a page that would end inside a
    millisecond takes the rest of it."""
    pipe = req.baton.redis.pipeline(transaction=False)
    for child in ids:
        pipe.hget(req.baton.keys.partition_of_run(child).run(child), "created_at")
    created_at = [stored_int(created) for created in await pipe.execute()]
    order = sorted(((created, child) for created, child in zip(created_at, ids, strict=True) if created is not None),
                   reverse=True)
    given = req.params.get("cursor")
    if given:
        before = parse_ms(given, "cursor")
        order = [(created, child) for created, child in order if created < before]
    page = _whole_milliseconds(order, req.params.get("limit", 50), lambda entry: entry[0])
    return await load_runs(req, [child for _, child in page])


async def h_children(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    ids = await children_ids(req, run)
    if req.view == "strait":  # Strait lists children as an array, paged as its other lists
        return json_response(await render_runs(req, await _strait_children(req, ids)))
    cursor = req.params.get("cursor")
    if cursor:
        # (this list's cursor is the last child's id: anything else is not one of its cursors)
        if not RUN_ID_RE.match(cursor):
            raise ApiError(400, "bad_cursor", "cursor must be the next_cursor of an earlier page (a run id)")
        ids = [i for i in ids if i > cursor]
    limit = req.params.get("limit", 50)
    page = ids[:limit]
    runs = await load_runs(req, page)
    more = len(ids) > limit
    return json_response({"data": await render_runs(req, runs), "next_cursor": page[-1] if more else None,
                          "has_more": more, "scanned": len(page)})


def _records(req: Req, kind: str, items: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> web.Response:
    """A run's records: ``{"data": [...]}`` (with ``extra``), or in the strait view a bare array of
    Strait's records."""
    if req.view == "strait":
        return json_response([strait_record(kind, item) for item in items])
    return json_response({"data": items, **(extra or {})})


async def h_events(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    events = await run_events(req, run)
    level, kind = req.params.get("level"), req.params.get("type")
    events = [e for e in events if (level is None or e["level"] == level) and (kind is None or e["type"] == kind)]
    return _records(req, "event", events)


async def h_checkpoints(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return _records(req, "checkpoint", await req.baton.get_checkpoints(run.id))


async def h_steps(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({"data": await run_steps(req, run, req.view)})


async def h_logs(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    events = await req.baton.get_events(run.id, count=10_000)
    return json_response({"data": [durably_log(run.id, e["data"], e["ts"]) for e in events if e["type"] == "log"]})


async def h_usage(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    usage = await run_records(req, run, "usage")
    total = {k: sum(stored_int(u.get(k)) or 0 for u in usage)
             for k in ("prompt_tokens", "completion_tokens", "total_tokens", "cost_microusd")}
    return _records(req, "usage", usage, {"total": {**total, "calls": len(usage)}})


async def h_tool_calls(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return _records(req, "tool_call", await run_records(req, run, "tool_call"))


async def h_outputs(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return _records(req, "output", await run_outputs(req, run))


async def h_debug_bundle(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    records = {
        "event": await run_events(req, run), "checkpoint": await req.baton.get_checkpoints(run.id),
        "usage": await run_records(req, run, "usage"), "tool_call": await run_records(req, run, "tool_call"),
        "output": await run_outputs(req, run),
    }
    if req.view == "strait":
        records = {kind: [strait_record(kind, item) for item in items] for kind, items in records.items()}
    bundle: dict[str, Any] = {
        "run": await view_of(req, run), "events": records["event"], "checkpoints": records["checkpoint"],
        "usage": records["usage"], "tool_calls": records["tool_call"], "outputs": records["output"],
    }
    if req.view != "strait":  # Strait's bundle has no steps or children
        bundle.update({"steps": await run_steps(req, run, req.view), "children": await children_ids(req, run)})
    return json_response(bundle)


async def h_lineage(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    chain = await lineage(req.baton, run, lambda r: project_of(r) == req.project)
    shown = await render_runs(req, chain)
    return json_response(shown if req.view == "strait" else {"data": shown})


async def h_dependency_status(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    children = await load_runs(req, (await children_ids(req, run))[:MAX_CHILDREN])
    by_id = {c.id: c for c in children}
    waits = await waits_of(req.baton, run)
    deps = await _parent_dependencies(req, run, by_id)
    for child_id in waits.children:
        child = by_id.get(child_id)
        deps.append({"id": child_id, "job_id": run.job, "depends_on_job_id": child.job if child else None,
                     "depends_on_run_id": child_id, "condition": "finished",
                     "status": child.status if child else "expired",
                     "satisfied": bool(child and child.finished), "created_at": iso(child.created_at_ms)
                     if child else None})
    waiting_for = None
    if waits.kind:
        waiting_for = {"kind": waits.kind, "key": waits.key, "until": iso(waits.until_ms),
                       "children": waits.children if waits.kind == "children" else None}
        if waits.kind in ("event", "sleep", "signal", "token"):
            # e.g. "event order-1", "signal approve", "token wpt_...", "time 2026-01-01T00:00:00Z"
            condition = f"time {iso(waits.until_ms)}" if waits.kind == "sleep" else f"{waits.kind} {waits.key}"
            deps.append({"id": f"{run.id}:{waits.kind}", "job_id": run.job, "depends_on_job_id": None,
                         "depends_on_run_id": None, "condition": condition,
                         "status": "waiting", "satisfied": False, "created_at": iso(waits.started_ms)})
    parent = None
    if run.parent_id:
        prun = await req.baton.get_run(run.parent_id)
        parent = {"id": run.parent_id, "job_id": prun.job if prun else None,
                  "status": prun.status if prun else None}
    if req.view == "strait":
        # Strait's dependencies are runs of other jobs: the children whose records are still kept
        known = [{k: d[k] for k in ("id", "job_id", "depends_on_job_id", "condition", "created_at")}
                 for d in deps if d["depends_on_run_id"] in by_id]
        return json_response({"run_id": run.id, "job_id": run.job, "status": status_strait(run.status),
                              "dependencies": known,
                              "dependencies_satisfied": all(d["satisfied"] for d in deps)})
    return json_response({
        "run_id": run.id, "job_id": run.job, "status": run.status, "dependencies": deps,
        "dependencies_satisfied": all(d["satisfied"] for d in deps), "parent": parent,
        "children": [{"id": c.id, "job_id": c.job, "status": c.status} for c in children],
        "waiting_for": waiting_for,
    })


async def _parent_dependencies(req: Req, run: Run, by_id: dict[str, Run]) -> list[dict[str, Any]]:
    """The run's parents (depends_on) as dependencies; adds the parents still kept to ``by_id``."""
    edges = edges_of(run.raw)
    if not edges:
        return []
    parents = {p.id: p for p in await load_runs(req, [e[0] for e in edges])}
    by_id.update(parents)
    pending: set[str] = set()
    if run.status == "waiting" and run.wait_kind == "parents":
        p = req.baton.keys.partition_of_run(run.id)
        pending = {text(m) for m in await req.baton.redis.smembers(p.deps_pending(run.id))}
    out = []
    for parent_id, policy, _name in edges:
        parent = parents.get(parent_id)
        if pending:  # still waiting: exactly the parents left in its pending set hold it back
            satisfied = parent_id not in pending
        else:  # a parent whose record expired finished long ago
            satisfied = parent is None or edge_satisfied(parent.status, policy)
        out.append({"id": f"{run.id}:parent:{parent_id}", "job_id": run.job,
                    "depends_on_job_id": parent.job if parent else None, "depends_on_run_id": parent_id,
                    "condition": "completed" if policy == "fail" else f"finished (on_failure {policy})",
                    "status": parent.status if parent else "expired", "satisfied": satisfied,
                    "created_at": iso(parent.created_at_ms) if parent else None})
    return out


async def h_state(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    lease = None
    if run.status == "executing":
        lease = {"node": run.lease_node, "expires_at": iso(run.lease_expires_at_ms)}
    outputs = {o["output_key"]: o.get("value") for o in await run_outputs(req, run)}
    return json_response({
        "run_id": run.id, "status": run.status, "attempt": run.attempt,
        "current_step_index": run.current_step_index, "completed_step_count": run.completed_step_count,
        "progress": run.progress, "metadata": run.metadata,
        "wait": run.wait,
        "paused": run.status == "paused", "pause_requested": run.pause_requested,
        "cancel_requested": run.cancel_requested, "debug_mode": run.debug_mode, "lease": lease,
        "steps": await run_steps(req, run), "latest_checkpoint": await req.baton.latest_checkpoint(run.id),
        "outputs": outputs,
    })


async def h_stream(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return await stream_events(req, req.baton.keys.partition_of_run(run.id), run.id)


async def h_stream_chunks(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return await stream_chunks(req, req.baton.keys.partition_of_run(run.id), run.id)
