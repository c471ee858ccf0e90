"""Trigger.dev's public run API, at the paths @trigger.dev/sdk 4.x calls: every answer has the shape the
SDK's zod schemas parse (transcribed below as Python checks, so the suite needs no npm), its filters
select what they say or answer 400, and cancel, replay and reschedule act on the run."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from runtime.api.routing import component
from runtime.api.trigger_public import PUBLIC_STATUSES, natives_for, public_status
from runtime.records import Run
from runtime.statuses import RunStatus
from tests.api.conftest import ApiNode
from tests.api.seeds import NATIVE, release, runs_in_every_status

#: the SDK's RunStatus enum (@trigger.dev/core v3 schemas, api.js), written out here on purpose
SDK_STATUSES = {"PENDING_VERSION", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING", "COMPLETED", "CANCELED", "FAILED",
                "CRASHED", "SYSTEM_FAILURE", "DELAYED", "EXPIRED", "TIMED_OUT"}
FLAGS = ("isQueued", "isExecuting", "isWaiting", "isCompleted", "isSuccess", "isFailed", "isCancelled", "isTest")
DATES = ("createdAt", "updatedAt")
OPTIONAL_DATES = ("startedAt", "finishedAt", "delayedUntil", "expiredAt")
TRIGGER_FUNCTIONS = {"triggerAndWait", "trigger", "batchTriggerAndWait", "batchTrigger"}
#: each kind of run of runs_in_every_status (seeds.NATIVE) as the public API names its status
EXPECTED = {"completed": "COMPLETED", "dead_letter": "FAILED", "failed": "FAILED", "delayed": "DELAYED",
            "executing": "EXECUTING", "waiting": "WAITING", "paused": "WAITING", "canceled": "CANCELED",
            "child": "EXECUTING", "queued": "QUEUED", "expired": "EXPIRED", "retrying": "EXECUTING"}
RUN_SCHEMA = Draft202012Validator(component("TriggerApiRun"))
PAGE_SCHEMA = Draft202012Validator(component("TriggerApiRunPage"))


def _date(value: Any) -> None:
    """A date the SDK's z.coerce.date() turns into the right time: ISO text, never null."""
    assert isinstance(value, str), value
    assert datetime.fromisoformat(value.replace("Z", "+00:00")).year > 2000, value


def check_common(run: dict[str, Any]) -> None:
    """The SDK's CommonRunFields: required fields of the right type, optional ones absent or right."""
    assert isinstance(run["id"], str) and run["id"].startswith("run_"), run
    assert run["status"] in SDK_STATUSES and isinstance(run["taskIdentifier"], str), run
    for flag in FLAGS:
        assert isinstance(run[flag], bool), (flag, run)
    for name in DATES:
        _date(run[name])
    for name in OPTIONAL_DATES:
        if name in run:
            _date(run[name])
    assert isinstance(run["tags"], list) and all(isinstance(t, str) for t in run["tags"]), run
    for name in ("costInCents", "baseCostInCents", "durationMs"):
        assert isinstance(run[name], int | float) and not isinstance(run[name], bool), (name, run)
    assert run["costInCents"] == 0 and run["baseCostInCents"] == 0
    for name in ("idempotencyKey", "version", "ttl", "taskKind", "region"):
        assert name not in run or isinstance(run[name], str), (name, run)
    assert "metadata" not in run or isinstance(run["metadata"], dict), run
    # the booleans say what the status says
    status = run["status"]
    assert run["isCompleted"] == (status in {"COMPLETED", "CANCELED", "FAILED", "CRASHED", "SYSTEM_FAILURE",
                                             "EXPIRED", "TIMED_OUT"})
    assert run["isSuccess"] == (status == "COMPLETED") and run["isCancelled"] == (status == "CANCELED")
    assert run["isFailed"] == (run["isCompleted"] and status != "COMPLETED")
    assert run["isQueued"] == (status in {"QUEUED", "DELAYED"}) and run["isWaiting"] == (status == "WAITING")
    assert run["isExecuting"] == (status == "EXECUTING") and run["isTest"] is False


def check_related(run: dict[str, Any]) -> None:
    """The SDK's RelatedRunDetails (RetrieveRunCommandFields)."""
    check_common(run)
    assert isinstance(run["depth"], int) and run["triggerFunction"] in TRIGGER_FUNCTIONS, run
    assert "batchId" not in run or isinstance(run["batchId"], str)


def check_retrieved(run: dict[str, Any]) -> None:
    """The SDK's RetrieveRunResponse, and the component the OpenAPI document names."""
    check_related(run)
    assert isinstance(run["attemptCount"], int), run
    if "error" in run:
        assert isinstance(run["error"]["message"], str), run
        assert all(isinstance(run["error"][k], str) for k in ("name", "stackTrace") if k in run["error"])
    related = run["relatedRuns"]
    assert isinstance(related, dict) and set(related) <= {"root", "parent", "children"}, related
    for one in (related.get("root"), related.get("parent"), *related.get("children", [])):
        if one is not None:
            check_related(one)
    RUN_SCHEMA.validate(run)


def check_page(page: dict[str, Any]) -> None:
    """The SDK's cursor page of ListRunResponseItem."""
    assert set(page) == {"data", "pagination"} and set(page["pagination"]) <= {"next", "previous"}, page
    assert all(isinstance(v, str) for v in page["pagination"].values()), page
    for item in page["data"]:
        check_common(item)
        assert isinstance(item["env"]["id"], str) and isinstance(item["env"]["name"], str), item
    PAGE_SCHEMA.validate(page)


async def _list(api: ApiNode, path: str = "/api/v1/runs", **params: Any) -> dict[str, Any]:
    status, page = await api.call("GET", path, params=params)
    assert status == 200, page
    check_page(page)
    return dict(page)


async def _every(api: ApiNode, path: str = "/api/v1/runs", **params: Any) -> list[dict[str, Any]]:
    """Every run a listing (at ``path``) gives, following pagination.next as the SDK does."""
    out: list[dict[str, Any]] = []
    after: dict[str, str] = {}
    while True:
        page = await _list(api, path, **params, **after)
        out.extend(page["data"])
        if "next" not in page["pagination"]:
            return out
        after = {"page[after]": page["pagination"]["next"]}


def test_every_native_status_shows_a_public_status_and_a_status_filter_finds_it() -> None:
    # Given a run in each native status, and dead letters whose last attempt crashed or timed out
    base = {"job": "j", "created_at": "1000", "attempt": "1"}
    runs = [Run.from_hash({**base, "status": str(s)}, run_id=f"r{i}") for i, s in enumerate(RunStatus)]
    for last in ("crashed", "timed_out"):
        attempts = orjson.dumps([{"number": 1, "status": last}]).decode()
        runs.append(Run.from_hash({**base, "status": "dead_letter", "attempts": attempts}, run_id=last))
    # Then each shows a status of the SDK's enum, and a filter by that status keeps its native status
    shown = {run.id: public_status(run) for run in runs}
    assert set(shown.values()) <= SDK_STATUSES and set(PUBLIC_STATUSES) == SDK_STATUSES
    assert shown["crashed"] == "CRASHED" and shown["timed_out"] == "TIMED_OUT"
    for run in runs:
        assert run.status in natives_for(frozenset({shown[run.id]})), run.id
    assert natives_for(frozenset({"PENDING_VERSION", "DEQUEUED", "SYSTEM_FAILURE"})) == frozenset()


async def test_a_run_in_every_status_is_what_runs_retrieve_parses(api: ApiNode) -> None:
    # Given runs in every status
    ids = await runs_in_every_status(api)
    try:
        # When each is retrieved at the SDK's path, by the id the SDK knows (run_ prefix)
        runs = {}
        for name, run_id in ids.items():
            status, body = await api.call("GET", f"/api/v3/runs/run_{run_id}")
            assert status == 200, body
            runs[name] = body
        # Then each is the SDK's RetrieveRunResponse, with its public status and no null anywhere a date is
        for name, run in runs.items():
            check_retrieved(run)
            assert run["status"] == EXPECTED[name] and run["id"] == f"run_{ids[name]}", (name, run["status"])
            assert b"null" not in orjson.dumps({k: v for k, v in run.items() if k in (*DATES, *OPTIONAL_DATES)})
        done = runs["completed"]
        assert done["output"] == [0] and done["payload"] == {"n": 1, "gate": "views"} and done["version"] == "7"
        assert done["tags"] == ["a", "b"] and done["metadata"] == {"n": 1, "nested": {"k": [1]}}
        assert "finishedAt" in done and "startedAt" in done and done["attemptCount"] == 1
        assert "startedAt" not in runs["queued"] and "finishedAt" not in runs["queued"]
        assert "delayedUntil" in runs["delayed"] and "expiredAt" in runs["expired"]
        assert runs["dead_letter"]["error"]["message"] == "boom" and runs["dead_letter"]["error"]["name"]
        # And a child's root and parent are its parent in full, which lists its children
        parent = runs["child"]["relatedRuns"]["parent"]
        assert parent["id"] == f"run_{ids['waiting']}" and parent["status"] == "WAITING" and parent["depth"] == 0
        assert runs["child"]["relatedRuns"]["root"]["id"] == parent["id"] and runs["child"]["depth"] == 1
        children = runs["waiting"]["relatedRuns"]["children"]
        assert {c["id"] for c in children} == {f"run_{c}" for c in await api.app.get_children(ids["waiting"])}
        assert "root" not in runs["waiting"]["relatedRuns"] and "parent" not in runs["waiting"]["relatedRuns"]
        # And the list shows each with the same status, as the SDK's ListRunResponseItem
        listed = {r["id"]: r for r in await _every(api, **{"page[size]": 4})}
        for name, run_id in ids.items():
            assert listed[f"run_{run_id}"]["status"] == EXPECTED[name], name
            assert listed[f"run_{run_id}"]["env"] == {"id": "alpha", "name": "alpha"}
        # And a status filter selects exactly the runs that show the status
        for wanted in ({"FAILED", "COMPLETED"}, {"WAITING"}, {"EXECUTING"}, {"CRASHED", "TIMED_OUT"}):
            found = await _every(api, **{"filter[status]": ",".join(sorted(wanted))})
            assert {r["id"] for r in found} == {i for i, r in listed.items() if r["status"] in wanted}, wanted
    finally:
        release(api)
    assert set(NATIVE) == set(EXPECTED)


async def test_runs_list_pages_and_filters_as_the_sdk_sends_them(api: ApiNode) -> None:
    # Given runs of three jobs, with tags, one batch, created over a known time
    before = int(time.time() * 1000) - 1
    ids = {"a": await api.trigger("echo", 1, tags=["red"]), "b": await api.trigger("echo", 2, tags=["blue"]),
           "c": await api.trigger("boom", 3, tags=["red", "green"]), "d": await api.trigger("fatal", 4)}
    status, batch = await api.call("POST", "/v1/runs/batch", json={"runs": [{"job": "echo", "input": 5}]})
    assert status == 201, batch
    ids["e"] = batch["runs"][0]["id"]
    for run_id in ids.values():
        await api.wait_status(run_id)
    after = int(time.time() * 1000) + 1
    every = {f"run_{i}" for i in ids.values()}

    async def found(**params: Any) -> set[str]:
        return {r["id"] for r in await _every(api, **params)}

    # When the SDK pages through them two at a time, Then it meets each once, newest first
    paged = await _every(api, **{"page[size]": 2})
    assert [r["id"] for r in paged][:5] == [f"run_{ids[k]}" for k in "edcba"]
    assert len(paged) == len({r["id"] for r in paged})
    # And a client that pages by run ids ("Pagination uses run IDs") gets the runs after the one it names
    by_id = await _list(api, **{"page[size]": 2, "page[after]": f"run_{ids['d']}"})
    assert [r["id"] for r in by_id["data"]] == [f"run_{ids[k]}" for k in "cb"]
    for unknown in ("run_nosuchrun", f"run_{ids['d']}x"):
        status, body = await api.call("GET", "/api/v1/runs", params={"page[after]": unknown})
        assert status == 400 and body["code"] == "bad_cursor", body
    # And each filter selects what it says
    assert await found(**{"filter[taskIdentifier]": "boom,fatal"}) == {f"run_{ids['c']}", f"run_{ids['d']}"}
    assert await found(**{"filter[tag]": "green,blue"}) == {f"run_{ids['b']}", f"run_{ids['c']}"}
    assert await found(**{"filter[status]": "COMPLETED"}) == {f"run_{ids[k]}" for k in "abe"}
    assert await found(**{"filter[queue]": "default"}) == every
    assert await found(**{"filter[queue]": "mail"}) == set()
    assert await found(**{"filter[batch]": batch["batch_id"]}) == {f"run_{ids['e']}"}
    assert await found(**{"filter[createdAt][from]": before, "filter[createdAt][to]": after}) == every
    assert await found(**{"filter[createdAt][from]": after}) == set()
    assert await found(**{"filter[createdAt][to]": before}) == set()
    assert await found(**{"filter[createdAt][period]": "1h"}) == every
    assert await found(**{"filter[isTest]": "false"}) == every and await found(**{"filter[isTest]": "true"}) == set()
    # And an empty list filter is none, as Trigger.dev's server reads it: the SDK sends `filter[status]=` for
    # runs.list({status: []}) (createSearchQueryForListRuns joins the empty array)
    for name in ("filter[status]", "filter[taskIdentifier]", "filter[tag]", "filter[queue]"):
        assert await found(**{name: ""}) == every, name
    assert await found(**{"filter[status]": "", "filter[tag]": "green"}) == {f"run_{ids['c']}"}
    # And what Baton cannot serve answers 400 in Baton's error shape, never a list that ignored it
    for name, value in (("filter[version]", "1"), ("filter[bulkAction]", "bulk_1"), ("filter[schedule]", "s"),
                        ("filter[machine]", "small-1x"), ("filter[region]", "eu"), ("page[before]", "x")):
        status, body = await api.call("GET", "/api/v1/runs", params={name: value})
        assert status == 400 and body["code"] == "unsupported_parameter" and name in body["error"], (name, body)
        assert set(body) == {"error", "code", "request_id"}
    for params in ({"filter[queue]": "task/echo"}, {"filter[status]": "COMPLETED_SUCCESSFULLY"},
                   {"filter[createdAt][period]": "soon"}, {"page[size]": "101"}, {"page[after]": "nonsense"}):
        status, body = await api.call("GET", "/api/v1/runs", params=params)
        assert status == 400 and set(body) == {"error", "code", "request_id"}, (params, body)


async def test_runs_list_with_a_project_ref_lists_the_callers_runs_in_its_environment(api: ApiNode) -> None:
    # Given runs of the caller's project (its environment, as a listed run's env says)
    ids = {f"run_{await api.trigger('echo', i)}" for i in range(3)}
    # When the SDK lists them with a project ref (runs.list("proj_...", {...})), with or without an env filter
    # naming the caller's project, Then it pages through the same runs as GET /api/v1/runs, filters applied
    for params in ({}, {"filter[env]": "alpha"}, {"filter[env]": "prod,alpha"}):
        listed = await _every(api, path="/api/v1/projects/proj_anything/runs", **{"page[size]": 2}, **params)
        assert ids <= {r["id"] for r in listed} and {r["env"]["name"] for r in listed} == {"alpha"}, params
        assert [r["id"] for r in listed] == [r["id"] for r in await _every(api, **{"page[size]": 2})], params
    tagged = await _every(api, path="/api/v1/projects/p/runs", **{"filter[taskIdentifier]": "boom"})
    assert ids.isdisjoint(r["id"] for r in tagged)
    # And an env filter that leaves out the caller's project lists none; what /api/v1/runs refuses, it refuses
    assert await _every(api, path="/api/v1/projects/p/runs", **{"filter[env]": "prod,staging"}) == []
    for params in ({"filter[version]": "1"}, {"filter[env]": ",".join(["e"] * 51)}, {"page[size]": "0"}):
        status, body = await api.call("GET", "/api/v1/projects/p/runs", params=params)
        assert status == 400 and set(body) == {"error", "code", "request_id"}, (params, body)


async def test_cancel_replay_and_reschedule_act_on_the_run(api: ApiNode) -> None:
    # Given a delayed run and a completed one
    delayed = await api.trigger("echo", {"d": 1}, delay=60)
    done = await api.trigger("echo", {"d": 2})
    await api.wait_status(done)
    # When the delayed run is rescheduled by a duration, Then it is due then and answered as retrieved
    status, run = await api.call("POST", f"/api/v1/runs/run_{delayed}/reschedule", json={"delay": "2h"})
    assert status == 200, run
    check_retrieved(run)
    due = datetime.fromisoformat(run["delayedUntil"].replace("Z", "+00:00")).timestamp()
    assert run["status"] == "DELAYED" and abs(due - time.time() - 7200) < 60, run
    # And by a date (the SDK sends a Date as ISO text)
    status, run = await api.call("POST", f"/api/v1/runs/run_{delayed}/reschedule",
                                 json={"delay": "2030-01-02T03:04:05.000Z"})
    assert status == 200 and run["delayedUntil"].startswith("2030-01-02T03:04:05"), run
    for body in ({"delay": "tomorrow"}, {"delay": ""}, {}, {"delay": "1h", "other": 1}):
        status, answer = await api.call("POST", f"/api/v1/runs/run_{delayed}/reschedule", json=body)
        assert status == 400 and answer["code"] in ("invalid_body", "invalid_parameter"), (body, answer)
    status, answer = await api.call("POST", f"/api/v1/runs/run_{done}/reschedule", json={"delay": "1m"})
    assert status == 409, answer
    # When it is canceled, Then the answer names it and the run is canceled; canceling again answers the same
    for _ in range(2):
        status, answer = await api.call("POST", f"/api/v2/runs/run_{delayed}/cancel")
        assert status == 200 and answer == {"id": f"run_{delayed}"}, answer
    assert (await api.run(delayed, view="native"))["status"] == "canceled"
    # When the completed run is replayed, Then a new run starts with its input, linked to it
    status, answer = await api.call("POST", f"/api/v1/runs/run_{done}/replay")
    assert status == 200 and set(answer) == {"id"} and answer["id"] != f"run_{done}", answer
    new = await api.wait_status(answer["id"].removeprefix("run_"))
    assert new["replay_of"] == done and new["status"] == "completed" and new["output"] == {"d": 2}
    # And replay options Baton cannot honour answer 400 rather than being dropped; a live run cannot replay
    status, answer = await api.call("POST", f"/api/v1/runs/run_{done}/replay", json={"payload": {"d": 3}})
    assert status == 400 and "payload" in answer["error"], answer
    live = await api.trigger("echo", 1, delay=60)
    status, answer = await api.call("POST", f"/api/v1/runs/run_{live}/replay")
    assert status == 409, answer


async def test_idempotency_keys_reset_lets_the_key_make_a_new_run(api: ApiNode) -> None:
    # Given a run triggered with an idempotency key (as the SDK sends it: hashed, 64 characters), in project
    # alpha, and one of beta with the same key
    key = "a1" * 32
    status, first = await sdk_trigger(api, "echo", {"n": 1}, idempotencyKey=key)
    assert status == 200, first
    status, again = await sdk_trigger(api, "echo", {"n": 2}, idempotencyKey=key)
    assert status == 200 and again["id"] == first["id"] and again.get("isCached") is True, again
    status, theirs = await sdk_trigger(api, "echo", {"n": 3}, project="beta", idempotencyKey=key)
    assert status == 200 and theirs["id"] != first["id"], theirs
    # When idempotencyKeys.reset names the task and the key
    status, answer = await api.call("POST", f"/api/v1/idempotencyKeys/{key}/reset", json={"taskIdentifier": "echo"})
    # Then it answers the run that held it, and the next trigger with the key makes a new run
    assert (status, answer) == (200, {"id": first["id"]}), answer
    status, fresh = await sdk_trigger(api, "echo", {"n": 4}, idempotencyKey=key)
    assert status == 200 and fresh["id"] not in (first["id"], theirs["id"]) and not fresh.get("isCached"), fresh
    # while beta's run still holds beta's key (a key is a project's)
    status, cached = await sdk_trigger(api, "echo", {"n": 5}, project="beta", idempotencyKey=key)
    assert status == 200 and cached["id"] == theirs["id"], cached
    # And a key no run of the task holds, or one of another task, is not found; the task must be named
    for path_key, body in (("b2" * 32, {"taskIdentifier": "echo"}), (key, {"taskIdentifier": "boom"})):
        status, err = await api.call("POST", f"/api/v1/idempotencyKeys/{path_key}/reset", json=body)
        assert (status, err["code"]) == (404, "not_found"), (body, err)
    status, err = await api.call("POST", f"/api/v1/idempotencyKeys/{key}/reset", json={})
    assert (status, err["code"]) == (400, "invalid_body"), err


async def sdk_trigger(api: ApiNode, task: str, payload: Any, project: str = "alpha",
                      **options: Any) -> tuple[int, Any]:
    """tasks.trigger as @trigger.dev/sdk 4.x posts it: the payload as superjson text (what the SDK makes of
    any value but a string), its type, and the options."""
    body = {"payload": orjson.dumps({"json": payload}).decode(),
            "options": {"payloadType": "application/super+json", "payloadSize": 10, **options}}
    return await api.call("POST", f"/api/v1/tasks/{task}/trigger", project=project, json=body)


async def test_tasks_trigger_starts_a_run_of_the_job_with_the_options_it_can_honour(api: ApiNode) -> None:
    # When the SDK triggers a task (a Baton job) with a payload
    status, answer = await sdk_trigger(api, "echo", {"n": 1, "when": "now"})
    # Then the answer is the new run's id, which runs.retrieve reads, and the run ran the payload
    assert status == 200 and set(answer) == {"id"} and answer["id"].startswith("run_"), answer
    run = await api.wait_status(answer["id"].removeprefix("run_"))
    assert run["status"] == "completed" and run["output"] == {"n": 1, "when": "now"} and run["project"] == "alpha"
    status, retrieved = await api.call("GET", f"/api/v3/runs/{answer['id']}")
    assert status == 200 and retrieved["payload"] == {"n": 1, "when": "now"} and retrieved["taskIdentifier"] == "echo"
    # When it names options: a delay, tags, metadata, attempts, a duration, a priority, an idempotency key
    options = {"delay": "1h", "tags": ["red", "blue"], "metadata": {"user": "u1"}, "maxAttempts": 5,
               "maxDuration": 30, "priority": 7, "idempotencyKey": "k" * 64, "idempotencyKeyTTL": "10m", "ttl": "2h",
               "concurrencyKey": "tenant-1", "idempotencyKeyOptions": {"key": "k1", "scope": "global"}}
    status, first = await sdk_trigger(api, "echo", {"n": 2}, **options)
    assert status == 200, first
    native = await api.run(first["id"].removeprefix("run_"), view="native")
    # Then the run carries each, in Baton's terms
    assert native["status"] == "delayed" and native["tags"] == ["red", "blue"] and native["metadata"] == {"user": "u1"}
    assert (native["max_attempts"], native["timeout_ms"], native["priority"]) == (5, 30_000, 7), native
    assert native["concurrency_key"] == "tenant-1" and native["expires_at"] is not None
    due = datetime.fromisoformat(native["scheduled_at"].replace("Z", "+00:00")).timestamp()
    assert abs(due - time.time() - 3600) < 60, native
    # And the same idempotency key again names that run, as cached
    status, again = await sdk_trigger(api, "echo", {"n": 3}, **options)
    assert status == 200 and again == {"id": first["id"], "isCached": True}, again
    # And the other payloads the SDK sends: a string as text, plain JSON text, a value it could not write as
    # superjson (the value itself), superjson with a Date (its ISO text arrives), and none at all
    dated_input = {"json": {"at": "2026-01-02T03:04:05.000Z"}, "meta": {"values": {"at": ["Date"]}}}
    for payload, kind, expected in (("hello", "text/plain", "hello"), ('{"a": [1, 2]}', "application/json",
                                                                       {"a": [1, 2]}),
                                    ({"a": 1}, "application/json", {"a": 1}),
                                    (orjson.dumps(dated_input).decode(), "application/super+json",
                                     {"at": "2026-01-02T03:04:05.000Z"}), (None, "application/json", None)):
        status, made = await api.call("POST", "/api/v1/tasks/echo/trigger",
                                      json={"payload": payload, "options": {"payloadType": kind}})
        assert status == 200, (payload, made)
        assert (await api.wait_status(made["id"].removeprefix("run_")))["output"] == expected, payload
    # And a delay given as a date (the SDK sends a Date as ISO text) is the run's due time
    status, dated = await sdk_trigger(api, "echo", {"n": 4}, delay="2030-01-02T03:04:05.000Z")
    assert status == 200, dated
    assert (await api.run(dated["id"].removeprefix("run_"), view="native"))["scheduled_at"].startswith(
        "2030-01-02T03:04:05")
    # And a debounced trigger (mode trailing: the last payload runs) coalesces with the one before it
    debounce = {"key": "user-1", "delay": "1h", "mode": "trailing"}
    _, one = await sdk_trigger(api, "echo", {"v": 1}, debounce=debounce)
    _, two = await sdk_trigger(api, "echo", {"v": 2}, debounce=debounce)
    assert one["id"] == two["id"], (one, two)
    assert (await api.run(one["id"].removeprefix("run_"), view="native"))["input"] == {"v": 2}


async def test_tasks_trigger_refuses_what_baton_cannot_honour(api: ApiNode) -> None:
    # (each a 400 in Baton's error shape, naming the option, and no run made)
    before = len(await _every(api))
    for options, code, named in (
            ({"parentRunId": "run_x"}, "unsupported_parameter", "parentRunId"),
            ({"machine": "small-1x"}, "unsupported_parameter", "machine"),
            ({"region": "eu"}, "unsupported_parameter", "region"),
            ({"test": True}, "unsupported_parameter", "test"),
            ({"concurrency": {"limit": 1}}, "unsupported_parameter", "concurrency"),
            ({"debounce": {"key": "k", "delay": "5s"}}, "unsupported_parameter", "debounce"),
            ({"queue": {"name": "task/echo"}}, "unsupported_parameter", "queue"),
            ({"somethingNew": 1}, "unsupported_parameter", "somethingNew"),
            ({"payloadType": "application/store"}, "unsupported_parameter", "payloadType"),
            ({"delay": "soon"}, "bad_run_at", "run_at"),
            ({"ttl": "forever"}, "invalid_body", "ttl"),
            ({"priority": 3600}, "bad_priority", "priority"),
            ({"maxAttempts": 0}, "bad_max_attempts", "max_attempts")):
        status, answer = await sdk_trigger(api, "echo", {"n": 1}, **options)
        assert status == 400 and answer["code"] == code and named in answer["error"], (options, answer)
    for payload, kind in (("{not json", "application/json"), ("{not json", "application/super+json"),
                          ('{"meta": {}}', "application/super+json")):
        status, answer = await api.call("POST", "/api/v1/tasks/echo/trigger",
                                        json={"payload": payload, "options": {"payloadType": kind}})
        assert status == 400 and answer["code"] == "invalid_body", answer
    assert len(await _every(api)) == before
    # And a task no node defines is 404, as an unknown job
    status, answer = await sdk_trigger(api, "no_such_task", {})
    assert status == 404 and answer["code"] == "unknown_job", answer
    # And without a key, 401
    status, answer = await api.call("POST", "/api/v1/tasks/echo/trigger", project=None, json={"payload": "1"})
    assert status == 401, answer


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v3/runs/{id}"), ("POST", "/api/v2/runs/{id}/cancel"), ("POST", "/api/v1/runs/{id}/replay"),
    ("POST", "/api/v1/runs/{id}/reschedule"), ("GET", "/api/v1/runs"),
])
async def test_unknown_runs_answer_404_and_calls_without_a_key_401(api: ApiNode, method: str, path: str) -> None:
    # Given a run of project beta, unknown to project alpha
    theirs = await api.trigger("echo", 1, project="beta", delay=60)
    body = {"delay": "1h"} if path.endswith("reschedule") else None
    if "{id}" in path:
        # When alpha names it, or an id no run has, Then the answer is Baton's 404 JSON
        for run_id in (f"run_{theirs}", "run_00000000000000000000000000000000"):
            status, answer = await api.call(method, path.format(id=run_id), json=body)
            assert status == 404 and answer["code"] == "not_found" and set(answer) == {"error", "code", "request_id"}
    # When the call carries no key, or a wrong one, Then it is 401 with the bearer challenge's error
    for headers in ({}, {"Authorization": "Bearer bk_not_a_key_at_all"}):
        status, answer = await api.call(method, path.format(id=f"run_{theirs}"), project=None, json=body,
                                        headers=headers)
        assert status == 401 and answer["code"] == "unauthorized", answer
    # And beta's key sees its own run
    if "{id}" in path and method == "GET":
        status, answer = await api.call(method, path.format(id=f"run_{theirs}"), project="beta")
        assert status == 200 and answer["id"] == f"run_{theirs}"
