"""Handlers of the run endpoints: lists, one run, its records, lineage and streams."""

from __future__ import annotations

from aiohttp import web

from ..records import iso, stored_int
from ..relatives import lineage, waits_of
from ..statuses import RunStatus
from .listing import RunFilter, RunIndex, list_runs
from .routing import Req, json_response
from .run_helpers import (
    MAX_CHILDREN,
    action,
    children_ids,
    load_run,
    load_runs,
    parse_ms,
    project_of,
    reload_run,
    render_run,
    run_events,
    run_filter,
    run_outputs,
    run_records,
    run_steps,
    view_of,
)
from .sse import stream_chunks, stream_events
from .views import native_run

__all__ = [
    "h_cancel", "h_checkpoints", "h_children", "h_debug", "h_debug_bundle", "h_dependency_status", "h_dlq_replay",
    "h_events", "h_get_run", "h_idem_reset", "h_lineage", "h_list_dlq", "h_list_runs", "h_outputs", "h_pause",
    "h_replay", "h_reschedule", "h_restart", "h_resume", "h_state", "h_steps", "h_stream", "h_stream_chunks",
    "h_tool_calls", "h_usage",
]

# -- runs: lists ----------------------------------------------------------------


async def h_list_runs(req: Req) -> web.StreamResponse:
    fltr = run_filter(req, req.params)
    page = await list_runs(req.baton, RunIndex.of_project(req.project), fltr, req.params.get("limit", 50),
                           req.params.get("cursor"), req.state.settings.api_scan_limit)
    return json_response({"data": [render_run(req, r) for r in page.runs], "next_cursor": page.next_cursor,
                          "has_more": page.has_more, "scanned": page.scanned})


async def h_list_dlq(req: Req) -> web.StreamResponse:
    fltr = RunFilter(project=req.project, statuses=frozenset({"dead_letter"}), job=req.params.get("job"),
                     queue=req.params.get("queue"))
    page = await list_runs(req.baton, RunIndex.of_status(RunStatus.DEAD_LETTER), fltr, req.params.get("limit", 50),
                           req.params.get("cursor"), req.state.settings.api_scan_limit)
    return json_response({"data": [render_run(req, r) for r in page.runs], "next_cursor": page.next_cursor,
                          "has_more": page.has_more, "scanned": page.scanned})


# -- runs: one run --------------------------------------------------------------


async def h_get_run(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response(await view_of(req, run))


async def h_cancel(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    result = await req.baton.cancel(run.id)
    return action(req, await reload_run(req, run), result)


async def h_replay(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    new_id = await req.baton.replay(run.id)
    return json_response(render_run(req, await reload_run(req, new_id)), status=201)


async def h_dlq_replay(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    new_id = await req.baton.replay(run.id, dead_letter_only=True)
    return json_response(render_run(req, await reload_run(req, new_id)), status=201)


async def h_pause(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    result = await req.baton.pause(run.id)
    return action(req, await reload_run(req, run), result)


async def h_resume(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    result = await req.baton.resume(run.id)
    return action(req, await reload_run(req, run), result)


async def h_restart(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    new_id = await req.baton.restart(run.id)
    return json_response(render_run(req, await reload_run(req, new_id)), status=201)


async def h_reschedule(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    body = req.body or {}
    if "scheduled_at" in body:
        await req.baton.reschedule(run.id, run_at=parse_ms(body["scheduled_at"], "scheduled_at"))
    else:
        await req.baton.reschedule(run.id, delay=float(body["delay"]))
    return action(req, await reload_run(req, run), "rescheduled")


async def h_debug(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    on = bool(req.body["debug_mode"])
    await req.baton.set_debug_mode(run.id, on)
    return action(req, await reload_run(req, run), "debug_on" if on else "debug_off")


async def h_idem_reset(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    reset = await req.baton.reset_idempotency_key(run.id)
    return json_response({"status": "reset" if reset else "not_set", "run_id": run.id})


async def h_children(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    ids = await children_ids(req, run)
    cursor = req.params.get("cursor")
    if cursor:
        ids = [i for i in ids if i > cursor]
    limit = req.params.get("limit", 50)
    page = ids[:limit]
    runs = await load_runs(req, page)
    more = len(ids) > limit
    return json_response({"data": [render_run(req, r) for r in runs], "next_cursor": page[-1] if more else None,
                          "has_more": more, "scanned": len(page)})


async def h_events(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    events = await run_events(req, run)
    level, kind = req.params.get("level"), req.params.get("type")
    events = [e for e in events if (level is None or e["level"] == level) and (kind is None or e["type"] == kind)]
    return json_response({"data": events})


async def h_checkpoints(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({"data": await req.baton.get_checkpoints(run.id)})


async def h_steps(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({"data": await run_steps(req, run)})


async def h_usage(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    usage = await run_records(req, run, "usage")
    total = {k: sum(stored_int(u.get(k)) or 0 for u in usage)
             for k in ("prompt_tokens", "completion_tokens", "total_tokens", "cost_microusd")}
    return json_response({"data": usage, "total": {**total, "calls": len(usage)}})


async def h_tool_calls(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({"data": await run_records(req, run, "tool_call")})


async def h_outputs(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({"data": await run_outputs(req, run)})


async def h_debug_bundle(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({
        "run": native_run(run), "events": await run_events(req, run),
        "checkpoints": await req.baton.get_checkpoints(run.id), "usage": await run_records(req, run, "usage"),
        "tool_calls": await run_records(req, run, "tool_call"), "outputs": await run_outputs(req, run),
        "steps": await run_steps(req, run), "children": await children_ids(req, run),
    })


async def h_lineage(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    chain = await lineage(req.baton, run, lambda r: project_of(r) == req.project)
    return json_response({"data": [render_run(req, r) for r in chain]})


async def h_dependency_status(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    children = await load_runs(req, (await children_ids(req, run))[:MAX_CHILDREN])
    by_id = {c.id: c for c in children}
    waits = await waits_of(req.baton, run)
    deps = []
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
        if waits.kind in ("event", "sleep"):
            deps.append({"id": f"{run.id}:{waits.kind}", "job_id": run.job, "depends_on_job_id": None,
                         "depends_on_run_id": None,
                         "condition": f"event {waits.key}" if waits.kind == "event" else f"time {iso(waits.until_ms)}",
                         "status": "waiting", "satisfied": False, "created_at": iso(waits.started_ms)})
    parent = None
    if run.raw.get("parent_id"):
        prun = await req.baton.get_run(run.raw["parent_id"])
        parent = {"id": run.raw["parent_id"], "job_id": prun.job if prun else None,
                  "status": prun.status if prun else None}
    return json_response({
        "run_id": run.id, "job_id": run.job, "status": run.status, "dependencies": deps,
        "dependencies_satisfied": all(d["satisfied"] for d in deps), "parent": parent,
        "children": [{"id": c.id, "job_id": c.job, "status": c.status} for c in children],
        "waiting_for": waiting_for,
    })


async def h_state(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    native = native_run(run)
    lease = None
    if run.status == "executing":
        expires = run.raw.get("lease_expires_at")
        lease = {"node": run.lease_node, "expires_at": iso(stored_int(expires))}
    outputs = {o["output_key"]: o.get("value") for o in await run_outputs(req, run)}
    return json_response({
        "run_id": run.id, "status": run.status, "attempt": run.attempt,
        "current_step_index": native["current_step_index"], "completed_step_count": native["completed_step_count"],
        "progress": native["progress"], "metadata": run.metadata, "wait": native["wait"],
        "paused": run.status == "paused", "pause_requested": native["pause_requested"],
        "cancel_requested": run.cancel_requested, "debug_mode": native["debug_mode"], "lease": lease,
        "steps": await run_steps(req, run), "latest_checkpoint": await req.baton.latest_checkpoint(run.id),
        "outputs": outputs,
    })


async def h_stream(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return await stream_events(req, req.baton.keys.partition_of_run(run.id), run.id)


async def h_stream_chunks(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return await stream_chunks(req, req.baton.keys.partition_of_run(run.id), run.id)
