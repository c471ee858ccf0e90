"""Handlers of Hatchet's REST API for runs (the paths hatchet-sdk's runs client calls): trigger and get a
workflow run, its status or a task, list runs, cancel and replay them, answering the SDK's models
(runtime/api/hatchet_public.py).

Hatchet pages by offset; Baton's listings by cursor. A list walks the listing from its newest run,
counting the runs that match, so a page far down costs the runs before it; the walk is bounded
(api_scan_limit x 10 index entries), past which the request answers 400 rather than a short page that
would shift every later offset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp import web

from ..errors import RunAlreadyFinished, RunNotFinished, RunNotFound
from ..records import TERMINAL_STATUSES, Run
from .errors import ApiError
from .handlers_jobs import trigger_one
from .hatchet_public import HATCHET_STATUSES, details, metadata_matches, natives_for, task_summary, tenant_of
from .listing import RunFilter, RunIndex, list_runs, parse_ms
from .routing import Req, json_response
from .run_helpers import CANCELABLE, keep_hatchet_aliases, load_run, reload_run
from .views import hatchet_run_id, hatchet_uuid, status_hatchet, user_idempotency_key

__all__ = ["ACT_LIMIT", "IDS_LIMIT", "PAGE_SIZE", "h_hapi_cancel", "h_hapi_external_ids", "h_hapi_get",
           "h_hapi_list", "h_hapi_replay", "h_hapi_status", "h_hapi_task", "h_hapi_trigger"]

#: the page size when the SDK gives no limit
PAGE_SIZE = 50
#: the most runs one cancel or replay by filter acts on: more answers 400 (a bulk action takes any number)
ACT_LIMIT = 1000
#: the most run ids one external-ids list answers: more answers 400 (narrow since and until)
IDS_LIMIT = 10_000
#: runs read per step of a walk through a listing
_STEP = 200


def _check_tenant(req: Req) -> None:
    """The {tenant} of the path must be the key's project's: another tenant's runs are not the key's."""
    own = tenant_of(req.project)
    if req.params["tenant"] != own:
        raise ApiError(403, "wrong_project", f"tenant {req.params['tenant']} is not this API key's (its project "
                       f"{req.project} is tenant {own})")


async def _children(req: Req, runs: list[Run]) -> list[int]:
    """How many children each run spawned (one round trip)."""
    pipe = req.baton.redis.pipeline(transaction=False)
    for run in runs:
        pipe.scard(req.baton.keys.partition_of_run(run.id).children(run.id))
    return [int(n) for n in await pipe.execute()] if runs else []


async def _shown(req: Req, run_id: str) -> Run:
    """The run the SDK names, with the aliases of the ids its answer shows stored."""
    run = await load_run(req, run_id)
    await keep_hatchet_aliases(req, [run])
    return run


async def _run_details(req: Req, run_id: str) -> web.StreamResponse:
    """The run as runs.get answers it (V1WorkflowRunDetails)."""
    run = await _shown(req, run_id)
    [children] = await _children(req, [run])
    return json_response(details(run, await req.baton.get_events(run.id, count=10_000), children))


async def h_hapi_get(req: Req) -> web.StreamResponse:
    return await _run_details(req, req.params["run_id"])


async def h_hapi_trigger(req: Req) -> web.StreamResponse:
    """runs.create: a run of the job named as the workflow, answered as runs.get answers it."""
    _check_tenant(req)
    body = req.body
    item: dict[str, Any] = {"input": body["input"]}
    if body.get("additionalMetadata"):
        item["metadata"] = body["additionalMetadata"]
    if body.get("priority") is not None:
        item["priority"] = body["priority"]  # (1 to 3: higher first, as Baton's)
    run_id, _code = await trigger_one(req, body["workflowName"], item)
    return await _run_details(req, run_id)


async def h_hapi_status(req: Req) -> web.StreamResponse:
    run = await load_run(req, req.params["run_id"])
    return json_response(status_hatchet(run.status))


async def h_hapi_task(req: Req) -> web.StreamResponse:
    run = await _shown(req, req.params["run_id"])
    [children] = await _children(req, [run])
    return json_response(task_summary(run, children))


def _pairs(values: list[str] | None) -> list[tuple[str, str]]:
    """additional_metadata's ``key:value`` items as pairs."""
    return [(key, value) for key, _, value in (v.partition(":") for v in values or [])]


@dataclass(frozen=True)
class _Selection:
    """What a list or a cancel or replay filter selects, in Hatchet's terms."""

    since: str | None = None
    until: str | None = None
    statuses: frozenset[str] = frozenset(HATCHET_STATUSES)
    running: str = "ALL"
    workflows: frozenset[str] = frozenset()
    pairs: tuple[tuple[str, str], ...] = ()
    every: bool = False  #: every pair must match (additional_metadata_operator AND), else any
    parent: str | None = None  #: parent_task_external_id
    keys: frozenset[str] = frozenset()  #: idempotency keys
    code: str = "invalid_parameter"  #: the error code of a bad value (a body's: invalid_body)

    @classmethod
    def of_query(cls, p: dict[str, Any]) -> _Selection:
        """The list's query parameters."""
        return cls(since=p.get("since"), until=p.get("until"),
                   statuses=frozenset(p.get("statuses") or HATCHET_STATUSES), running=p.get("running_filter", "ALL"),
                   workflows=frozenset(p.get("workflow_ids") or ()), pairs=tuple(_pairs(p.get("additional_metadata"))),
                   every=p.get("additional_metadata_operator") == "AND", parent=p.get("parent_task_external_id"),
                   keys=frozenset(p.get("idempotency_keys") or ()))

    @classmethod
    def of_body(cls, f: dict[str, Any]) -> _Selection:
        """A cancel or replay body's V1TaskFilter (its names are camelCase; its pairs match any)."""
        return cls(since=f.get("since"), until=f.get("until"),
                   statuses=frozenset(f.get("statuses") or HATCHET_STATUSES),
                   workflows=frozenset(f.get("workflowIds") or ()), pairs=tuple(_pairs(f.get("additionalMetadata"))),
                   code="invalid_body")

    async def resolve(self, req: Req, allowed: frozenset[str] | None = None) -> tuple[RunFilter, Callable[[Run], bool]]:
        """The listing's filter, and what each run it finds must pass besides (what the listing cannot
        say: workflow ids, metadata pairs, parent, idempotency keys); statuses narrowed to ``allowed``."""
        statuses = natives_for(self.statuses, self.running)
        parent_id: str | None = None
        if self.parent is not None:
            try:
                parent_id = (await load_run(req, self.parent)).id
            except ApiError as exc:
                if exc.status != 404:
                    raise
                statuses = frozenset()  # no such run of the project: it has no children to list
        fltr = RunFilter(project=req.project, statuses=statuses if allowed is None else statuses & allowed,
                         created_after_ms=None if self.since is None else parse_ms(self.since, "since", self.code),
                         created_before_ms=None if self.until is None else parse_ms(self.until, "until", self.code))

        def keep(run: Run) -> bool:
            if self.workflows and hatchet_uuid("job", run.job) not in self.workflows:
                return False
            if self.pairs and not metadata_matches(run, list(self.pairs), self.every):
                return False
            if parent_id is not None and run.parent_id != parent_id:
                return False
            return not self.keys or user_idempotency_key(run) in self.keys

        return fltr, keep


class Walked(NamedTuple):
    """What ``_walk`` found."""

    runs: list[Run]  #: the runs taken, newest first
    more: bool  #: whether more runs pass after them
    skipped: int  #: the runs skipped before them: fewer than asked when the listing ended first


async def _walk(req: Req, fltr: RunFilter, keep: Callable[[Run], bool], skip: int, take: int,
                partial: bool = True) -> Walked:
    """Up to ``take`` runs of the project's listing that pass ``keep``, after the first ``skip`` of them,
    newest first, and whether more follow."""
    asked = skip
    if not fltr.statuses:
        return Walked([], False, 0)
    out: list[Run] = []
    cursor: str | None = None
    budget = req.state.settings.api_scan_limit * 10
    while True:
        page = await list_runs(req.baton, RunIndex.of_project(req.project), fltr, _STEP, cursor,
                               min(req.state.settings.api_scan_limit, budget),
                               req.partial_read() if partial else None)
        budget -= page.scanned
        for run in page.runs:
            if not keep(run):
                continue
            if skip:
                skip -= 1
            elif len(out) == take:
                return Walked(out, True, asked)
            else:
                out.append(run)
        if page.next_cursor is None:
            return Walked(out, False, asked - skip)
        if budget <= 0:
            raise ApiError(400, "too_broad", f"this selection examined {req.state.settings.api_scan_limit * 10} "
                           "runs without reaching its end: narrow it (since, until, statuses)")
        cursor = page.next_cursor


async def h_hapi_list(req: Req) -> web.StreamResponse:
    _check_tenant(req)
    p = req.params
    fltr, keep = await _Selection.of_query(p).resolve(req)
    offset, limit = p.get("offset", 0), p.get("limit", PAGE_SIZE)
    runs, more, skipped = await _walk(req, fltr, keep, offset, limit)
    await keep_hatchet_aliases(req, runs)
    payloads = p.get("include_payloads", True)
    rows = [task_summary(r, n, payloads) for r, n in zip(runs, await _children(req, runs), strict=True)]
    current = offset // limit + 1
    pagination: dict[str, int] = {"current_page": current}
    if more:
        pagination["next_page"] = current + 1
    if not p.get("include_num_pages", True):
        pagination["num_pages"] = 0  # as Hatchet: not counted
    elif not more:
        # known once the listing's end is reached (also past it: the runs skipped are all there
        # were); before it, counting would walk every matching run
        pagination["num_pages"] = max(-(-(skipped + len(rows)) // limit), 1)
    return json_response({"rows": rows, "pagination": pagination})


async def h_hapi_external_ids(req: Req) -> web.StreamResponse:
    _check_tenant(req)
    fltr, keep = await _Selection.of_query(req.params).resolve(req)
    runs, more, _ = await _walk(req, fltr, keep, 0, IDS_LIMIT)
    if more:
        raise ApiError(400, "too_many_runs", f"more than {IDS_LIMIT} runs match: narrow since and until")
    await keep_hatchet_aliases(req, runs)
    return json_response([hatchet_run_id(r) for r in runs])


async def _targets(req: Req, allowed: frozenset[str]) -> list[Run]:
    """The runs a cancel or replay names: by externalIds (those of the project; unknown ones are not
    acted on, as Hatchet), or by filter (at most ACT_LIMIT, else 400 before acting on any)."""
    body = req.body
    ids, given = body.get("externalIds"), body.get("filter")
    if (ids is None) == (given is None):
        raise ApiError(400, "invalid_body", "give externalIds or filter (one of them)")
    if ids is not None:
        found = []
        for run_id in dict.fromkeys(ids):
            try:
                found.append(await load_run(req, run_id))
            except ApiError as exc:
                if exc.status != 404:
                    raise
        return found
    fltr, keep = await _Selection.of_body(given).resolve(req, allowed)
    runs, more, _ = await _walk(req, fltr, keep, 0, ACT_LIMIT, partial=False)
    if more:
        raise ApiError(400, "too_many_runs", f"the filter selects more than {ACT_LIMIT} runs: narrow it, or use a "
                       "bulk action (POST /v1/bulk-actions), which takes any number")
    return runs


async def h_hapi_cancel(req: Req) -> web.StreamResponse:
    _check_tenant(req)
    canceled = []
    for run in await _targets(req, CANCELABLE):
        try:
            await req.baton.cancel(run.id)
        except (RunAlreadyFinished, RunNotFound):
            continue  # a finished run is left as it is (one gone meanwhile too), and is not among the canceled
        canceled.append(hatchet_run_id(run))
    return json_response({"ids": canceled})


async def h_hapi_replay(req: Req) -> web.StreamResponse:
    _check_tenant(req)
    new_runs = []
    for run in await _targets(req, frozenset(TERMINAL_STATUSES)):
        try:
            new_runs.append(await reload_run(req, await req.baton.replay(run.id)))
        except (RunNotFinished, RunNotFound):
            continue  # a live run is not replayed (Baton replays a finished run as a new one), nor one gone
    await keep_hatchet_aliases(req, new_runs)
    return json_response({"ids": [hatchet_run_id(r) for r in new_runs]})

