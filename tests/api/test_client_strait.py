"""A Strait client, unchanged, against a node whose default view is strait (api_view=strait): seed 003's
endpoints with seed 003's parameters, every answer checked against seed 003's objects exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from runtime.api.listing import parse_ms
from runtime.api.views import status_strait
from runtime.records import iso
from tests.api.conftest import ApiNode, serving
from tests.api.seeds import (
    FORMATS,
    NATIVE,
    STRAIT_OBJECTS,
    STRAIT_RUN,
    STRAIT_RUN_NULLABLE,
    STRAIT_STATUSES,
    check_strait_run,
    like_example,
    release,
    runs_in_every_status,
)

P = {"project_id": "alpha"}
#: seed 003's record objects that may hold null: an error a bulk item does not have, a tool call's duration
#: when none was measured
BULK_NULLABLE = frozenset({"results[].error"})
TOOL_NULLABLE = frozenset({"duration_ms"})


@pytest.fixture
async def strait(make_app: Any, api_keys: dict[str, str]) -> AsyncIterator[ApiNode]:
    """A node configured for Strait clients: runs render in the strait view unless a request says otherwise."""
    async with serving(make_app, api_keys, api_view="strait") as node:
        yield node


async def _get(api: ApiNode, path: str, **params: Any) -> Any:
    status, body = await api.call("GET", path, params=params or None)
    assert status == 200, (path, status, body)
    return body


async def _list_all(api: ApiNode, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every run, paged as a Strait client pages: cursor = the last run's created_at, until a short page."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await _get(api, "/v1/runs", **P, **params, limit=limit, **({"cursor": cursor} if cursor else {}))
        # (a page holds limit runs, and more only of the millisecond its limit-th run was created in: a
        # time cursor cannot point inside a millisecond, so the page takes the rest of it rather than lose
        # or repeat runs)
        assert isinstance(page, list) and all(r["created_at"] == page[limit - 1]["created_at"]
                                              for r in page[limit:]), page
        for run in page:
            check_strait_run(run)
        out.extend(page)
        if len(page) < limit:
            return out
        cursor = page[-1]["created_at"]


async def test_a_strait_client_lists_filters_and_pages_runs_in_every_status(strait: ApiNode) -> None:
    api = strait
    # Given runs in every status, five of them created in one millisecond (one batch)
    ids = await runs_in_every_status(api)
    status, batch = await api.call("POST", "/v1/runs/batch", json={"runs": [
        {"job": "echo", "input": {"i": i}, "delay": 60, "metadata": {"i": str(i)}} for i in range(5)]})
    assert status == 201, batch
    batch_ids = {r["id"] for r in batch["runs"]}
    # When the client lists runs of its project (project_id, as Strait requires)
    listed = await _get(api, "/v1/runs", **P)
    # Then it gets a bare array of runs, each exactly seed 003's run object
    assert isinstance(listed, list)
    for run in listed:
        check_strait_run(run)
    assert set(ids.values()) | batch_ids <= {r["id"] for r in listed}
    # And each of seed 003's statuses filters to exactly the runs that show it (those Baton never shows: none)
    shown = {run_id: status_strait(NATIVE[name]) for name, run_id in ids.items()}
    for status_word in STRAIT_STATUSES:
        found = await _get(api, "/v1/runs", **P, status=status_word, limit=100)
        assert all(r["status"] == status_word for r in found), status_word
        assert {r["id"] for r in found} & set(ids.values()) == {i for i, s in shown.items() if s == status_word}
    # And paging by created_at with any page size returns every run once, newest first, never splitting
    # the batch's millisecond between pages
    everything = [r["id"] for r in listed]
    for limit in (1, 2, 3, 7):
        paged = await _list_all(api, limit)
        assert [r["id"] for r in paged] == everything, limit
    # And triggered_by takes Strait's words: API triggers are manual, children spawn, replays retry
    replayed = await api.call("POST", f"/v1/runs/{ids['dead_letter']}/dlq-replay")
    assert replayed[0] == 200, replayed
    check_strait_run(replayed[1])
    by_trigger = {word: {r["id"] for r in await _get(api, "/v1/runs", **P, triggered_by=word, limit=100)}
                  for word in ("manual", "spawn", "retry", "cron")}
    assert ids["completed"] in by_trigger["manual"] and ids["child"] in by_trigger["spawn"]
    assert by_trigger["retry"] == {replayed[1]["id"]} and by_trigger["cron"] == set()
    # And metadata, batch and payload filters select what they name
    assert {r["id"] for r in await _get(api, "/v1/runs", **P, metadata_key="i", metadata_value="3")} == {
        batch["runs"][3]["id"]}
    assert {r["id"] for r in await _get(api, "/v1/runs", **P, batch_id=batch["batch_id"])} == batch_ids
    assert {r["id"] for r in await _get(api, "/v1/runs", **P, payload_contains='{"i": 4}')} == {
        batch["runs"][4]["id"]}
    # And the dead-letter list is an array of the project's dead-lettered runs
    dlq = await _get(api, "/v1/runs/dlq", **P)
    assert ids["dead_letter"] in {r["id"] for r in dlq} and all(r["status"] == "dead_letter" for r in dlq)
    for run in dlq:
        check_strait_run(run)
    # And another project's id is refused, never answered with other data
    for path in ("/v1/runs", "/v1/runs/dlq"):
        status, body = await api.call("GET", path, params={"project_id": "beta"})
        assert status == 403 and body["code"] == "wrong_project", body
    status, body = await api.call("POST", "/v1/runs/bulk-cancel-all", params={"project_id": "beta"}, json={})
    assert status == 403, body
    release(api)


async def test_a_strait_client_reads_every_run_and_its_records(strait: ApiNode) -> None:
    api = strait
    # Given runs in every status, and runs with events, checkpoints, usage, tool calls and outputs
    ids = await runs_in_every_status(api)
    ai = await api.trigger("ai", {"words": []})
    cp = await api.trigger("checkpointer", None)
    await api.wait_status(ai)
    await api.wait_status(cp)
    # When each run is read, Then it is seed 003's run object with what Baton knows filled in
    runs = {name: await _get(api, f"/v1/runs/{run_id}") for name, run_id in ids.items()}
    for name, run in runs.items():
        check_strait_run(run)
        assert run["status"] == status_strait(NATIVE[name]) and run["project_id"] == "alpha", (name, run)
    done = runs["completed"]
    assert done["job_version"] == 7 and done["job_version_id"] == "7" and done["payload"] == {"n": 1, "gate": "views"}
    assert done["result"] == {"value": [0]} and done["tags"] == {"team": "x", "a": "true", "b": "true"}
    # (a label and a tag of one name: the label's value stays)
    both = await api.trigger("echo", 1, labels={"env": "x", "tier": "1"}, tags=["env", "vip"], delay=60)
    assert (await _get(api, f"/v1/runs/{both}"))["tags"] == {"env": "x", "tier": "1", "vip": "true"}
    assert done["metadata"] == {"n": "1", "nested": '{"k":[1]}'} and done["triggered_by"] == "manual"
    trace = done["execution_trace"]
    assert all(isinstance(trace[k], int) for k in ("queue_wait_ms", "dequeue_ms", "total_ms", "dispatch_ms")), trace
    assert trace["total_ms"] >= trace["dispatch_ms"] and (trace["connect_ms"], trace["ttfb_ms"],
                                                          trace["transfer_ms"]) == (None, None, None)
    # (only what the trigger chose is an override: max_attempts here, nothing for the others)
    assert (done["max_attempts_override"], done["timeout_secs_override"], done["retry_backoff"]) == (2, None, None)
    assert runs["failed"]["max_attempts_override"] is None and runs["failed"]["payload"] == {"value": "text input"}
    assert runs["dead_letter"]["error"] == "boom" and runs["child"]["parent_run_id"] == ids["waiting"]
    assert runs["child"]["triggered_by"] == "spawn" and runs["retrying"]["next_retry_at"] is not None
    # And its records are bare arrays of seed 003's objects
    for path, example, nullable in (
        (f"/v1/runs/{ai}/events", STRAIT_OBJECTS["event"], frozenset()),
        (f"/v1/runs/{cp}/checkpoints", STRAIT_OBJECTS["checkpoint"], frozenset()),
        (f"/v1/runs/{ai}/usage", STRAIT_OBJECTS["usage"], frozenset()),
        (f"/v1/runs/{ai}/tool-calls", STRAIT_OBJECTS["tool_call"], TOOL_NULLABLE),
        (f"/v1/runs/{ai}/outputs", STRAIT_OBJECTS["output"], frozenset()),
    ):
        items = await _get(api, path)
        assert isinstance(items, list) and items, path
        like_example(items, [example], nullable, path)
    for run_id in ids.values():
        like_example(await _get(api, f"/v1/runs/{run_id}/events"), [STRAIT_OBJECTS["event"]])
    # And the debug bundle is Strait's, its run included
    bundle = await _get(api, f"/v1/runs/{ai}/debug-bundle")
    like_example(bundle, {"run": STRAIT_RUN, "events": [STRAIT_OBJECTS["event"]],
                          "checkpoints": [STRAIT_OBJECTS["checkpoint"]], "usage": [STRAIT_OBJECTS["usage"]],
                          "tool_calls": [STRAIT_OBJECTS["tool_call"]], "outputs": [STRAIT_OBJECTS["output"]]},
                 frozenset({*(f"run.{k}" for k in STRAIT_RUN_NULLABLE), "tool_calls[].duration_ms"}))
    # And children and lineage are arrays of runs; dependency status is seed 003's, children as dependencies
    children = await _get(api, f"/v1/runs/{ids['waiting']}/children")
    assert ids["child"] in {c["id"] for c in children}
    # (paged as the other lists: newest first, the cursor the last one's created_at; the two children were
    # created in one call, in one millisecond, so a page of one takes both, and a cursor at their time none)
    assert len(children) == 2 and children[0]["created_at"] == children[1]["created_at"]
    assert {c["id"] for c in await _get(api, f"/v1/runs/{ids['waiting']}/children", limit=1)} == \
        {c["id"] for c in children}
    at = children[0]["created_at"]
    assert await _get(api, f"/v1/runs/{ids['waiting']}/children", cursor=at) == []
    later = iso(parse_ms(at, "cursor") + 1)
    assert {c["id"] for c in await _get(api, f"/v1/runs/{ids['waiting']}/children", cursor=later)} == \
        {c["id"] for c in children}
    for run in children + await _get(api, f"/v1/runs/{ids['completed']}/lineage"):
        check_strait_run(run)
    deps = await _get(api, f"/v1/runs/{ids['waiting']}/dependency-status")
    like_example(deps, STRAIT_OBJECTS["dependency_status"])
    assert len(deps["dependencies"]) == 2 and deps["dependencies_satisfied"] is False and deps["status"] == "waiting"
    assert {d["depends_on_job_id"] for d in deps["dependencies"]} == {"gated"}
    like_example(await _get(api, f"/v1/runs/{ids['completed']}/dependency-status"),
                 {**STRAIT_OBJECTS["dependency_status"], "dependencies": []})
    release(api)


async def test_a_strait_client_acts_on_runs(strait: ApiNode) -> None:
    api = strait
    # Given runs in every status
    ids = await runs_in_every_status(api)
    # When it cancels one, Then the answer is empty, as Strait's
    status, body = await api.call("DELETE", f"/v1/runs/{ids['delayed']}")
    assert (status, body) == (204, ""), body
    # When it pauses, resumes and reschedules, Then each answers the run
    status, paused = await api.call("POST", f"/v1/runs/{ids['queued']}/pause")
    assert status == 200 and paused["status"] == "waiting", paused
    check_strait_run(paused)
    status, resumed = await api.call("POST", f"/v1/runs/{ids['queued']}/resume")
    assert status == 200 and resumed["status"] == "queued", resumed
    status, moved = await api.call("POST", f"/v1/runs/{ids['paused']}/reschedule",
                                   json={"scheduled_at": "2099-01-02T03:04:05Z"})
    assert status == 200 and moved["scheduled_at"] == "2099-01-02T03:04:05.000Z", moved
    check_strait_run(moved)
    # When it turns debug mode on, Then the answer is empty and the run says so
    status, body = await api.call("POST", f"/v1/runs/{ids['completed']}/debug", json={"debug_mode": True})
    assert (status, body) == (204, "") and (await _get(api, f"/v1/runs/{ids['completed']}"))["debug_mode"] is True
    # When it replays, replays from the dead-letter queue and restarts, Then each answers the new run with 200
    for path in (f"/v1/runs/{ids['completed']}/replay", f"/v1/runs/{ids['dead_letter']}/dlq-replay",
                 f"/v1/runs/{ids['failed']}/restart"):
        status, new = await api.call("POST", path, json={} if path.endswith("restart") else None)
        assert status == 200 and new["triggered_by"] == "retry" and new["id"] not in ids.values(), new
        check_strait_run(new)
    # When it cancels by id and by filter, Then the results are seed 003's bulk results
    status, bulk = await api.call("POST", "/v1/runs/bulk-cancel", json={"run_ids": [ids["retrying"], "nope"]})
    assert status == 200 and (bulk["canceled"], bulk["failed"]) == (1, 1), bulk
    like_example(bulk, STRAIT_OBJECTS["bulk_cancel"], BULK_NULLABLE)
    # (Strait's waiting: the waiting parent, and the paused run Strait has no word for)
    status, every = await api.call("POST", "/v1/runs/bulk-cancel-all", params=P, json={"status": ["waiting"]})
    assert status == 200 and {r["id"] for r in every["results"]} == {ids["paused"], ids["waiting"]}, every
    like_example(every, STRAIT_OBJECTS["bulk_cancel"], BULK_NULLABLE)
    # When it replays by id, Then it gets the new runs; from the dead-letter queue, {replayed, count}
    status, again = await api.call("POST", "/v1/runs/bulk-replay", json={"run_ids": [ids["completed"]]})
    assert status == 200 and isinstance(again, list) and len(again) == 1, again
    check_strait_run(again[0])
    dead = await api.trigger("boom", {"again": 1})
    await api.wait_status(dead)
    status, dlq = await api.call("POST", "/v1/runs/bulk-dlq-replay", json={})
    assert status == 200 and set(dlq) == {"replayed", "count"} and dlq["count"] == len(dlq["replayed"]) >= 1, dlq
    for run in dlq["replayed"]:
        check_strait_run(run)
    # When it resets an idempotency key, Then the answer is seed 003's
    keyed = await api.trigger("echo", 1, idempotency_key="k1")
    status, reset = await api.call("DELETE", f"/v1/runs/{keyed}/idempotency-key")
    assert status == 200 and reset == {"status": "reset", "run_id": keyed}
    like_example(reset, STRAIT_OBJECTS["idempotency_reset"])
    # And a request that names a view still gets it (the default only applies when none is named)
    status, native = await api.call("GET", f"/v1/runs/{ids['completed']}", params={"view": "native"})
    assert status == 200 and native["job"] == "steps" and FORMATS.conforms(native["created_at"], "date-time")
    release(api)
