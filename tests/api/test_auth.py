"""Auth and errors: project-scoped bearer keys on every endpoint, JSON errors, size limits, dev keys."""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from actors.api import Api
from runtime import Baton, ConfigError, Settings
from runtime.api import ApiKeys, create_app, hash_key
from runtime.api.routes import ROUTES
from tests.api.conftest import ApiNode, Gates, define_jobs
from tests.nodes import running_node
from tests.servers import free_port

#: a valid body for each request schema (so only the project decides the answer)
BODIES: dict[str, Any] = {
    "RunIds": {"run_ids": ["RUN"]}, "DebugModeRequest": {"debug_mode": True}, "RescheduleRequest": {"delay": 1},
    "RestartRequest": {}, "DlqReplayRequest": {"run_ids": ["RUN"]}, "CancelAllRequest": {},
    "TriggerRequest": {"input": 1}, "BatchTriggerRequest": {"runs": [{"job": "echo"}]},
    "SendEventRequest": {"key": "k"}, "ScheduleRequest": {"job": "echo", "expression": "* * * * *"},
    "BackfillRequest": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:10:00Z"},
    "Limits": {"max_concurrency": 3}, "BulkActionRequest": {"action": "cancel", "filter": {"job": "echo"}},
    "SignalRequest": {"name": "go"}, "TokenData": {"approved": True},
    "WebhookRequest": {"url": "https://example.com/hook", "events": ["run.completed"]},
    "WebhookUpdate": {"description": "x"}, "SharedLimit": {"pool_size": 2}, "AdmissionRequest": {"max_queued": 5},
    "TriggerApiReplayRequest": {}, "TriggerApiRescheduleRequest": {"delay": "1h"},
    "TriggerApiTriggerRequest": {"payload": '{"json": 1}', "options": {"payloadType": "application/super+json"}},
    "TriggerApiBatchCreateRequest": {"runCount": 1}, "TriggerApiBatchItem": {"index": 0, "task": "echo"},
    "TriggerApiBatchTriggerRequest": {"items": [{"task": "echo"}]}, "TriggerApiWaitpointComplete": {"data": 1},
    "HatchetTaskRequest": {"externalIds": []}, "HatchetTriggerRequest": {"workflowName": "echo", "input": {}},
    "TriggerApiQueuePause": {"type": "custom", "action": "pause"}, "TriggerApiQueueConcurrency": {"type": "custom"},
    "TriggerApiIdempotencyReset": {"taskIdentifier": "echo"},
}


def path_of(route_path: str, run_id: str) -> str:
    return (route_path.replace("{run_id}", run_id).replace("{job}", "echo").replace("{task_id}", "echo")
            .replace("{queue}", "default").replace("{project_ref}", "proj_baton")
            .replace("{name}", "sched").replace("{node}", "node").replace("{key}", "k")
            .replace("{action_id}", "bulk_" + "0" * 20).replace("{token_id}", "wpt_" + "0" * 26)
            .replace("{webhook_id}", "wh_" + "0" * 20).replace("{delivery_id}", "dl_" + "0" * 20)
            .replace("{batch_id}", "batch_" + "0" * 20)
            .replace("{tenant}", "00000000-0000-0000-0000-000000000000"))


def body_of(name: str | None, run_id: str) -> Any:
    if name is None:
        return None
    return orjson.loads(orjson.dumps(BODIES[name]).replace(b"RUN", run_id.encode()))


async def test_every_v1_endpoint_needs_a_valid_bearer_key(api: ApiNode) -> None:
    # Given every authenticated route
    protected = [r for r in ROUTES if r.auth]
    assert len(protected) >= 30
    run_id = await api.trigger("echo", 1, delay=60)
    for route in protected:
        path = path_of(route.path, run_id)
        body = body_of(route.body, run_id)
        for headers in ({}, {"Authorization": "Bearer bk_wrong"}, {"Authorization": f"Basic {api.keys['alpha']}"},
                        {"Authorization": "Bearer"}):
            # When it is called without a key, with an unknown key or with another scheme
            status, err = await api.call(route.method, path, project=None, json=body, headers=headers)
            # Then it answers 401 with the JSON error shape, before looking at anything else
            assert status == 401, (route.method, path, headers, err)
            assert err["code"] == "unauthorized" and set(err) == {"error", "code", "request_id"}
    # And the run was not touched
    assert (await api.run(run_id))["status"] == "delayed"


async def test_no_endpoint_lets_one_project_see_or_touch_another_projects_runs(api: ApiNode) -> None:
    # Given runs of project alpha: a delayed one (with an idempotency key) and a dead-lettered one
    live = await api.trigger("echo", {"secret": 1}, delay=60, idempotency_key="alpha-key", tags=["mine"])
    dead = await api.trigger("boom", {"secret": 2})
    await api.wait_status(dead)
    before_live, before_dead = await api.run(live), await api.run(dead)
    run_routes = [r for r in ROUTES if "{run_id}" in r.path]
    assert len(run_routes) >= 23
    for run_id in (live, dead):
        for route in run_routes:
            # When project beta calls every run endpoint on them (also with the trigger view's run_ prefix)
            for rid in (run_id, f"run_{run_id}"):
                status, err = await api.call(route.method, path_of(route.path, rid), project="beta",
                                             json=body_of(route.body, rid))
                # Then each answers 404 not_found, exactly as for a run that does not exist
                assert (status, err["code"]) == (404, "not_found"), (route.method, route.path, status, err)
                assert run_id not in str({k: v for k, v in err.items() if k != "error"})
    # And the bulk endpoints report alpha's ids as failed, without touching them
    for path in ("/v1/runs/bulk-cancel", "/v1/runs/bulk-replay", "/v1/runs/bulk-dlq-replay"):
        status, body = await api.call("POST", path, project="beta", json={"run_ids": [live, dead]})
        assert status == 200 and body.get("canceled", body.get("count")) == 0, (path, body)
    status, body = await api.call("POST", "/v1/runs/bulk-cancel-all", project="beta", json={})
    assert status == 200 and body["total"] == 0
    status, body = await api.call("POST", "/v1/runs/bulk-dlq-replay", project="beta", json={})
    assert status == 200 and body["count"] == 0
    # And beta's lists never show them
    for path in ("/v1/runs", "/v1/runs/dlq"):
        status, page = await api.call("GET", path, project="beta")
        assert status == 200 and not {live, dead} & {r["id"] for r in page["data"]}
    # And beta's trigger with alpha's idempotency key or alpha's run id creates or reveals nothing of alpha's
    status, created = await api.call("POST", "/v1/jobs/echo/trigger", project="beta",
                                     json={"input": 3, "idempotency_key": "alpha-key"})
    assert status == 201 and created["id"] != live
    status, created = await api.call("POST", "/v1/jobs/echo/trigger", project="beta", json={"id": live})
    assert status == 201 and created["created"] and created["id"] == f"beta:{live}", created
    status, batch = await api.call("POST", "/v1/runs/batch", project="beta", json={"runs": [{"job": "echo",
                                                                                              "id": dead}]})
    assert status == 201 and batch["runs"][0]["outcome"] == "created", batch
    # And alpha's runs are exactly as they were
    after_live, after_dead = await api.run(live), await api.run(dead)
    for before, after in ((before_live, after_live), (before_dead, after_dead)):
        assert {k: v for k, v in after.items() if k != "updated_at"} == \
            {k: v for k, v in before.items() if k != "updated_at"}


async def test_errors_are_json_with_request_ids(api: ApiNode) -> None:
    # When a request names its own request id and asks for a missing run
    async with api.http.get(api.url + "/v1/runs/missing", headers={**api.auth(), "X-Request-Id": "req-42"}) as resp:
        body = await resp.json()
        # Then the error carries it, in the body and the header
        assert resp.status == 404 and body == {"error": "run missing not found", "code": "not_found",
                                               "request_id": "req-42"}
        assert resp.headers["X-Request-Id"] == "req-42"
    # And unknown routes, wrong methods and bad JSON get JSON errors too (with fresh request ids)
    status, body = await api.call("GET", "/v1/nothing-here")
    assert status == 404 and body["code"] == "route_not_found" and re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    async with api.http.put(api.url + "/v1/runs", headers=api.auth()) as resp:
        assert resp.status == 405 and (await resp.json())["code"] == "method_not_allowed"
        assert "GET" in resp.headers["Allow"]
    status, body = await api.call("POST", "/v1/events", data=b"{not json", headers={"Content-Type":
                                                                                     "application/json"})
    assert status == 400 and body["code"] == "invalid_json"
    # (a whitespace-only body is not JSON either, even where the body is optional)
    status, body = await api.call("POST", "/v1/runs/bulk-dlq-replay", data=b"\n",
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and body["code"] == "invalid_json"


async def test_bodies_over_the_limit_are_refused_with_413(make_app: Any, api_keys: dict[str, str]) -> None:
    # Given a node whose API accepts bodies of at most 2 KiB
    port = free_port()
    app = make_app(api_port=port, api_host="127.0.0.1", max_body_bytes=2048,
                   api_keys=f"alpha:{hash_key(api_keys['alpha'])}")
    define_jobs(app, Gates())
    async with running_node(app) as node, aiohttp.ClientSession() as http:
        assert node.api is not None
        await node.api.listening.wait()
        headers = {"Authorization": f"Bearer {api_keys['alpha']}"}
        url = f"http://127.0.0.1:{port}/v1/jobs/echo/trigger"
        # When a body of 4 KiB is posted (with a Content-Length, then chunked without one)
        big = b'{"input": "' + b"x" * 4096 + b'"}'
        async with http.post(url, data=big, headers={**headers, "Content-Type": "application/json"}) as resp:
            first = (resp.status, await resp.json())

        async def chunks() -> Any:
            for i in range(0, len(big), 512):
                yield big[i:i + 512]

        async with http.post(url, data=chunks(), headers={**headers, "Content-Type": "application/json"}) as resp:
            second = (resp.status, await resp.json())
        # Then both are refused with 413 and nothing is created, while a small body passes
        async with http.post(url, json={"input": 1}, headers=headers) as resp:
            small = resp.status
    assert first[0] == 413 and first[1]["code"] == "body_too_large"
    assert second[0] == 413 and second[1]["code"] == "body_too_large"
    assert small == 201


async def test_internal_errors_are_500_without_details(api: ApiNode, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    # Given a bug in a code path
    async def broken(run_id: str) -> None:
        raise ValueError("secret internal detail")

    monkeypatch.setattr(api.app, "get_run", broken)
    # When it is reached
    with caplog.at_level(logging.ERROR, logger="baton.api"):
        status, body = await api.call("GET", "/v1/runs/x", headers={"X-Request-Id": "bug-1"})
    # Then the caller gets a 500 JSON error without the detail, and the log has it under the request id
    assert status == 500 and body["code"] == "internal_error" and "secret" not in body["error"]
    assert any("bug-1" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_redis_unavailable_is_503(settings: Settings) -> None:
    # Given an API whose Redis is not reachable (a port nothing listens on)
    key = "k" * 24
    dead = settings.with_changes(redis_url=f"redis://127.0.0.1:{free_port()}", api_keys=f"alpha:{hash_key(key)}")
    baton = Baton(dead)
    async with TestClient(TestServer(create_app(baton))) as client:
        # When runs are listed and readiness is asked
        resp = await client.get("/v1/runs", headers={"Authorization": f"Bearer {key}"})
        ready = await client.get("/ready")
        # Then the API answers 503 (JSON) instead of failing
        assert resp.status == 503 and (await resp.json())["code"] == "unavailable"
        assert ready.status == 503 and (await ready.json())["redis"] is False
    await baton.close()


def test_keys_are_stored_hashed_and_compared_per_project() -> None:
    # Given settings with the hashes of two keys
    a, b = "bk_" + "a" * 30, "bk_" + "b" * 30
    keys = ApiKeys.from_settings(Settings(api_keys=f"alpha:{hash_key(a)}, beta:{hash_key(b).upper()}"))
    # Then each key maps to its project, anything else to nothing, and no plaintext is kept
    assert (keys.project_of(a), keys.project_of(b), keys.project_of("bk_other")) == ("alpha", "beta", None)
    assert a not in repr(keys) and b not in repr(keys)
    assert ApiKeys.bearer("Bearer xyz") == "xyz" and ApiKeys.bearer("Basic xyz") is None
    # And malformed entries are configuration errors
    for bad in ("alpha", "alpha:1234", "Alpha!:" + "0" * 64, ":" + "0" * 64):
        with pytest.raises(ConfigError):
            ApiKeys.from_settings(Settings(api_keys=bad))


async def test_keys_never_appear_in_logs(api: ApiNode, caplog: pytest.LogCaptureFixture) -> None:
    # Given every log record captured
    with caplog.at_level(logging.DEBUG):
        # When requests with good and bad keys are made, and one fails
        await api.call("GET", "/v1/runs")
        await api.call("GET", "/v1/runs/missing")
        await api.call("GET", "/v1/runs", headers={"Authorization": "Bearer bk_wrong_key_value"})
    # Then no key appears in any log line (access log included)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /v1/runs" in text  # the access log did record the requests
    assert api.keys["alpha"] not in text and "bk_wrong_key_value" not in text


def test_dev_key_is_generated_for_the_default_project_and_printed_once(settings: Settings,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    # Given a node in dev mode
    api = Api(Baton(settings.with_changes(api_dev_key="auto", api_port=1)))
    key = api.keys.generated_dev_key
    # Then a fresh key of project default is accepted
    assert key and api.keys.project_of(key) == "default"
    # And it is printed once, however often the actor restarts
    with caplog.at_level(logging.WARNING, logger="baton.api"):
        api._announce()
        api._announce()
    assert [r for r in caplog.records if key in r.getMessage()] and \
        len([r for r in caplog.records if key in r.getMessage()]) == 1
    # And a fixed dev key must be long enough
    with pytest.raises(ConfigError):
        ApiKeys.from_settings(settings.with_changes(api_dev_key="short"))


async def test_chosen_run_ids_live_in_their_project_and_cannot_probe_another(api: ApiNode) -> None:
    # Given a run whose id project alpha chose, and one the default project chose
    status, mine = await api.call("POST", "/v1/jobs/echo/trigger", json={"id": "order-1", "input": "alpha's"})
    assert status == 201 and mine["id"] == "alpha:order-1", mine
    status, shared = await api.call("POST", "/v1/jobs/echo/trigger", project="default",
                                    json={"id": "order-2", "input": "default's"})
    assert status == 201 and shared["id"] == "order-2", shared

    async def answers(project: str, chosen: str) -> list[tuple[int, str, str | None]]:
        """What a project learns from a trigger and a GET of an id: status, code/outcome, input it sees."""
        out = []
        status, body = await api.call("POST", "/v1/jobs/echo/trigger", project=project,
                                      json={"id": chosen, "input": "probe"})
        out.append((status, body.get("code") or body.get("outcome"), (body.get("run") or {}).get("input")))
        status, body = await api.call("GET", f"/v1/runs/{chosen}", project=project)
        out.append((status, body.get("code") or "found", body.get("input")))
        return out

    # When beta and default (and alpha, for default's id) try the taken ids, in both their forms, and ids
    # nobody has taken
    for project, taken, free in (("beta", "order-1", "order-9"), ("beta", "alpha:order-1", "alpha:order-9"),
                                 ("beta", "order-2", "order-8"), ("alpha", "order-2", "order-7"),
                                 ("default", "alpha:order-1", "alpha:order-6")):
        # Then each answers exactly as for an id nobody has: the owner's run is neither reached nor revealed
        assert await answers(project, taken) == await answers(project, free), (project, taken)
    # And the owners still see their own runs under both forms of the id, untouched
    for project, given, full, value in (("alpha", "order-1", "alpha:order-1", "alpha's"),
                                        ("alpha", "alpha:order-1", "alpha:order-1", "alpha's"),
                                        ("default", "order-2", "order-2", "default's")):
        run = await api.run(given, project)
        assert (run["id"], run["input"]) == (full, value)
    # And choosing an id again in one's own project is idempotent (the existing run, not a conflict)
    status, again = await api.call("POST", "/v1/jobs/echo/trigger", json={"id": "order-1", "input": "again"})
    assert status == 200 and again["outcome"] == "existing" and again["run"]["input"] == "alpha's"
