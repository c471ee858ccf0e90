"""What the API's handlers share: loading a run in the caller's project, rendering it, its records,
and the parameters many endpoints take.

Every run endpoint looks the run up in the caller's project only: a run of
another project answers 404 exactly like a run that does not exist.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..ids import RUN_ID_RE
from ..records import LIVE_STATUSES, Run, iso, read_runs, stored_int, stored_json, text
from ..relatives import MAX_CHILDREN, MAX_LINEAGE, project_of
from .errors import ApiError
from .listing import RunFilter, filter_from, parse_ms
from .routing import Param, Req, json_response
from .schemas import VIEW_NAMES
from .views import NATIVE_STATUSES, event_view, render

__all__ = [
    "CANCELABLE", "CURSOR", "FILTERS", "LAST_EVENT", "LIMIT", "MAX_CHILDREN", "MAX_LINEAGE", "RUN_ID", "VIEW",
    "action", "children_ids", "filter_from", "foreign_scope", "load_run", "load_runs", "parse_ms", "project_of",
    "reload_run", "render_run", "run_events", "run_filter", "run_outputs", "run_records", "run_steps", "scoped_id",
    "scoped_key", "view_of",
]

#: live statuses that "cancel all matching" considers
CANCELABLE = frozenset(LIVE_STATUSES)


# -- helpers --------------------------------------------------------------------


def scoped_id(project: str, run_id: str) -> str:
    """Where a caller-chosen run id lives: as given in project default (shared with the Python client
    and stream producers), ``<project>:<id>`` in any other. Project names have no ":", so two projects'
    ids never meet: a trigger cannot take, or reveal by a conflict, a run of another project (the
    namespace a workflow id has in Temporal)."""
    return run_id if project == "default" else f"{project}:{run_id}"


def foreign_scope(req: Req, run_id: str) -> bool:
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
            if run is not None and project_of(run) == req.project:
                return run
    raise ApiError(404, "not_found", f"run {run_id} not found")


async def load_runs(req: Req, ids: list[str]) -> list[Run]:
    """Runs of the caller's project among ids, in order (missing ones skipped)."""
    if not ids:
        return []
    out = []
    for run in await read_runs(req.baton.redis, req.baton.keys, ids):
        if run is not None and project_of(run) == req.project:
            out.append(run)
    return out


def render_run(req: Req, run: Run, children: list[Run] | None = None) -> dict[str, Any]:
    s = req.state.settings
    return render(run, req.view, children=children, finished_ttl_ms=s.finished_ttl_s * 1000,
                  failed_ttl_ms=s.dead_letter_ttl_s * 1000)


async def children_ids(req: Req, run: Run) -> list[str]:
    p = req.baton.keys.partition_of_run(run.id)
    members = await req.baton.redis.smembers(p.children(run.id))
    return sorted(text(m) for m in members)


async def view_of(req: Req, run: Run) -> dict[str, Any]:
    children = None
    if req.view == "trigger":
        children = await load_runs(req, (await children_ids(req, run))[:MAX_CHILDREN])
    return render_run(req, run, children)


def scoped_key(project: str, key: str) -> str:
    """Idempotency and event keys of a project other than "default" are stored scoped to it."""
    return key if project == "default" else f"{project}/{key}"


async def run_records(req: Req, run: Run, kind: str) -> list[dict[str, Any]]:
    p = req.baton.keys.partition_of_run(run.id)
    rows = await req.baton.redis.xrange(p.records(run.id))
    out = []
    for _eid, raw in rows:
        f = {text(k): text(v) for k, v in raw.items()}
        data = stored_json(f.get("data")) if f.get("type") == kind else None
        if isinstance(data, dict):  # a record that is not an object (corruption) is left out
            out.append(data)
    return out


async def run_outputs(req: Req, run: Run) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in await run_records(req, run, "output"):
        key = record.get("output_key")
        if isinstance(key, str):
            latest.pop(key, None)
            latest[key] = record
    return list(latest.values())


async def run_events(req: Req, run: Run) -> list[dict[str, Any]]:
    return [event_view(run.id, e) for e in await req.baton.get_events(run.id, count=10_000)]


async def run_steps(req: Req, run: Run) -> list[dict[str, Any]]:
    steps = await req.baton.get_steps(run.id)
    out = []
    for st in steps:
        out.append({"name": st.get("name"), "index": st.get("index"), "status": st.get("status"),
                    "output": st.get("output"), "error": st.get("error"),
                    "started_at": iso(stored_int(st.get("started_at"))),
                    "completed_at": iso(stored_int(st.get("completed_at")))})
    return out


def action(req: Req, run: Run, result: str) -> web.Response:
    return json_response({"id": run.id, "result": result, "run": render_run(req, run)})


async def reload_run(req: Req, run: Run | str) -> Run:
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


def run_filter(req: Req, values: dict[str, Any]) -> RunFilter:
    """The listing filter of the caller's project from query parameters or a JSON body."""
    return filter_from(req.project, values)
