"""Signals, queries and waitpoint tokens over HTTP and the CLI, with bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from runtime import RunContext, WaitTimeout
from tests.api.conftest import ApiNode, Gates, define_jobs
from tests.api.test_cli import baton
from tests.nodes import api_settings, serving_api


@pytest.fixture
async def api(make_app: Any, api_keys: dict[str, str]) -> AsyncIterator[ApiNode]:
    """A node serving the API, with jobs that wait for signals and tokens, on four partitions."""
    app = make_app(**api_settings(api_keys), partitions=4, signal_buffer_max=2, token_secret="t0ken-secret",
                   api_public_url="https://baton.example.com/")

    @app.job()
    async def approval(ctx: RunContext, payload: Any) -> Any:
        await ctx.set_state({"stage": "asked"})
        return await ctx.wait_for_signal("decision", timeout=60)

    @app.job()
    async def review(ctx: RunContext, payload: Any) -> Any:
        token = await ctx.create_token(timeout=60, tags=["review", str(payload)])
        await ctx.set_state({"token": token.id, "url": token.url})
        try:
            return await ctx.wait_for_token(token)
        except WaitTimeout:
            return "expired"

    define_jobs(app, Gates())
    async with serving_api(app) as (node, url, http):
        yield ApiNode(app, node, url, api_keys, http, Gates())


async def test_signal_and_query_a_run(api: ApiNode) -> None:
    # Given a run that published its state and waits for a signal
    run_id = await api.trigger("approval")
    await api.wait_status(run_id, "waiting")
    # When its state is queried
    status, body = await api.call("GET", f"/v1/runs/{run_id}/query")
    assert status == 200 and body["run_id"] == run_id and body["state"] == {"stage": "asked"}
    assert body["updated_at"].endswith("Z")
    status, deps = await api.call("GET", f"/v1/runs/{run_id}/dependency-status")
    assert status == 200 and deps["waiting_for"]["kind"] == "signal" and not deps["dependencies_satisfied"]
    assert [d["condition"] for d in deps["dependencies"]] == ["signal decision"]
    # and bad signals are sent
    for bad, code in (({"name": "no spaces"}, "invalid_body"), ({"data": 1}, "invalid_body"),
                      ({"name": "x", "extra": 1}, "invalid_body"),
                      ({"name": "x", "data": "y" * (600 * 1024)}, "too_large")):
        status, err = await api.call("POST", f"/v1/runs/{run_id}/signals", json=bad)
        assert (status, err["code"]) == (400, code), (bad, err)
    status, err = await api.call("POST", f"/v1/runs/{run_id}/signals", data=b"{not json",
                                 headers={"Content-Type": "application/json"})
    assert (status, err["code"]) == (400, "invalid_json")
    # and another project's key, or an unknown run
    for path, project in ((f"/v1/runs/{run_id}/signals", "beta"), ("/v1/runs/nope/signals", "alpha")):
        status, err = await api.call("POST", path, project, json={"name": "decision"})
        assert (status, err["code"]) == (404, "not_found")
    status, _ = await api.call("GET", f"/v1/runs/{run_id}/query", "beta")
    assert status == 404
    # Then nothing of that reached the run: it still waits; two signals of another name are kept, a third refused
    for i in (1, 2):
        status, body = await api.call("POST", f"/v1/runs/{run_id}/signals", json={"name": "later", "data": i})
        assert status == 200 and body["delivered"] is False
    status, err = await api.call("POST", f"/v1/runs/{run_id}/signals", json={"name": "later", "data": 3})
    assert (status, err["code"]) == (409, "signal_buffer_full")
    # When the signal it waits for is sent with the CLI
    code, out, err = await baton(api, "runs", "signal", run_id, "decision", "--data", '{"ok": true}')
    assert code == 0 and "resumes" in out, err
    # Then it completes with the data; a finished run refuses signals
    done = await api.wait_status(run_id)
    assert done["status"] == "completed" and done["output"] == {"ok": True}
    status, err = await api.call("POST", f"/v1/runs/{run_id}/signals", json={"name": "decision"})
    assert (status, err["code"]) == (409, "already_finished")
    code, out, err = await baton(api, "runs", "query", run_id, "--json")
    assert code == 0 and orjson.loads(out)["state"] == {"stage": "asked"}, err


async def test_tokens_list_complete_by_callback_once_and_expire(api: ApiNode) -> None:
    # Given two runs waiting for their tokens
    first, second = await api.trigger("review", "a"), await api.trigger("review", "b")
    tokens = {}
    for run_id in (first, second):
        await api.wait_status(run_id, "waiting")
        status, body = await api.call("GET", f"/v1/runs/{run_id}/query")
        tokens[run_id] = body["state"]
    url = tokens[first]["url"]
    assert url.startswith("https://baton.example.com/v1/tokens/") and "//v1" not in url
    first_token, second_token = tokens[first]["token"], tokens[second]["token"]
    # When tokens are listed, filtered by status and tags (the CLI's table too)
    status, body = await api.call("GET", "/v1/tokens", params={"status": "waiting", "tags": "review,a"})
    assert status == 200 and [t["id"] for t in body["data"]] == [first_token]
    status, body = await api.call("GET", "/v1/tokens", params={"status": "completed"})
    assert status == 200 and body["data"] == []
    status, body = await api.call("GET", "/v1/tokens", "beta")
    assert status == 200 and body["data"] == []  # another project's tokens are not listed
    code, out, err = await baton(api, "tokens", "ls", "--tag", "b")
    assert code == 0 and out.splitlines()[1].split()[:3] == [second_token, "waiting", second], err
    # and bad requests are refused
    status, err = await api.call("GET", "/v1/tokens", params={"status": "maybe"})
    assert (status, err["code"]) == (400, "invalid_parameter")
    status, err = await api.call("GET", "/v1/tokens/not-a-token")
    assert (status, err["code"]) == (400, "invalid_parameter")
    status, err = await api.call("GET", "/v1/tokens/wpt_" + "0" * 26)
    assert (status, err["code"]) == (404, "not_found")
    status, err = await api.call("POST", f"/v1/tokens/{first_token}/complete", "beta", json={"x": 1})
    assert (status, err["code"]) == (404, "not_found")
    path = urlsplit(url).path
    forged = path[:-64] + "0" * 64
    status, err = await api.call("POST", forged, None, json={"approved": True})
    assert (status, err["code"]) == (403, "bad_signature")
    # When the first is completed through its callback URL, without an API key
    status, body = await api.call("POST", path, None, json={"approved": True})
    assert status == 200 and body == {"id": first_token, "status": "completed", "run_id": first, "resumed": True}
    # Then its run resumes with the body, and the token settles only once
    assert (await api.wait_status(first))["output"] == {"approved": True}
    status, err = await api.call("POST", path, None, json={"approved": False})
    assert (status, err["code"]) == (409, "already_completed")
    status, err = await api.call("POST", f"/v1/tokens/{first_token}/expire")
    assert (status, err["code"]) == (409, "already_completed")
    status, token = await api.call("GET", f"/v1/tokens/{first_token}")
    assert status == 200 and token["status"] == "completed" and token["settled_by"] == "callback"
    # When the second is expired by hand
    code, out, err = await baton(api, "tokens", "expire", second_token)
    assert code == 0, err
    # Then its run's wait timed out, and completing it now is too late
    assert (await api.wait_status(second))["output"] == "expired"
    status, err = await api.call("POST", f"/v1/tokens/{second_token}/complete", json=1)
    assert (status, err["code"]) == (410, "token_expired")


async def test_trigger_dev_token_calls_serve_the_tokens_runs_made(api: ApiNode) -> None:
    # Given two runs waiting for the tokens they made (the SDK's wait.* calls, from a backend)
    first, second = await api.trigger("review", "a"), await api.trigger("review", "b")
    tokens = {}
    for run_id in (first, second):
        await api.wait_status(run_id, "waiting")
        tokens[run_id] = (await api.call("GET", f"/v1/runs/{run_id}/query"))[1]["state"]["token"]
    # When wait.listTokens lists the waiting ones with a tag, Then it finds that run's, newest first
    status, page = await api.call("GET", "/api/v1/waitpoints/tokens",
                                  params={"filter[status]": "WAITING", "filter[tags]": "a", "page[size]": "10"})
    assert status == 200 and [t["id"] for t in page["data"]] == [tokens[first]] and page["pagination"] == {}, page
    item = page["data"][0]
    assert item["status"] == "WAITING" and item["url"].startswith("https://") and "review" in item["tags"], item
    assert {"createdAt", "timeoutAt"} <= set(item) and "completedAt" not in item
    # When wait.completeToken completes it, Then the run resumes with the data, and retrieve shows the output
    status, done = await api.call("POST", f"/api/v1/waitpoints/tokens/{tokens[first]}/complete",
                                  json={"data": {"approved": True}})
    assert status == 200 and done == {"success": True}, done
    assert (await api.wait_status(first))["output"] == {"approved": True}
    status, got = await api.call("GET", f"/api/v1/waitpoints/tokens/{tokens[first]}")
    assert status == 200 and got["status"] == "COMPLETED" and orjson.loads(got["output"]) == {"approved": True}, got
    assert got["outputType"] == "application/json" and got["outputIsError"] is False and "completedAt" in got
    # And a second completion is 409, another project's token 404, and what Baton cannot serve says so
    status, err = await api.call("POST", f"/api/v1/waitpoints/tokens/{tokens[first]}/complete", json={})
    assert (status, err["code"]) == (409, "already_completed"), err
    status, err = await api.call("GET", f"/api/v1/waitpoints/tokens/{tokens[second]}", "beta")
    assert (status, err["code"]) == (404, "not_found"), err
    status, err = await api.call("POST", "/api/v1/waitpoints/tokens", json={"timeout": "1h"})
    assert (status, err["code"]) == (400, "unsupported_operation") and "ctx.create_token" in err["error"], err
    for refused in ({"filter[idempotencyKey]": "k"}, {"page[after]": "x"}):
        status, err = await api.call("GET", "/api/v1/waitpoints/tokens", params=refused)
        assert (status, err["code"]) == (400, "unsupported_parameter"), (refused, err)
    # And the listing by status and period sees the completed one, not the waiting one
    status, page = await api.call("GET", "/api/v1/waitpoints/tokens",
                                  params={"filter[status]": "COMPLETED", "filter[createdAt][period]": "1h"})
    assert [t["id"] for t in page["data"]] == [tokens[first]], page
