"""What the API's handlers share: loading a run in the caller's project, rendering it, its records,
and the parameters many endpoints take.

Every run endpoint looks the run up in the caller's project only: a run of
another project answers 404 exactly like a run that does not exist.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from aiohttp import web

from ..ids import RUN_ID_RE, run_id_from_uuid
from ..records import LIVE_STATUSES, Run, iso, read_runs, stored_int, stored_json, text
from ..relatives import MAX_CHILDREN, MAX_LINEAGE, project_of
from .errors import ApiError
from .listing import RunFilter, filter_from, parse_ms, scoped_key
from .routing import Param, Req, json_response
from .schemas import VIEW_NAMES
from .views import (
    STATUS_WORDS,
    TRIGGER_PREFIX,
    durably_step,
    event_view,
    hatchet_ids,
    render,
)

__all__ = [
    "CANCELABLE", "CURSOR", "FILTERS", "LAST_EVENT", "LIMIT", "MAX_CHILDREN", "MAX_LINEAGE", "PROJECT_ID", "RUN_ID",
    "VIEW", "action", "children_ids", "created", "filter_from", "foreign_scope", "keep_hatchet_aliases", "load_run",
    "load_runs", "parse_ms", "project_of", "reload_run", "render_run", "render_runs", "run_events", "run_filter",
    "run_outputs", "run_records", "run_steps", "scoped_id", "scoped_key", "view_of",
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
    A caller-chosen id is found by its short form too (see scoped_id), and every id a view emits by it:
    a trigger-view id (run_ prefix), a hatchet-view UUID (a generated id's bits, or an alias)."""
    keys = req.baton.keys
    candidates = [run_id, run_id.removeprefix(TRIGGER_PREFIX)]
    if req.view == "trigger":
        # the view shows every run as run_ + its id: a run whose own id starts with run_ reads run_run_...,
        # so an id of this view means the run it names without the prefix before a run of that whole name
        candidates.reverse()
    if (generated := run_id_from_uuid(run_id)) is not None:
        partition = keys.partition_of_run(run_id)
        alias = await req.in_partition(partition, lambda: req.baton.redis.get(partition.uuid_alias(run_id)))
        candidates += [generated] if alias is None else [generated, text(alias)]
    for candidate in dict.fromkeys(candidates):
        for stored in dict.fromkeys((scoped_id(req.project, candidate), candidate)):
            if not RUN_ID_RE.match(stored):
                continue
            run = await req.in_partition(keys.partition_of_run(stored), functools.partial(req.baton.get_run, stored))
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


def render_run(req: Req, run: Run, children: list[Run] | None = None,
               relatives: dict[str, Run] | None = None) -> dict[str, Any]:
    """One run in the request's view, from what was loaded for it (see render_runs)."""
    s = req.state.settings
    return render(run, req.view, children=children, relatives=relatives, finished_ttl_ms=s.finished_ttl_s * 1000,
                  failed_ttl_ms=s.dead_letter_ttl_s * 1000)


async def render_runs(req: Req, runs: list[Run], children: list[Run] | None = None) -> list[dict[str, Any]]:
    """Runs in the request's view, with what that view needs beyond each run: the trigger view
    summarises each run's root and parent (read in one round trip); the hatchet view leaves an alias
    for every UUID it derives, so that the API accepts each id it emits."""
    relatives: dict[str, Run] = {}
    if req.view == "trigger":
        wanted = list(dict.fromkeys(i for r in runs for i in (r.root_id, r.parent_id) if i))
        relatives = {r.id: r for r in await load_runs(req, wanted)}
    elif req.view == "hatchet":
        await keep_hatchet_aliases(req, runs)
    return [render_run(req, r, children, relatives) for r in runs]


async def keep_hatchet_aliases(req: Req, runs: list[Run]) -> None:
    """Store an alias for every UUID the hatchet view of ``runs`` derives (caller-chosen ids), so that
    the API accepts back each id it emits, for as long as finished runs are kept."""
    aliases = {k: v for r in runs for k, v in hatchet_ids(r).items()}
    if aliases:
        ttl = req.state.settings.runs_kept_s
        pipe = req.baton.redis.pipeline(transaction=False)
        for derived, run_id in aliases.items():
            pipe.set(req.baton.keys.partition_of_run(derived).uuid_alias(derived), run_id, ex=ttl)
        await pipe.execute()


async def children_ids(req: Req, run: Run) -> list[str]:
    p = req.baton.keys.partition_of_run(run.id)
    members = await req.baton.redis.smembers(p.children(run.id))
    return sorted(text(m) for m in members)


async def view_of(req: Req, run: Run) -> dict[str, Any]:
    """One run in the request's view; the trigger view lists its children too."""
    children = None
    if req.view == "trigger":
        children = await load_runs(req, (await children_ids(req, run))[:MAX_CHILDREN])
    [out] = await render_runs(req, [run], children)
    return out


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


async def run_steps(req: Req, run: Run, view: str = "native") -> list[dict[str, Any]]:
    """The run's step records: Baton's (with index and steps still in a durable wait), or in the durably
    view exactly durably's StepRecords (finished steps only)."""
    steps = await req.baton.get_steps(run.id)
    if view == "durably":
        return [record for record in map(durably_step, steps) if record is not None]
    out = []
    for st in steps:
        out.append({"name": st.get("name"), "index": st.get("index"), "status": st.get("status"),
                    "output": st.get("output"), "error": st.get("error"),
                    "started_at": iso(stored_int(st.get("started_at"))),
                    "completed_at": iso(stored_int(st.get("completed_at")))})
    return out


async def action(req: Req, run: Run, result: str, strait_empty: bool = False) -> web.Response:
    """What an action on a run answers: ``{id, result, run}`` (the id as the run's view shows it: a trigger
    view's run_ id, a hatchet view's UUID); in the strait view what Strait answers, the run itself (pause,
    resume, reschedule) or an empty body (cancel, debug mode)."""
    [shown] = await render_runs(req, [run])
    if req.view != "strait":
        shown_id = shown["id"] if "id" in shown else shown["metadata"]["id"]  # (hatchet's is in its metadata)
        return json_response({"id": shown_id, "result": result, "run": shown})
    if strait_empty:
        return web.Response(status=204)
    return json_response(shown)


async def created(req: Req, run: Run) -> web.Response:
    """A run an action started (replay, restart): 201 with the run; 200 in the strait view, as Strait."""
    [shown] = await render_runs(req, [run])
    return json_response(shown, status=200 if req.view == "strait" else 201)


async def reload_run(req: Req, run: Run | str) -> Run:
    run_id = run if isinstance(run, str) else run.id
    fresh = await req.baton.get_run(run_id)
    if fresh is None:
        raise ApiError(404, "not_found", f"run {run_id} not found")
    return fresh


# -- parameters -----------------------------------------------------------------

RUN_ID = Param("run_id", {"type": "string", "minLength": 1, "maxLength": 132}, "The run's id (a trigger-view "
               "id with its run_ prefix is accepted too)", location="path", required=True)
#: GET /v1/runs?run_id=: one run as a page (a search that may name no run answers 200 either way)
RUN_ID_FILTER = Param("run_id", {"type": "string", "minLength": 1, "maxLength": 132},
                      "One run, by any id GET /v1/runs/{run_id} takes: a page of it, or an empty page when the "
                      "project has no such run; no other filter or cursor goes with it")
VIEW = Param("view", {"type": "string", "enum": VIEW_NAMES}, "Shape of each run: Baton's native one or a seed "
             "system's (the X-Baton-View header works too; the query parameter wins)", renders=True)
#: the view of an endpoint that takes a run id but answers no run: accepted (a client of a seed system sends
#: its view on every call), naming which system's ids the path's run id may be in; the answer is the same
ID_VIEW = dataclasses.replace(VIEW, renders=False, description="The view the client uses (the run id may be one it "
                              "showed); the answer is the same in every view")
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}, "Page size (at most 100)")
CURSOR = Param("cursor", {"type": "string", "minLength": 1, "maxLength": 200},
               "next_cursor of the previous page")
PROJECT_ID = Param("project_id", {"type": "string", "minLength": 1, "maxLength": 64},
                   "The key's project (Strait clients send it); another project's answers 403")
LAST_EVENT = Param("last_event_id", {"type": "string", "pattern": r"^\d{1,20}-\d{1,20}$"},
                   "Resume after this event id (like the Last-Event-ID header)")
FILTERS = (
    # (at least one: an empty status= would list every run, as if no filter had been given)
    Param("status", {"type": "array", "items": {"type": "string", "enum": list(STATUS_WORDS)}, "minItems": 1,
                     "maxItems": 10},
          "Comma-separated statuses: native ones, or in the strait view Strait's (waiting includes paused "
          "runs; dequeued, timed_out, crashed and system_failed select none: Baton runs never show them), "
          "in the durably view durably's too (pending, leased, completed, failed, cancelled, as runs show them)"),
    Param("job", {"type": "string", "minLength": 1, "maxLength": 100}, "Job name"),
    Param("queue", {"type": "string", "minLength": 1, "maxLength": 100}, "Queue name"),
    Param("tag", {"type": "string", "minLength": 1, "maxLength": 128}, "Runs carrying this tag"),
    Param("label", {"type": "string", "pattern": "^[^=]+=.*$", "maxLength": 256}, "name=value of a label"),
    Param("metadata_key", {"type": "string", "minLength": 1, "maxLength": 256}, "Runs whose metadata has this key"),
    Param("metadata_value", {"type": "string", "maxLength": 512},
          "... with this value (JSON text for non-string values); needs metadata_key"),
    Param("batch_id", {"type": "string", "minLength": 1, "maxLength": 128}, "Runs of one batch trigger"),
    Param("idempotency_key", {"type": "string", "minLength": 1, "maxLength": 128},
          "Runs created with this idempotency key (as the trigger gave it)"),
    Param("triggered_by", {"type": "string", "minLength": 1, "maxLength": 64},
          "api, manual, spawn (child runs), continue, replay, restart, client, stream, cron ...; in the strait "
          "view Strait's words (manual, cron, spawn, workflow, retry, event) as the view shows them"),
    Param("created_after", {"type": "string", "format": "date-time"}, "Created at or after (ISO-8601)"),
    Param("created_before", {"type": "string", "format": "date-time"}, "Created at or before (ISO-8601)"),
    Param("payload_contains", {"type": "string", "minLength": 2, "maxLength": 2048},
          "JSON object the run's input must contain (like jsonb @>)"),
)


def run_filter(req: Req, values: dict[str, Any]) -> RunFilter:
    """The listing filter of the caller's project from query parameters or a JSON body, in the
    vocabulary of the caller's view."""
    return filter_from(req.project, values, req.view)
