"""Handlers of the job endpoints: the job list, triggers and events."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from aiohttp import web

from ..admission import rejection
from ..codec import text
from ..errors import RedisUnavailable, SubmissionError
from ..ids import RUN_ID_RE
from ..keys import Partition
from ..partition_outages import read_partitions
from ..submission import RunSpec
from .errors import ApiError
from .routing import Req, json_response
from .run_helpers import foreign_scope, load_run, load_runs, project_of, render_runs, scoped_id, scoped_key

__all__ = [
    "h_jobs", "h_send_event", "h_trigger", "h_trigger_batch", "new_batch_id", "spec_of", "trigger_one",
]

# -- jobs, triggers, events -----------------------------------------------------


async def h_jobs(req: Req) -> web.StreamResponse:
    await req.baton.refresh_registry()
    registered = {text(name) for name in await req.baton.redis.hkeys(req.baton.keys.registry)}
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
        if foreign_scope(req, chosen):
            raise ApiError(400, "invalid_body", f"id: {chosen.partition(':')[0]}: is the id namespace of a project")
        item["id"] = scoped_id(req.project, chosen)
        if not RUN_ID_RE.match(item["id"]):
            raise ApiError(400, "invalid_body", f"id: at most {128 - len(item['id']) + len(chosen)} characters "
                           f"in project {req.project}")
    if item.get("idempotency_key"):
        item["idempotency_key"] = scoped_key(req.project, str(item["idempotency_key"]))
    if isinstance(item.get("debounce"), dict) and item["debounce"].get("key"):
        # like idempotency keys, debounce keys never coalesce runs of two projects
        item["debounce"] = {**item["debounce"], "key": scoped_key(req.project, str(item["debounce"]["key"]))}
    extra: dict[str, Any] = {"project": req.project, "triggered_by": body.get("triggered_by") or "api"}
    if batch_id:
        extra["batch_id"] = batch_id
    return item, extra


async def _parents(req: Req, item: dict[str, Any]) -> None:
    """Resolve ``depends_on`` to the parents' stored ids, in the caller's project only: a parent
    another project owns is as unknown as a missing one (404 unknown_parent)."""
    parents = item.get("depends_on")
    if not isinstance(parents, list):
        return
    resolved: list[Any] = []
    for parent in parents:
        given = parent.get("id") if isinstance(parent, dict) else parent
        if not isinstance(given, str):
            resolved.append(parent)  # build_spec names what is wrong with it
            continue
        try:
            run = await load_run(req, given)
        except ApiError:
            raise ApiError(404, "unknown_parent", f"depends_on names run {given!r}, which does not exist") from None
        resolved.append({**parent, "id": run.id, "name": parent.get("name", given)} if isinstance(parent, dict)
                        else {"id": run.id, "name": given})
    item["depends_on"] = resolved


_OUTCOMES = {1: "created", 0: "existing", 2: "idempotent", 3: "debounced"}


async def spec_of(req: Req, job: str, body: dict[str, Any], batch_id: str | None = None) -> RunSpec:
    """The run of ``job`` a trigger body in Baton's terms asks for, in the caller's project (of batch
    ``batch_id`` if given); SubmissionError or ApiError says what is wrong with it."""
    item, extra = _item(req, job, body, batch_id)
    await _parents(req, item)
    return await req.baton._spec(item, source="api", extra=extra)


async def trigger_one(req: Req, job: str, body: dict[str, Any]) -> tuple[str, int]:
    """Create one run of ``job`` in the caller's project from a trigger body in Baton's terms; its id and
    runs_create's code (1 created, 2 an idempotency key's run ...)."""
    spec = await spec_of(req, job, body)
    # (a run on a partition whose master the API knows is down: a 503 at once, see Req.in_partition)
    partition = req.baton.keys.partition_of_run(spec.id)
    [(run_id, code)] = await req.in_partition(partition, lambda: req.baton.create_detailed([spec]))
    return run_id, code


async def h_trigger(req: Req) -> web.StreamResponse:
    run_id, code = await trigger_one(req, req.params["job"], req.body or {})
    run = await req.baton.get_run(run_id)
    if run is None or project_of(run) != req.project:
        # only an id made outside the API (a generated or stream producer's id) can meet here: say no more
        # than that this id cannot be used
        raise ApiError(409, "exists", "this run id cannot be used; choose another")
    return json_response({"id": run_id, "created": code == 1, "outcome": _OUTCOMES.get(code, "created"),
                          "run": (await render_runs(req, [run]))[0]}, status=201 if code == 1 else 200)


def new_batch_id() -> str:
    """A new batch's id (a batch trigger's runs carry it as their batch_id)."""
    return "batch_" + secrets.token_hex(10)


async def h_trigger_batch(req: Req) -> web.StreamResponse:
    batch_id = new_batch_id()
    specs = []
    for i, body in enumerate(req.body["runs"]):
        try:
            specs.append(await spec_of(req, body["job"], body, batch_id))
        except SubmissionError as exc:
            raise ApiError(404 if exc.reason == "unknown_job" else 400, exc.reason, f"runs[{i}]: {exc}") from None
        except ApiError as exc:
            raise ApiError(exc.status, exc.code, f"runs[{i}]: {exc.message}") from None
    created = await req.baton.create_detailed(specs, raise_rejected=False)
    runs = {r.id: r for r in await load_runs(req, [run_id for run_id, _ in created])}
    out: list[dict[str, Any]] = []
    for spec, (run_id, code) in zip(specs, created, strict=True):
        if code < 0 and (refused := rejection(code, run_id)):
            # refused inside the one script call (max_queued, a parent gone meanwhile); the others stand
            out.append({"id": spec.id, "created": False, "outcome": refused.reason, "error": str(refused)})
        elif run_id in runs:
            out.append({"id": run_id, "created": code == 1, "outcome": _OUTCOMES.get(code, "created")})
        else:
            out.append({"id": run_id, "created": False, "outcome": "conflict"})
    return json_response({"batch_id": batch_id, "runs": out}, status=201)


async def h_send_event(req: Req) -> web.StreamResponse:
    key = str(req.body["key"])
    baton = req.baton
    stored_key = scoped_key(req.project, key)
    data_json = baton.event_json(stored_key, req.body.get("data"))
    ttl_ms = baton.settings.event_ttl_s * 1000
    woken = 0

    async def send(p: Partition) -> None:
        nonlocal woken
        woken += await baton.scripts.send_event_in(p, stored_key, data_json, ttl_ms)

    # every partition that answers gets the event; one whose master does not (Redis Cluster) is
    # skipped at once while the API knows it is out, and the caller is asked to send it again (a
    # second send wakes nobody twice)
    read = req.partial_read()
    await read_partitions(baton.keys.partitions, send, read)
    if read.unanswered:
        lost = ",".join(str(index) for index in sorted(read.unanswered))
        raise RedisUnavailable(f"the event reached every partition but {lost}, whose master does not answer; "
                               "send it again")
    return json_response({"key": key, "woken": woken})
