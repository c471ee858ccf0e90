"""Hatchet's REST API for runs, at the paths hatchet-sdk's runs client (1.x) calls: every answer has the
shape the SDK's pydantic models validate (transcribed below as Python checks, so the suite needs no
hatchet-sdk), the list's filters select what they say or answer 400, paging meets each run once, and
cancel and replay act on the runs named or selected."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from runtime.api.hatchet_public import natives_for, tenant_of
from runtime.api.routing import component
from runtime.api.views import hatchet_uuid, status_hatchet
from runtime.statuses import RunStatus
from tests.api.conftest import ApiNode
from tests.api.seeds import HATCHET, NATIVE, release, runs_in_every_status

#: the SDK's enums (hatchet_sdk/clients/rest/models), written out here on purpose
SDK_STATUSES = {"QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED"}
SDK_EVENT_TYPES = {
    "REQUEUED_NO_WORKER", "REQUEUED_RATE_LIMIT", "SCHEDULING_TIMED_OUT", "ASSIGNED", "STARTED", "FINISHED", "FAILED",
    "RETRYING", "CANCELLED", "TIMED_OUT", "REASSIGNED", "SLOT_RELEASED", "TIMEOUT_REFRESHED", "RETRIED_BY_USER",
    "SENT_TO_WORKER", "RATE_LIMIT_ERROR", "ACKNOWLEDGED", "CREATED", "QUEUED", "SKIPPED", "WAITING_FOR_BATCH",
    "BATCH_FLUSHED", "COULD_NOT_SEND_TO_WORKER", "DURABLE_EVICTED", "DURABLE_RESTORING"}
#: each kind of run of runs_in_every_status (seeds.NATIVE) as Hatchet names its status
EXPECTED = {"completed": "COMPLETED", "dead_letter": "FAILED", "failed": "FAILED", "delayed": "QUEUED",
            "executing": "RUNNING", "waiting": "RUNNING", "paused": "QUEUED", "canceled": "CANCELLED",
            "child": "RUNNING", "queued": "QUEUED", "expired": "FAILED", "retrying": "QUEUED"}
DETAILS_SCHEMA = Draft202012Validator(component("HatchetRunDetails"))
PAGE_SCHEMA = Draft202012Validator(component("HatchetTaskSummaryList"))
TENANT = tenant_of("alpha")
LIST = f"/api/v1/stable/tenants/{TENANT}/workflow-runs"


def _uuid(value: Any) -> None:
    """A 36-character id (the SDK's constr(min_length=36, max_length=36)), here always a UUID."""
    assert isinstance(value, str) and len(value) == 36 and str(uuid.UUID(value)) == value.lower(), value


def _date(value: Any) -> None:
    """What pydantic reads as a datetime: ISO text with a zone."""
    assert isinstance(value, str), value
    assert datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None, value


def _int(value: Any) -> None:
    """A StrictInt: an integer, not a bool."""
    assert isinstance(value, int) and not isinstance(value, bool), value


def _meta(meta: Any) -> None:
    """APIResourceMeta."""
    assert isinstance(meta, dict) and len(meta["id"]) <= 36
    _date(meta["createdAt"]), _date(meta["updatedAt"])


def check_summary(task: dict[str, Any]) -> None:
    """V1TaskSummary: required fields and their types, optional ones absent or right."""
    _meta(task["metadata"])
    for name in ("createdAt", "taskInsertedAt"):
        _date(task[name])
    for name in ("startedAt", "finishedAt"):
        if name in task:
            _date(task[name])
    assert isinstance(task["displayName"], str) and isinstance(task["workflowId"], str), task
    assert isinstance(task["input"], dict) and isinstance(task["output"], dict), task
    assert task["status"] in SDK_STATUSES and task["type"] in {"DAG", "TASK"}, task
    _int(task["numSpawnedChildren"]), _int(task["taskId"])
    for name in ("taskExternalId", "tenantId"):
        _uuid(task[name])
    assert isinstance(task["workflowRunExternalId"], str)
    for name in ("stepId", "parentTaskExternalId"):
        if name in task:
            _uuid(task[name])
    for name in ("attempt", "retryCount", "duration"):
        if name in task:
            _int(task[name])
    for name in ("isDurable", "isEvicted"):
        assert name not in task or isinstance(task[name], bool)
    for name in ("errorMessage", "workflowName", "workflowVersionId", "idempotencyKey", "actionId"):
        assert name not in task or isinstance(task[name], str), (name, task)
    assert "additionalMetadata" not in task or isinstance(task["additionalMetadata"], dict)


def check_event(event: dict[str, Any]) -> None:
    """V1TaskEvent."""
    _int(event["id"])
    assert isinstance(event["taskId"], str) and isinstance(event["message"], str), event
    _date(event["timestamp"])
    assert event["eventType"] in SDK_EVENT_TYPES, event
    for name in ("errorMessage", "output", "workerId", "taskDisplayName"):
        assert name not in event or isinstance(event[name], str), (name, event)
    for name in ("retryCount", "attempt"):
        if name in event:
            _int(event[name])


def check_details(body: dict[str, Any]) -> None:
    """V1WorkflowRunDetails: the run is seed 002's V1WorkflowRun; events, shape and tasks as the SDK's."""
    assert {"run", "taskEvents", "shape", "tasks"} <= set(body), body
    HATCHET.validate(body["run"])
    _uuid(body["run"]["tenantId"])
    assert body["run"]["status"] in SDK_STATUSES and isinstance(body["run"]["output"], dict)
    for event in body["taskEvents"]:
        check_event(event)
    for item in body["shape"]:
        _uuid(item["taskExternalId"]), _uuid(item["stepId"])
        assert isinstance(item["taskName"], str) and isinstance(item["childrenStepIds"], list), item
    for task in body["tasks"]:
        check_summary(task)
    DETAILS_SCHEMA.validate(body)


def check_page(page: dict[str, Any]) -> None:
    """V1TaskSummaryList and its PaginationResponse."""
    assert set(page) == {"rows", "pagination"}, page
    assert set(page["pagination"]) <= {"current_page", "next_page", "num_pages"}, page
    for value in page["pagination"].values():
        _int(value)
    for task in page["rows"]:
        check_summary(task)
    PAGE_SCHEMA.validate(page)


def _since(seconds: float = 3600) -> str:
    """A time as the SDK sends it (its datetime_format: microseconds and a literal Z)."""
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _list(api: ApiNode, **params: Any) -> dict[str, Any]:
    status, page = await api.call("GET", LIST, params={"since": _since(), "only_tasks": "false", **params})
    assert status == 200, page
    check_page(page)
    return dict(page)


async def _ids(api: ApiNode, **params: Any) -> list[str]:
    """Every run a listing selects, page by page as far as next_page says."""
    out: list[str] = []
    limit = int(params.pop("limit", 100))
    offset = 0
    while True:
        page = await _list(api, **params, limit=limit, offset=offset)
        out += [row["taskExternalId"] for row in page["rows"]]
        if "next_page" not in page["pagination"]:
            return out
        assert page["pagination"]["next_page"] == page["pagination"]["current_page"] + 1
        offset += limit


async def _hid(api: ApiNode, run_id: str) -> str:
    """A run's id as the hatchet view shows it (what the SDK knows)."""
    return str((await api.run(run_id, view="hatchet"))["id"])


def test_each_native_status_shows_one_hatchet_status_and_its_filter_finds_it() -> None:
    # Given every native status
    for status in RunStatus:
        shown = status_hatchet(status)
        # Then it shows a status of the SDK's enum, and a filter by that status selects it, and only its kind
        assert shown in SDK_STATUSES and status in natives_for(frozenset({shown}))
        assert all(status_hatchet(n) == shown for n in natives_for(frozenset({shown})))
    # And within RUNNING, a durable wait is the evicted part and executing the part on a worker
    assert natives_for(frozenset({"RUNNING"}), "EVICTED") == {"waiting"}
    assert natives_for(frozenset({"RUNNING"}), "ON_WORKER") == {"executing"}
    assert natives_for(frozenset({"QUEUED"}), "EVICTED") == {"queued", "delayed", "paused"}


async def test_a_run_in_every_status_is_what_runs_get_parses(api: ApiNode) -> None:
    # Given runs in every status
    ids = await runs_in_every_status(api)
    try:
        hids = {name: await _hid(api, run_id) for name, run_id in ids.items()}
        got = {}
        for name, hid in hids.items():
            # When each is read as runs.get, get_status and get_task_run read it, by the id the SDK knows
            status, body = await api.call("GET", f"/api/v1/stable/workflow-runs/{hid}")
            assert status == 200, body
            check_details(body)
            got[name] = body
            status, shown = await api.call("GET", f"/api/v1/stable/workflow-runs/{hid}/status")
            assert status == 200 and shown == EXPECTED[name], (name, shown)
            status, task = await api.call("GET", f"/api/v1/stable/tasks/{hid}")
            assert status == 200, task
            check_summary(task)
            # Then each is in Hatchet's status, its one task is itself, and its events are of the SDK's types
            assert body["run"]["status"] == EXPECTED[name] and body["run"]["id"] == hid, name
            assert body["tasks"][0]["taskExternalId"] == hid == body["shape"][0]["taskExternalId"]
            assert task["taskExternalId"] == hid and task["status"] == EXPECTED[name]
            assert body["run"]["tenantId"] == TENANT
        events = {name: [e["eventType"] for e in body["taskEvents"]] for name, body in got.items()}
        assert events["completed"][0] == "STARTED" and events["completed"][-1] == "FINISHED", events["completed"]
        assert "FAILED" in events["dead_letter"] and events["canceled"][-1] == "CANCELLED"
        assert events["expired"] == ["SCHEDULING_TIMED_OUT"] and events["queued"] == []
        assert events["executing"] == ["STARTED"]
        failed = [e for e in got["dead_letter"]["taskEvents"] if e["eventType"] == "FAILED"]
        assert failed[-1]["errorMessage"] == "boom" and all(isinstance(e["attempt"], int) for e in failed)
        done = got["completed"]["tasks"][0]
        assert done["output"] == {"value": [0]} and done["input"] == {"n": 1, "gate": "views"}
        assert done["additionalMetadata"] == {"n": 1, "nested": {"k": [1]}, "team": "x"}
        assert done["workflowName"] == "steps" and done["workflowId"] == hatchet_uuid("job", "steps")
        # And a parent counts its children, and a child names its parent by the id the SDK knows
        assert got["child"]["run"]["parentTaskExternalId"] == hids["waiting"]
        assert got["waiting"]["tasks"][0]["isEvicted"] is True and got["executing"]["tasks"][0]["isEvicted"] is False
        # And the list shows each in the same status, and a status filter selects exactly those runs
        listed = {row["taskExternalId"]: row for row in (await _list(api, limit=100))["rows"]}
        for name, hid in hids.items():
            assert listed[hid]["status"] == EXPECTED[name], name
        for wanted in ({"QUEUED"}, {"RUNNING"}, {"FAILED", "CANCELLED"}, {"COMPLETED"}):
            found = await _ids(api, statuses=sorted(wanted))
            assert set(found) == {h for h, row in listed.items() if row["status"] in wanted}, wanted
        assert set(await _ids(api, statuses="RUNNING", running_filter="EVICTED")) == {hids["waiting"]}
        assert hids["executing"] in await _ids(api, statuses="RUNNING", running_filter="ON_WORKER")
        children = {await _hid(api, c) for c in await api.app.get_children(ids["waiting"])}
        assert hids["child"] in children and got["waiting"]["tasks"][0]["numSpawnedChildren"] == len(children)
        assert set(await _ids(api, parent_task_external_id=hids["waiting"])) == children
    finally:
        release(api)
    assert set(NATIVE) == set(EXPECTED)


async def test_runs_list_filters_and_pages_as_the_sdk_sends_them(api: ApiNode) -> None:
    # Given runs of three jobs, with metadata, labels and idempotency keys, created over a known time
    before = _since(0.001)
    ids = {"a": await api.trigger("echo", 1, metadata={"team": "red"}, idempotency_key="k-a"),
           "b": await api.trigger("echo", 2, labels={"team": "blue"}, metadata={"tier": 1}),
           "c": await api.trigger("boom", 3, metadata={"team": "red", "tier": 1}),
           "d": await api.trigger("fatal", 4, idempotency_key="k-d"), "e": await api.trigger("echo", 5)}
    for run_id in ids.values():
        await api.wait_status(run_id)
    after = _since(-1)
    h = {k: await _hid(api, v) for k, v in ids.items()}

    async def found(**params: Any) -> set[str]:
        return set(await _ids(api, **params))

    # When the SDK pages through them two at a time, Then it meets each once, newest first
    paged = await _ids(api, limit=2)
    assert paged[:5] == [h[k] for k in "edcba"] and len(paged) == len(set(paged))
    first = await _list(api, limit=2)
    assert first["pagination"] == {"current_page": 1, "next_page": 2}
    last = await _list(api, limit=2, offset=4)
    assert last["pagination"] == {"current_page": 3, "num_pages": 3} and len(last["rows"]) == 1
    # (a page past the end counts the pages there are, not those up to it)
    beyond = await _list(api, limit=2, offset=10)
    assert beyond["pagination"] == {"current_page": 6, "num_pages": 3} and beyond["rows"] == []
    assert (await _list(api, limit=2, include_num_pages="false"))["pagination"]["num_pages"] == 0
    # And each filter selects what it says
    assert await found(workflow_ids=[hatchet_uuid("job", "boom"), hatchet_uuid("job", "fatal")]) == {h["c"], h["d"]}
    assert await found(additional_metadata=["team:red"]) == {h["a"], h["c"]}
    assert await found(additional_metadata=["team:blue", "tier:1"]) == {h["b"], h["c"]}
    assert await found(additional_metadata=["team:red", "tier:1"], additional_metadata_operator="AND") == {h["c"]}
    assert await found(idempotency_keys=["k-a", "k-d"]) == {h["a"], h["d"]}
    assert await found(statuses=["FAILED"]) == {h["c"], h["d"]}
    assert await found(since=before, until=after) == set(h.values())
    assert await found(since=after) == set() and await found(since=before, until=before) == set()
    assert await found(only_tasks="true") == await found(only_tasks="false") == set(h.values())
    assert await found(parent_task_external_id=str(uuid.uuid4())) == set()
    bare = await _list(api, include_payloads="false", limit=5)
    assert all(row["input"] == {} and row["output"] == {} for row in bare["rows"])
    # And what Baton cannot serve answers 400 in Baton's error shape, never a list that ignored it
    for name in ("worker_id", "triggering_event_external_id"):
        status, body = await api.call("GET", LIST, params={"since": before, name: str(uuid.uuid4())})
        assert status == 400 and body["code"] == "unsupported_parameter" and name in body["error"], body
        assert set(body) == {"error", "code", "request_id"}
    for params in ({}, {"since": "yesterday"}, {"since": before, "statuses": "PAUSED"},
                   {"since": before, "workflow_ids": "echo"}, {"since": before, "additional_metadata": "team"},
                   {"since": before, "running_filter": "SOME"}, {"since": before, "limit": "0"}):
        status, body = await api.call("GET", LIST, params=params)
        assert status == 400 and set(body) == {"error", "code", "request_id"}, (params, body)
    # And the ids the bulk calls by filter read are the same runs
    status, listed = await api.call("GET", LIST + "/external-ids", params={"since": before,
                                                                           "statuses": "COMPLETED"})
    assert status == 200 and listed == [h[k] for k in "eba"], listed


async def test_cancel_and_replay_by_ids_and_by_filter(api: ApiNode) -> None:
    # Given delayed runs, and finished ones
    since = _since(1)
    live = [await api.trigger("echo", {"n": i}, delay=60) for i in range(3)]
    tagged = await api.trigger("mail", {"n": 9}, delay=60, metadata={"batch": "x"})
    done = await api.trigger("echo", {"d": 1})
    await api.wait_status(done)
    cancel, replay = (f"/api/v1/stable/tenants/{TENANT}/tasks/{what}" for what in ("cancel", "replay"))
    h = {run_id: await _hid(api, run_id) for run_id in [*live, tagged, done]}
    # When two runs are canceled by id, with a finished run and an id no run has
    stray = str(uuid.uuid4())
    status, body = await api.call("POST", cancel, json={"externalIds": [h[live[0]], h[live[1]], h[done], stray]})
    # Then those two are canceled and named, the finished one is left as it is, the unknown one is not named
    assert status == 200 and sorted(body["ids"]) == sorted([h[live[0]], h[live[1]]]), body
    for run_id in live[:2]:
        assert (await api.run(run_id))["status"] == "canceled"
    assert (await api.run(done))["status"] == "completed" and (await api.run(live[2]))["status"] == "delayed"
    # When runs are canceled by a filter (queued ones with this metadata), Then only the one it selects is
    status, body = await api.call("POST", cancel, json={"filter": {
        "since": since, "statuses": ["QUEUED"], "additionalMetadata": ["batch:x"]}})
    assert status == 200 and body["ids"] == [h[tagged]], body
    assert (await api.run(tagged))["status"] == "canceled" and (await api.run(live[2]))["status"] == "delayed"
    # When a finished run is replayed by id (with a live one), Then a new run starts from it, named in the answer
    status, body = await api.call("POST", replay, json={"externalIds": [h[done], h[live[2]]]})
    assert status == 200 and len(body["ids"]) == 1 and body["ids"][0] != h[done], body
    status, again = await api.call("GET", f"/api/v1/stable/workflow-runs/{body['ids'][0]}")
    assert status == 200 and again["run"]["input"] == {"d": 1}, again
    new = await api.run(body["ids"][0])
    assert new["replay_of"] == done
    # When runs are replayed by a filter (canceled runs of job mail), Then the canceled mail run starts again
    status, body = await api.call("POST", replay, json={"filter": {
        "since": since, "statuses": ["CANCELLED"], "workflowIds": [hatchet_uuid("job", "mail")]}})
    assert status == 200 and len(body["ids"]) == 1, body
    assert (await api.run(body["ids"][0]))["replay_of"] == tagged
    # And a body with both or neither, or an id that is no UUID, answers 400 without acting
    for bad in ({}, {"externalIds": [h[live[2]]], "filter": {"since": since}}, {"externalIds": [live[2] + "x"]},
                {"filter": {"statuses": ["QUEUED"]}}, {"filter": {"since": since, "extra": 1}}):
        status, body = await api.call("POST", cancel, json=bad)
        assert status == 400 and set(body) == {"error", "code", "request_id"}, (bad, body)
    assert (await api.run(live[2]))["status"] == "delayed"
    # And another tenant's path answers 403, touching nothing
    for path in (cancel, replay):
        other = path.replace(TENANT, tenant_of("beta"))
        status, body = await api.call("POST", other, json={"externalIds": [h[live[2]]]})
        assert status == 403 and body["code"] == "wrong_project", body
    assert (await api.run(live[2]))["status"] == "delayed"


async def test_a_filter_selecting_too_many_runs_acts_on_none(api: ApiNode, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given more delayed runs than one cancel by filter may act on
    monkeypatch.setattr("runtime.api.handlers_hatchet.ACT_LIMIT", 2)
    ids = [await api.trigger("echo", i, delay=60) for i in range(3)]
    # When they are canceled by a filter, Then it answers 400 and cancels none
    status, body = await api.call("POST", f"/api/v1/stable/tenants/{TENANT}/tasks/cancel",
                                  json={"filter": {"since": _since()}})
    assert status == 400 and body["code"] == "too_many_runs", body
    assert {(await api.run(i))["status"] for i in ids} == {"delayed"}
    # (and a filter's bad time is a bad body, as any other bad value of it)
    status, body = await api.call("POST", f"/api/v1/stable/tenants/{TENANT}/tasks/cancel",
                                  json={"filter": {"since": "garbage"}})
    assert (status, body["code"]) == (400, "invalid_body") and "since" in body["error"], body


async def test_runs_create_triggers_a_run_of_the_job_answered_as_runs_get(api: ApiNode) -> None:
    trigger = f"/api/v1/stable/tenants/{TENANT}/workflow-runs/trigger"
    # When the SDK's runs.create posts a workflow (a Baton job), its input, metadata and priority
    body = {"workflowName": "echo", "input": {"n": 1}, "additionalMetadata": {"team": "x"}, "priority": 3}
    status, answer = await api.call("POST", trigger, json=body)
    # Then the answer is the new run as runs.get answers it (V1WorkflowRunDetails), its id one the API takes back
    assert status == 200, answer
    check_details(answer)
    assert answer["run"]["additionalMetadata"] == {"team": "x"} and answer["run"]["input"] == {"n": 1}
    run_id = answer["run"]["metadata"]["id"]
    status, got = await api.call("GET", f"/api/v1/stable/workflow-runs/{run_id}")
    assert status == 200 and got["run"]["metadata"]["id"] == run_id
    native = await api.wait_status(await _native_id(api, run_id))
    assert native["status"] == "completed" and native["output"] == {"n": 1} and native["priority"] == 3
    assert native["metadata"] == {"team": "x"} and native["project"] == "alpha"
    # And what it cannot make answers as Baton's API does: an unknown workflow 404, a bad body 400, another
    # tenant 403
    status, answer = await api.call("POST", trigger, json={"workflowName": "nope", "input": {}})
    assert (status, answer["code"]) == (404, "unknown_job"), answer
    for bad in ({"workflowName": "echo"}, {"workflowName": "echo", "input": [1]},
                {"workflowName": "echo", "input": {}, "priority": 9}, {"workflowName": "echo", "input": {}, "x": 1}):
        status, answer = await api.call("POST", trigger, json=bad)
        assert (status, answer["code"]) == (400, "invalid_body"), (bad, answer)
    status, answer = await api.call("POST", trigger.replace(TENANT, tenant_of("beta")), json=body)
    assert status == 403, answer


async def _native_id(api: ApiNode, hatchet_id: str) -> str:
    """Baton's id of the run a hatchet-view id names."""
    status, run = await api.call("GET", f"/v1/runs/{hatchet_id}")
    assert status == 200, run
    return str(run["id"])


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/stable/workflow-runs/{id}"), ("GET", "/api/v1/stable/workflow-runs/{id}/status"),
    ("GET", "/api/v1/stable/tasks/{id}"), ("GET", LIST), ("POST", f"/api/v1/stable/tenants/{TENANT}/tasks/cancel"),
    ("POST", f"/api/v1/stable/tenants/{TENANT}/tasks/replay"),
])
async def test_unknown_runs_answer_404_and_calls_without_a_key_401(api: ApiNode, method: str, path: str) -> None:
    # Given a run of project beta, unknown to project alpha
    theirs = await api.trigger("echo", 1, project="beta", delay=60)
    hid = str((await api.run(theirs, project="beta", view="hatchet"))["id"])
    body = {"externalIds": [hid]} if method == "POST" else None
    params = {"since": _since()} if path == LIST else None
    if "{id}" in path:
        # When alpha names it, or an id no run has, Then the answer is Baton's 404 JSON
        for run_id in (hid, str(uuid.uuid4())):
            status, answer = await api.call(method, path.format(id=run_id))
            assert status == 404 and answer["code"] == "not_found" and set(answer) == {"error", "code", "request_id"}
    elif method == "POST":
        # When alpha acts on it by id, Then nothing is acted on
        status, answer = await api.call(method, path, json=body)
        assert status == 200 and answer == {"ids": []}, answer
    # When the call carries no key, or a wrong one, Then it is 401 with the bearer challenge's error
    for headers in ({}, {"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30.x"}):
        status, answer = await api.call(method, path.format(id=hid), project=None, json=body, params=params,
                                        headers=headers)
        assert status == 401 and answer["code"] == "unauthorized", answer
    # And beta's key sees and acts on its own run (at its own tenant)
    status, answer = await api.call(method, path.format(id=hid).replace(TENANT, tenant_of("beta")), project="beta",
                                    json=body, params=params)
    assert status == 200, answer
    assert (await api.run(theirs, project="beta"))["status"] == ("canceled" if path.endswith("cancel") else "delayed")
