"""The endpoints: handlers and their declarations (see routing.Route).

Every run endpoint looks the run up in the caller's project only: a run of
another project answers 404 exactly like a run that does not exist.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from ..errors import BatonError, SubmissionError
from ..ids import RUN_ID_RE
from ..records import LIVE_STATUSES, Run, iso, read_runs, stored_int, stored_json, text
from .errors import ApiError
from .listing import RunFilter, list_runs
from .routing import Param, Req, Route, json_response
from .schemas import VIEW_NAMES
from .sse import stream_chunks, stream_events
from .views import NATIVE_STATUSES, event_view, native_run, render

__all__ = ["ROUTES"]

#: live statuses that "cancel all matching" considers
CANCELABLE = frozenset({*LIVE_STATUSES, "paused"})
MAX_CHILDREN = 1000
MAX_LINEAGE = 100


# -- helpers --------------------------------------------------------------------


_s = text


def _ms(text: str, name: str) -> int:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        raise ApiError(400, "invalid_parameter", f"{name} must carry a time zone (e.g. Z)")
    return int(parsed.timestamp() * 1000)


def _project_of(run: Run) -> str:
    return run.raw.get("project") or "default"


def scoped_id(project: str, run_id: str) -> str:
    """Where a caller-chosen run id lives: as given in project default (shared with the Python client
    and stream producers), ``<project>:<id>`` in any other. Project names have no ":", so two projects'
    ids never meet: a trigger cannot take, or reveal by a conflict, a run of another project (the
    namespace a workflow id has in Temporal)."""
    return run_id if project == "default" else f"{project}:{run_id}"


def _foreign_scope(req: Req, run_id: str) -> bool:
    """Whether a default-project caller's id would land in another project's namespace."""
    head, sep, _ = run_id.partition(":")
    return req.project == "default" and bool(sep) and head != "default" and head in req.state.keys.projects


async def load_run(req: Req, run_id: str) -> Run:
    """The run with this id in the caller's project; 404 otherwise (also for other projects' runs).
    A caller-chosen id is found by its short form too (see scoped_id)."""
    for candidate in dict.fromkeys((run_id, run_id[4:] if run_id.startswith("run_") else run_id)):
        # the trigger view's run_ prefix, then the id as the caller chose it in their project
        for stored in dict.fromkeys((scoped_id(req.project, candidate), candidate)):
            run = await req.baton.get_run(stored) if RUN_ID_RE.match(stored) else None
            if run is not None and _project_of(run) == req.project:
                return run
    raise ApiError(404, "not_found", f"run {run_id} not found")


async def _runs(req: Req, ids: list[str]) -> list[Run]:
    """Runs of the caller's project among ids, in order (missing ones skipped)."""
    if not ids:
        return []
    out = []
    for run in await read_runs(req.baton.redis, req.baton.keys, ids):
        if run is not None and _project_of(run) == req.project:
            out.append(run)
    return out


def _render(req: Req, run: Run, children: list[Run] | None = None) -> dict[str, Any]:
    s = req.state.settings
    return render(run, req.view, children=children, finished_ttl_ms=s.finished_ttl_s * 1000,
                  failed_ttl_ms=s.dead_letter_ttl_s * 1000)


async def _children_ids(req: Req, run: Run) -> list[str]:
    p = req.baton.keys.partition_of_run(run.id)
    members = await req.baton.redis.smembers(p.children(run.id))
    return sorted(_s(m) for m in members)


async def _view_of(req: Req, run: Run) -> dict[str, Any]:
    children = None
    if req.view == "trigger":
        children = await _runs(req, (await _children_ids(req, run))[:MAX_CHILDREN])
    return _render(req, run, children)


def _scope(project: str, key: str) -> str:
    """Idempotency and event keys of a project other than "default" are stored scoped to it."""
    return key if project == "default" else f"{project}/{key}"


async def _records(req: Req, run: Run, kind: str) -> list[dict[str, Any]]:
    p = req.baton.keys.partition_of_run(run.id)
    rows = await req.baton.redis.xrange(p.records(run.id))
    out = []
    for _eid, raw in rows:
        f = {_s(k): _s(v) for k, v in raw.items()}
        data = stored_json(f.get("data")) if f.get("type") == kind else None
        if isinstance(data, dict):  # a record that is not an object (corruption) is left out
            out.append(data)
    return out


async def _outputs(req: Req, run: Run) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in await _records(req, run, "output"):
        key = record.get("output_key")
        if isinstance(key, str):
            latest.pop(key, None)
            latest[key] = record
    return list(latest.values())


async def _events(req: Req, run: Run) -> list[dict[str, Any]]:
    return [event_view(run.id, e) for e in await req.baton.get_events(run.id, count=10_000)]


async def _steps(req: Req, run: Run) -> list[dict[str, Any]]:
    steps = await req.baton.get_steps(run.id)
    out = []
    for st in steps:
        out.append({"name": st.get("name"), "index": st.get("index"), "status": st.get("status"),
                    "output": st.get("output"), "error": st.get("error"),
                    "started_at": iso(stored_int(st.get("started_at"))),
                    "completed_at": iso(stored_int(st.get("completed_at")))})
    return out


def _action(req: Req, run: Run, result: str) -> web.Response:
    return json_response({"id": run.id, "result": result, "run": _render(req, run)})


async def _reload(req: Req, run: Run | str) -> Run:
    run_id = run if isinstance(run, str) else run.id
    fresh = await req.baton.get_run(run_id)
    if fresh is None:
        raise ApiError(404, "not_found", f"run {run_id} not found")
    return fresh


# -- parameters -----------------------------------------------------------------

RUN_ID = Param("run_id", {"type": "string", "minLength": 1, "maxLength": 132}, "The run's id (a trigger-view "
               "id with its run_ prefix is accepted too)", location="path", required=True)
VIEW = Param("view", {"type": "string", "enum": VIEW_NAMES}, "Shape of each run: Baton's native one or a seed "
             "system's (the X-Baton-View header works too; the query parameter wins)")
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}, "Page size (at most 100)")
CURSOR = Param("cursor", {"type": "string", "minLength": 1, "maxLength": 200},
               "next_cursor of the previous page")
LAST_EVENT = Param("last_event_id", {"type": "string", "pattern": r"^\d{1,20}-\d{1,20}$"},
                   "Resume after this event id (like the Last-Event-ID header)")
FILTERS = (
    Param("status", {"type": "array", "items": {"type": "string", "enum": list(NATIVE_STATUSES)}, "maxItems": 10},
          "Comma-separated native statuses"),
    Param("job", {"type": "string", "minLength": 1, "maxLength": 100}, "Job name"),
    Param("queue", {"type": "string", "minLength": 1, "maxLength": 100}, "Queue name"),
    Param("tag", {"type": "string", "minLength": 1, "maxLength": 128}, "Runs carrying this tag"),
    Param("label", {"type": "string", "pattern": "^[^=]+=.*$", "maxLength": 256}, "name=value of a label"),
    Param("metadata_key", {"type": "string", "minLength": 1, "maxLength": 256}, "Runs whose metadata has this key"),
    Param("metadata_value", {"type": "string", "maxLength": 512},
          "... with this value (JSON text for non-string values); needs metadata_key"),
    Param("batch_id", {"type": "string", "minLength": 1, "maxLength": 128}, "Runs of one batch trigger"),
    Param("triggered_by", {"type": "string", "minLength": 1, "maxLength": 64},
          "api, manual, spawn (child runs), continue, replay, restart, client, stream, cron ..."),
    Param("created_after", {"type": "string", "format": "date-time"}, "Created at or after (ISO-8601)"),
    Param("created_before", {"type": "string", "format": "date-time"}, "Created at or before (ISO-8601)"),
    Param("payload_contains", {"type": "string", "minLength": 2, "maxLength": 2048},
          "JSON object the run's input must contain (like jsonb @>)"),
)


def _filter(req: Req, values: dict[str, Any]) -> RunFilter:
    label = None
    if values.get("label"):
        name, _, value = str(values["label"]).partition("=")
        label = (name, value)
    payload = values.get("payload_contains")
    if isinstance(payload, str):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise ApiError(400, "invalid_parameter", "payload_contains must be a JSON object") from None
    if payload is not None and not isinstance(payload, dict):
        raise ApiError(400, "invalid_parameter", "payload_contains must be a JSON object")
    if values.get("metadata_value") is not None and not values.get("metadata_key"):
        raise ApiError(400, "invalid_parameter", "metadata_value needs metadata_key")
    after = _ms(values["created_after"], "created_after") if values.get("created_after") is not None else None
    before = _ms(values["created_before"], "created_before") if values.get("created_before") is not None else None
    statuses = frozenset(values["status"]) if values.get("status") else None
    return RunFilter(
        project=req.project, statuses=statuses, job=values.get("job"), queue=values.get("queue"),
        tag=values.get("tag"), label=label, metadata_key=values.get("metadata_key"),
        metadata_value=values.get("metadata_value"), batch_id=values.get("batch_id"),
        triggered_by=values.get("triggered_by"), created_after_ms=after, created_before_ms=before,
        payload_contains=payload,
    )


# -- runs: lists ----------------------------------------------------------------


async def h_list_runs(req: Req) -> web.StreamResponse:
    fltr = _filter(req, req.params)
    page = await list_runs(req.baton, f"runs:{req.project}", fltr, req.params.get("limit", 50),
                           req.params.get("cursor"), req.state.settings.api_scan_limit)
    return json_response({"data": [_render(req, r) for r in page.runs], "next_cursor": page.next_cursor,
                          "has_more": page.has_more, "scanned": page.scanned})


async def h_list_dlq(req: Req) -> web.StreamResponse:
    fltr = RunFilter(project=req.project, statuses=frozenset({"dead_letter"}), job=req.params.get("job"),
                     queue=req.params.get("queue"))
    page = await list_runs(req.baton, "st:dead_letter", fltr, req.params.get("limit", 50),
                           req.params.get("cursor"), req.state.settings.api_scan_limit)
    return json_response({"data": [_render(req, r) for r in page.runs], "next_cursor": page.next_cursor,
                          "has_more": page.has_more, "scanned": page.scanned})


# -- runs: one run --------------------------------------------------------------


async def h_get_run(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response(await _view_of(req, run))


async def h_cancel(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    result = await req.baton.cancel(run.id)
    return _action(req, await _reload(req, run), result)


async def h_replay(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    new_id = await req.baton.replay(run.id)
    return json_response(_render(req, await _reload(req, new_id)), status=201)


async def h_dlq_replay(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    new_id = await req.baton.replay(run.id, dead_letter_only=True)
    return json_response(_render(req, await _reload(req, new_id)), status=201)


async def h_pause(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    result = await req.baton.pause(run.id)
    return _action(req, await _reload(req, run), result)


async def h_resume(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    result = await req.baton.resume(run.id)
    return _action(req, await _reload(req, run), result)


async def h_restart(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    new_id = await req.baton.restart(run.id)
    return json_response(_render(req, await _reload(req, new_id)), status=201)


async def h_reschedule(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    body = req.body or {}
    if "scheduled_at" in body:
        await req.baton.reschedule(run.id, run_at=_ms(body["scheduled_at"], "scheduled_at"))
    else:
        await req.baton.reschedule(run.id, delay=float(body["delay"]))
    return _action(req, await _reload(req, run), "rescheduled")


async def h_debug(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    on = bool(req.body["debug_mode"])
    await req.baton.set_debug_mode(run.id, on)
    return _action(req, await _reload(req, run), "debug_on" if on else "debug_off")


async def h_idem_reset(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    reset = await req.baton.reset_idempotency_key(run.id)
    return json_response({"status": "reset" if reset else "not_set", "run_id": run.id})


async def h_children(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    ids = await _children_ids(req, run)
    cursor = req.params.get("cursor")
    if cursor:
        ids = [i for i in ids if i > cursor]
    limit = req.params.get("limit", 50)
    page = ids[:limit]
    runs = await _runs(req, page)
    more = len(ids) > limit
    return json_response({"data": [_render(req, r) for r in runs], "next_cursor": page[-1] if more else None,
                          "has_more": more, "scanned": len(page)})


async def h_events(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    events = await _events(req, run)
    level, kind = req.params.get("level"), req.params.get("type")
    events = [e for e in events if (level is None or e["level"] == level) and (kind is None or e["type"] == kind)]
    return json_response({"data": events})


async def h_checkpoints(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({"data": await req.baton.get_checkpoints(run.id)})


async def h_steps(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({"data": await _steps(req, run)})


async def h_usage(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    usage = await _records(req, run, "usage")
    total = {k: sum(stored_int(u.get(k)) or 0 for u in usage)
             for k in ("prompt_tokens", "completion_tokens", "total_tokens", "cost_microusd")}
    return json_response({"data": usage, "total": {**total, "calls": len(usage)}})


async def h_tool_calls(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({"data": await _records(req, run, "tool_call")})


async def h_outputs(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({"data": await _outputs(req, run)})


async def h_debug_bundle(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response({
        "run": native_run(run), "events": await _events(req, run),
        "checkpoints": await req.baton.get_checkpoints(run.id), "usage": await _records(req, run, "usage"),
        "tool_calls": await _records(req, run, "tool_call"), "outputs": await _outputs(req, run),
        "steps": await _steps(req, run), "children": await _children_ids(req, run),
    })


async def h_lineage(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    chain = [run]
    seen = {run.id}
    back = run
    while back.raw.get("continuation_of") and len(chain) < MAX_LINEAGE:
        prev = await req.baton.get_run(back.raw["continuation_of"])
        if prev is None or prev.id in seen or _project_of(prev) != req.project:
            break
        chain.insert(0, prev)
        seen.add(prev.id)
        back = prev
    fwd = run
    while fwd.raw.get("continued_as") and len(chain) < MAX_LINEAGE:
        nxt = await req.baton.get_run(fwd.raw["continued_as"])
        if nxt is None or nxt.id in seen or _project_of(nxt) != req.project:
            break
        chain.append(nxt)
        seen.add(nxt.id)
        fwd = nxt
    return json_response({"data": [_render(req, r) for r in chain]})


async def h_dependency_status(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    p = req.baton.keys.partition_of_run(run.id)
    redis = req.baton.redis
    children = await _runs(req, (await _children_ids(req, run))[:MAX_CHILDREN])
    by_id = {c.id: c for c in children}
    waits_on = sorted(_s(m) for m in await redis.smembers(p.waits_on(run.id))) if run.status == "waiting" else []
    deps = []
    for child_id in waits_on:
        child = by_id.get(child_id)
        deps.append({"id": child_id, "job_id": run.job, "depends_on_job_id": child.job if child else None,
                     "depends_on_run_id": child_id, "condition": "finished",
                     "status": child.status if child else "expired",
                     "satisfied": bool(child and child.finished), "created_at": iso(child.created_at_ms)
                     if child else None})
    waiting_for = None
    kind = run.raw.get("wait_kind")
    if run.status == "waiting" and kind:
        score = await redis.zscore(p.waiting, run.id)
        until = stored_int(score) if score is not None and score < 1e15 else None
        waiting_for = {"kind": kind, "key": run.raw.get("wait_key"), "until": iso(until),
                       "children": waits_on if kind == "children" else None}
        if kind in ("event", "sleep"):
            deps.append({"id": f"{run.id}:{kind}", "job_id": run.job, "depends_on_job_id": None,
                         "depends_on_run_id": None,
                         "condition": f"event {run.raw.get('wait_key')}" if kind == "event" else
                         f"time {iso(until)}", "status": "waiting", "satisfied": False,
                         "created_at": iso(stored_int(run.raw.get("wait_started_at")))})
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
    outputs = {o["output_key"]: o.get("value") for o in await _outputs(req, run)}
    return json_response({
        "run_id": run.id, "status": run.status, "attempt": run.attempt,
        "current_step_index": native["current_step_index"], "completed_step_count": native["completed_step_count"],
        "progress": native["progress"], "metadata": run.metadata, "wait": native["wait"],
        "paused": run.status == "paused", "pause_requested": native["pause_requested"],
        "cancel_requested": run.cancel_requested, "debug_mode": native["debug_mode"], "lease": lease,
        "steps": await _steps(req, run), "latest_checkpoint": await req.baton.latest_checkpoint(run.id),
        "outputs": outputs,
    })


async def h_stream(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return await stream_events(req, req.baton.keys.partition_of_run(run.id), run.id)


async def h_stream_chunks(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return await stream_chunks(req, req.baton.keys.partition_of_run(run.id), run.id)


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
    fltr = _filter(req, body)
    wanted = fltr.statuses & CANCELABLE if fltr.statuses is not None else CANCELABLE
    fltr.statuses = frozenset(wanted)
    results: list[dict[str, Any]] = []
    canceled = 0
    cursor: str | None = None
    has_more = bool(wanted)
    budget = req.state.settings.api_scan_limit * 10
    while wanted and len(results) < limit and budget > 0:
        page = await list_runs(req.baton, f"runs:{req.project}", fltr, min(100, limit - len(results)), cursor,
                               min(req.state.settings.api_scan_limit, budget))
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
    runs = await _runs(req, new_ids)
    return json_response({"replayed": [_render(req, r) for r in runs], "results": results, "count": len(new_ids),
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
            page = await list_runs(req.baton, "st:dead_letter", fltr, 100, cursor,
                                   min(req.state.settings.api_scan_limit, budget))
            budget -= page.scanned
            ids.extend(r.id for r in page.runs if not r.raw.get("replayed_as"))
            cursor = page.next_cursor
            if not page.has_more:
                break
        ids = ids[:limit]
    return await _replay_many(req, ids, dead_letter_only=True)


# -- jobs, triggers, events -----------------------------------------------------


async def h_jobs(req: Req) -> web.StreamResponse:
    await req.baton.refresh_registry()
    registered = {_s(name) for name in await req.baton.redis.hkeys(req.baton.keys.registry)}
    names = sorted(set(req.baton.jobs.names()) | registered)
    out = []
    for name in names:
        options = req.baton.lookup(name)
        if options is None:
            continue
        d = orjson.loads(options.to_json())
        out.append({"name": name, "queue": d.get("queue", "default"), "max_attempts": d.get("max_attempts"),
                    "timeout_s": d.get("timeout_s"), "backoff": d.get("backoff") or {},
                    "priority": int(d.get("priority") or 0), "max_concurrency": int(d.get("max_concurrency") or 0),
                    "max_concurrency_per_key": int(d.get("max_concurrency_per_key") or 0),
                    "version": str(d.get("version") or ""), "options": d})
    return json_response({"data": out})


def _item(req: Req, job: str, body: dict[str, Any], batch_id: str | None = None) -> tuple[dict[str, Any],
                                                                                            dict[str, Any]]:
    item = {k: v for k, v in body.items() if k not in ("triggered_by", "job")}
    item["job"] = job
    if isinstance(item.get("id"), str):
        chosen = str(item["id"])
        if _foreign_scope(req, chosen):
            raise ApiError(400, "invalid_body", f"id: {chosen.partition(':')[0]}: is the id namespace of a project")
        item["id"] = scoped_id(req.project, chosen)
        if not RUN_ID_RE.match(item["id"]):
            raise ApiError(400, "invalid_body", f"id: at most {128 - len(item['id']) + len(chosen)} characters "
                           f"in project {req.project}")
    if item.get("idempotency_key"):
        item["idempotency_key"] = _scope(req.project, str(item["idempotency_key"]))
    if isinstance(item.get("debounce"), dict) and item["debounce"].get("key"):
        # like idempotency keys, debounce keys never coalesce runs of two projects
        item["debounce"] = {**item["debounce"], "key": _scope(req.project, str(item["debounce"]["key"]))}
    extra: dict[str, Any] = {"project": req.project, "triggered_by": body.get("triggered_by") or "api"}
    if batch_id:
        extra["batch_id"] = batch_id
    return item, extra


_OUTCOMES = {1: "created", 0: "existing", 2: "idempotent", 3: "debounced"}


async def h_trigger(req: Req) -> web.StreamResponse:
    item, extra = _item(req, req.params["job"], req.body or {})
    spec = await req.baton._spec(item, source="api", extra=extra)
    [(run_id, code)] = await req.baton.create_detailed([spec])
    run = await req.baton.get_run(run_id)
    if run is None or _project_of(run) != req.project:
        # only an id made outside the API (a generated or stream producer's id) can meet here: say no more
        # than that this id cannot be used
        raise ApiError(409, "exists", "this run id cannot be used; choose another")
    return json_response({"id": run_id, "created": code == 1, "outcome": _OUTCOMES.get(code, "created"),
                          "run": _render(req, run)}, status=201 if code == 1 else 200)


async def h_trigger_batch(req: Req) -> web.StreamResponse:
    batch_id = "batch_" + secrets.token_hex(10)
    specs = []
    for i, body in enumerate(req.body["runs"]):
        item, extra = _item(req, body["job"], body, batch_id)
        try:
            specs.append(await req.baton._spec(item, source="api", extra=extra))
        except SubmissionError as exc:
            raise ApiError(404 if exc.reason == "unknown_job" else 400, exc.reason, f"runs[{i}]: {exc}") from None
    created = await req.baton.create_detailed(specs)
    runs = {r.id: r for r in await _runs(req, [run_id for run_id, _ in created])}
    out = []
    for run_id, code in created:
        if run_id in runs:
            out.append({"id": run_id, "created": code == 1, "outcome": _OUTCOMES.get(code, "created")})
        else:
            out.append({"id": run_id, "created": False, "outcome": "conflict"})
    return json_response({"batch_id": batch_id, "runs": out}, status=201)


async def h_send_event(req: Req) -> web.StreamResponse:
    key = str(req.body["key"])
    woken = await req.baton.send_event(_scope(req.project, key), req.body.get("data"))
    return json_response({"key": key, "woken": woken})


# -- operations -----------------------------------------------------------------


async def h_health(req: Req) -> web.StreamResponse:
    return json_response({"status": "ok"})


async def h_ready(req: Req) -> web.StreamResponse:
    draining = req.state.ready is not None and not req.state.ready()
    try:
        redis_ok = bool(await req.baton.redis.ping())
    except Exception:  # noqa: BLE001 - any failure means not ready
        redis_ok = False
    ok = redis_ok and not draining and not req.state.stopping.is_set()
    return json_response({"status": "ready" if ok else "unavailable", "redis": redis_ok,
                          "draining": draining or req.state.stopping.is_set()}, status=200 if ok else 503)


async def h_metrics(req: Req) -> web.StreamResponse:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    body = generate_latest(req.state.registry or REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def h_openapi(req: Req) -> web.StreamResponse:
    from .openapi import document

    return json_response(document())


# -- the table ------------------------------------------------------------------

_RUN = "Runs"
_NF = (404,)
_CONFLICT = (404, 409)

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/runs", h_list_runs, "listRuns", "List runs", _RUN,
          "Newest first, stable order (created time, id) across partitions, filtered, cursor-paginated. A page "
          "examines at most api_scan_limit index entries (default 5000): a selective filter may return a short "
          "page with has_more=true; follow next_cursor.",
          params=(*FILTERS, LIMIT, CURSOR, VIEW), responses={200: ("A page of runs", "RunPage")}),
    Route("GET", "/v1/runs/dlq", h_list_dlq, "listDeadLetteredRuns", "List dead-lettered runs", _RUN,
          "Runs that exhausted their attempts, most recently dead-lettered first.",
          params=(Param("job", {"type": "string", "minLength": 1, "maxLength": 100}, "Job name"),
                  Param("queue", {"type": "string", "minLength": 1, "maxLength": 100}, "Queue name"),
                  LIMIT, CURSOR, VIEW),
          responses={200: ("A page of dead-lettered runs", "RunPage")}),
    Route("POST", "/v1/runs/bulk-cancel", h_bulk_cancel, "bulkCancelRuns", "Cancel runs by id", _RUN,
          "Each id is canceled like DELETE /v1/runs/{run_id}; unknown, foreign or finished ids are reported per id.",
          body="RunIds", body_required=True, responses={200: ("Per-run results", "BulkResult")}),
    Route("POST", "/v1/runs/bulk-cancel-all", h_cancel_all, "cancelAllMatchingRuns",
          "Cancel all live runs matching a filter", _RUN,
          "Filters as GET /v1/runs (as JSON); only live statuses (queued, delayed, executing, waiting, paused) "
          "are canceled; at most `limit` (default 1000) per call: repeat while has_more.",
          body="CancelAllRequest", responses={200: ("Per-run results", "BulkResult")}),
    Route("POST", "/v1/runs/bulk-replay", h_bulk_replay, "bulkReplayRuns", "Replay finished runs by id", _RUN,
          "Each finished run starts again as a new linked run (replay_of).", params=(VIEW,),
          body="RunIds", body_required=True, responses={200: ("New runs and per-run results", "BulkReplayResult")}),
    Route("POST", "/v1/runs/bulk-dlq-replay", h_bulk_dlq_replay, "bulkReplayDeadLetteredRuns",
          "Replay dead-lettered runs", _RUN,
          "The given dead-lettered runs, or (without run_ids) up to `limit` (default 100) not replayed yet. Each "
          "dead-lettered run is replayed from the queue at most once (it records replayed_as).", params=(VIEW,),
          body="DlqReplayRequest", responses={200: ("New runs and per-run results", "BulkReplayResult")}),
    Route("POST", "/v1/runs/batch", h_trigger_batch, "triggerBatch", "Trigger many runs (a batch)", "Jobs",
          "All runs get one batch_id (filter GET /v1/runs?batch_id=). The batch is validated whole: one invalid "
          "item rejects it.", body="BatchTriggerRequest", body_required=True,
          responses={201: ("The batch", "BatchTriggerResponse")}),
    Route("GET", "/v1/runs/{run_id}", h_get_run, "getRun", "Get a run", _RUN, params=(RUN_ID, VIEW),
          responses={200: ("The run", "Run")}, errors=_NF),
    Route("DELETE", "/v1/runs/{run_id}", h_cancel, "cancelRun", "Cancel a run", _RUN,
          "A queued, delayed, waiting or paused run ends canceled at once (result canceled); an executing one "
          "is stopped via its node (result cancel_requested). Unfinished children are canceled too.",
          params=(RUN_ID, VIEW), responses={200: ("What happened", "RunAction")}, errors=_CONFLICT),
    Route("POST", "/v1/runs/{run_id}/replay", h_replay, "replayRun", "Replay a finished run", _RUN,
          "A new run with the same input and options, linked by replay_of.", params=(RUN_ID, VIEW),
          responses={201: ("The new run", "Run")}, errors=_CONFLICT),
    Route("POST", "/v1/runs/{run_id}/dlq-replay", h_dlq_replay, "replayDeadLetteredRun",
          "Replay a dead-lettered run", _RUN, "409 when the run is not dead-lettered or was already replayed "
          "from the queue.", params=(RUN_ID, VIEW), responses={201: ("The new run", "Run")}, errors=_CONFLICT),
    Route("GET", "/v1/runs/{run_id}/stream", h_stream, "streamRunEvents", "Stream a run's events (SSE)", _RUN,
          "text/event-stream of the timeline (status, attempt, log, progress, step, checkpoint ... each as a "
          "RunEvent), ending with an `end` event when the run finishes. Event ids are stream ids: reconnect with "
          "Last-Event-ID to resume.", params=(RUN_ID, LAST_EVENT),
          responses={200: ("Server-sent events", None)}, media_type="text/event-stream", errors=_NF),
    Route("GET", "/v1/runs/{run_id}/stream/chunks", h_stream_chunks, "streamRunChunks",
          "Stream the chunks a run produces (SSE)", _RUN,
          "Each ctx.stream(chunk) as an event `chunk` as soon as it is written, then `end` when the run finishes. "
          "Resumable with Last-Event-ID.", params=(RUN_ID, LAST_EVENT),
          responses={200: ("Server-sent events", None)}, media_type="text/event-stream", errors=_NF),
    Route("GET", "/v1/runs/{run_id}/children", h_children, "listChildRuns", "List child runs", _RUN,
          "Runs this run triggered, by id.", params=(RUN_ID, LIMIT, CURSOR, VIEW),
          responses={200: ("Child runs", "RunPage")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/events", h_events, "listRunEvents", "List a run's events", _RUN,
          "The timeline (capped at 1000 entries per run).",
          params=(RUN_ID, Param("level", {"type": "string", "enum": ["info", "warn", "error"]}, "Only this level"),
                  Param("type", {"type": "string", "minLength": 1, "maxLength": 64},
                        "Only this type (status, attempt, log, progress, step, checkpoint ...)")),
          responses={200: ("Events, oldest first", "RunEventList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/checkpoints", h_checkpoints, "listRunCheckpoints", "List a run's checkpoints",
          _RUN, params=(RUN_ID,), responses={200: ("Checkpoints, oldest first", "CheckpointList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/steps", h_steps, "listRunSteps", "List a run's steps", _RUN,
          params=(RUN_ID,), responses={200: ("Step records in step order", "StepList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/usage", h_usage, "listRunUsage", "List a run's AI model usage", _RUN,
          "Recorded with ctx.record_usage(...); with totals.", params=(RUN_ID,),
          responses={200: ("Usage records", "UsageList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/tool-calls", h_tool_calls, "listRunToolCalls", "List a run's tool calls",
          _RUN, "Recorded with ctx.record_tool_call(...).", params=(RUN_ID,),
          responses={200: ("Tool calls", "ToolCallList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/outputs", h_outputs, "listRunOutputs", "List a run's structured outputs",
          _RUN, "Recorded with ctx.output(key, value, schema); the latest per key.", params=(RUN_ID,),
          responses={200: ("Outputs", "OutputList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/debug-bundle", h_debug_bundle, "getRunDebugBundle", "Get a debug bundle",
          _RUN, "The run (native) with its events, checkpoints, usage, tool calls, outputs, steps and children.",
          params=(RUN_ID,), responses={200: ("Everything about the run", "DebugBundle")}, errors=_NF),
    Route("POST", "/v1/runs/{run_id}/debug", h_debug, "setRunDebugMode", "Turn debug mode on or off", _RUN,
          "A flag on the run, recorded on its timeline; handlers read it with await ctx.debug_enabled().",
          params=(RUN_ID, VIEW), body="DebugModeRequest", body_required=True,
          responses={200: ("Done", "RunAction")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/lineage", h_lineage, "listRunLineage", "List a run's continuation lineage",
          _RUN, "The chain of continue_as_new runs this run belongs to, first to last (at most 100).",
          params=(RUN_ID, VIEW), responses={200: ("Runs of the chain", "RunList")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/dependency-status", h_dependency_status, "getRunDependencyStatus",
          "What a run waits for", _RUN, "Baton runs depend only on their children and durable waits: see the "
          "DependencyStatus schema.", params=(RUN_ID,),
          responses={200: ("Dependency status", "DependencyStatus")}, errors=_NF),
    Route("DELETE", "/v1/runs/{run_id}/idempotency-key", h_idem_reset, "resetRunIdempotencyKey",
          "Reset a run's idempotency key", _RUN, "The next trigger with the same job and key creates a new run.",
          params=(RUN_ID,), responses={200: ("Whether a key was reset", "IdempotencyReset")}, errors=_NF),
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
          params=(RUN_ID, VIEW), body="RestartRequest", responses={201: ("The new run", "Run")}, errors=_NF),
    Route("GET", "/v1/runs/{run_id}/state", h_state, "getRunState", "Get a run's execution state", _RUN,
          params=(RUN_ID,), responses={200: ("State", "RunState")}, errors=_NF),
    Route("GET", "/v1/jobs", h_jobs, "listJobs", "List jobs with their options", "Jobs",
          "Jobs registered by running workers (and by this process); jobs belong to the deployment, so every "
          "project sees the same list.", responses={200: ("Jobs", "JobList")}),
    Route("POST", "/v1/jobs/{job}/trigger", h_trigger, "triggerJob", "Trigger a run of a job", "Jobs",
          "201 when a run was created; 200 with outcome idempotent/existing/debounced when an existing run answers.",
          params=(Param("job", {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"}, "Job name",
                        location="path", required=True), VIEW),
          body="TriggerRequest", responses={201: ("Created", "TriggerResponse"), 200: ("Existing run",
                                                                                        "TriggerResponse")},
          errors=(404, 409)),
    Route("POST", "/v1/events", h_send_event, "sendEvent", "Send an event", "Events",
          "Wakes the caller's project's runs waiting in ctx.wait_for_event(key), and is kept event_ttl_s for "
          "waits that start later.", body="SendEventRequest", body_required=True,
          responses={200: ("How many runs woke", "SendEventResponse")}),
    Route("GET", "/health", h_health, "health", "Liveness", "Operations", auth=False,
          responses={200: ("The process serves requests", "Health")}),
    Route("GET", "/ready", h_ready, "ready", "Readiness", "Operations",
          "Ready when Redis answers and the node is not draining.", auth=False,
          responses={200: ("Ready", "Ready"), 503: ("Not ready", "Ready")}),
    Route("GET", "/metrics", h_metrics, "metrics", "Prometheus metrics", "Operations", auth=False,
          responses={200: ("Prometheus text exposition", None)}, media_type="text/plain"),
    Route("GET", "/openapi.json", h_openapi, "openapi", "This OpenAPI document", "Operations", auth=False,
          responses={200: ("OpenAPI 3.1", None)}),
)
