"""Outgoing webhooks end to end: registration over the API, signed deliveries to a local HTTP server,
retries after 500s, the dead-letter list, redelivery, and clear 4xx for bad registrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from runtime.webhooks import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.api.conftest import ApiNode, serving
from tests.api.test_cli import baton
from tests.nodes import eventually
from tests.servers import free_port


@dataclass
class Receiver:
    """A local endpoint: records every request, answers the next status in ``plan`` (then 200)."""

    url: str
    plan: dict[str, list[int]] = field(default_factory=dict)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    hanging: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def bodies(self, path: str, status: int = 200) -> list[dict[str, Any]]:
        return [orjson.loads(b) for p, h, b in self.received if p == path and h["answered"] == str(status)]


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}")

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/hang":  # an endpoint that never answers in time
            rec.hanging += 1
            await rec.release.wait()
        plan = rec.plan.get(request.path, [])
        status = plan.pop(0) if plan else 200
        rec.received.append((request.path, {**request.headers, "answered": str(status)}, await request.read()))
        return web.Response(status=status, text="nope" if status >= 300 else "ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield rec
    finally:
        rec.release.set()
        await runner.cleanup()


async def _register(api: ApiNode, url: str, events: list[str], project: str = "alpha", **extra: Any) -> dict[str, Any]:
    status, body = await api.call("POST", "/v1/webhooks", project, json={"url": url, "events": events, **extra})
    assert status == 201, body
    return dict(body)


async def _deliveries(api: ApiNode, hook_id: str, **params: Any) -> list[dict[str, Any]]:
    status, body = await api.call("GET", f"/v1/webhooks/{hook_id}/deliveries", params=params)
    assert status == 200, body
    return list(body["data"])


async def test_bad_registrations_get_clear_4xx(make_app: Any, api_keys: dict[str, str]) -> None:
    async with serving(make_app, api_keys) as api:
        cases = [
            ({"url": "ftp://example.com/x", "events": ["run.completed"]}, "invalid_body"),
            ({"url": "not a url", "events": ["run.completed"]}, "invalid_body"),
            ({"url": "http://example.com/x", "events": ["run.finished"]}, "invalid_body"),
            ({"url": "http://example.com/x", "events": []}, "invalid_body"),
            ({"url": "http://example.com/x", "events": ["run.completed"], "secret": "short"}, "invalid_body"),
        ]
        for body, code in cases:
            status, answer = await api.call("POST", "/v1/webhooks", json=body)
            assert (status, answer["code"]) == (400, code), (body, answer)
        # each says what is wrong, and where
        assert "body.url" in (await api.call("POST", "/v1/webhooks", json=cases[0][0]))[1]["error"]
        unknown = (await api.call("POST", "/v1/webhooks", json=cases[2][0]))[1]["error"]
        assert "body.events[0]" in unknown and "'run.finished' is not one of" in unknown
        # and a webhook of another project is not there for this one
        hook = await _register(api, "http://example.com/x", ["run.completed"], project="beta")
        status, answer = await api.call("GET", f"/v1/webhooks/{hook['id']}")
        assert (status, answer["code"]) == (404, "not_found")
        assert (await api.call("GET", "/v1/webhooks"))[1]["data"] == []
        # nothing bad was stored
        assert [h["id"] for h in (await api.call("GET", "/v1/webhooks", "beta"))[1]["data"]] == [hook["id"]]


async def test_signed_deliveries_retry_dead_letter_and_redeliver(make_app: Any, api_keys: dict[str, str]) -> None:
    async with receiver() as rec, serving(make_app, api_keys, webhook_backoff_ms=30, webhook_max_attempts=3) as api:
        # Given two webhooks of project alpha: one that fails twice before answering 200, one always down
        flaky = await _register(api, rec.url + "/flaky", ["run.completed", "run.failed"],
                                secret="s" * 20 + "-flaky")
        down = await _register(api, rec.url + "/down", ["run.completed"])
        rec.plan["/flaky"] = [500, 500]
        rec.plan["/down"] = [500] * 3
        assert flaky["secret"] == "s" * 20 + "-flaky" and down["secret"].startswith("whsec_")
        listed = (await api.call("GET", "/v1/webhooks"))[1]["data"]
        assert {h["id"] for h in listed} == {flaky["id"], down["id"]} and "secret" not in listed[0]
        # When a run of alpha completes, one fails for good, and a run of beta completes
        ok = await api.trigger("echo", {"x": 1})
        bad = await api.trigger("fatal", None)
        other = await api.trigger("echo", {"x": 2}, project="beta")
        for run_id, project in ((ok, "alpha"), (bad, "alpha"), (other, "beta")):
            await api.wait_status(run_id, project=project)
        # Then the flaky endpoint gets both outcomes after two 500s, signed
        delivered = await eventually(lambda: len(rec.bodies("/flaky")) >= 2 and rec.bodies("/flaky"), timeout=15)
        assert sorted((b["type"], b["data"]["id"]) for b in delivered) == [("run.completed", ok), ("run.failed", bad)]
        completed = next(b for b in delivered if b["type"] == "run.completed")
        assert completed["data"]["output"] == {"x": 1} and completed["project"] == "alpha"
        for path, headers, body in rec.received:
            if path == "/flaky":
                assert verify(flaky["secret"], body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])
                assert not verify(flaky["secret"], body + b" ", headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])
                assert not verify(flaky["secret"], body, str(int(headers[TIMESTAMP_HEADER]) - 600),
                                  headers[SIGNATURE_HEADER])
        # and beta's run went to no alpha webhook; the deliveries list shows attempts and status
        assert all(b["data"]["id"] != other for p, _, raw in rec.received for b in [orjson.loads(raw)])
        flaky_list = await eventually(lambda: _all_delivered(api, flaky["id"]))
        # (two 500s and two successes, whichever delivery met the 500s)
        assert sum(d["attempts"] for d in flaky_list) == 4 and len(flaky_list) == 2
        # And the endpoint that is down has its delivery dead-lettered after 3 attempts, with the last error
        dead = await eventually(lambda: _deliveries(api, down["id"], status="dead_letter"), timeout=15)
        assert len(dead) == 1 and dead[0]["attempts"] == 3 and dead[0]["run_id"] == ok
        assert dead[0]["last_status_code"] == 500 and "HTTP 500" in dead[0]["last_error"]
        assert len([p for p, _, _ in rec.received if p == "/down"]) == 3
        # When it is redelivered (the endpoint is back)
        status, again = await api.call(
            "POST", f"/v1/webhooks/{down['id']}/deliveries/{dead[0]['id']}/redeliver")
        assert status == 202 and again["status"] == "pending"
        # Then it arrives, with the same delivery id
        await eventually(lambda: rec.bodies("/down"))
        assert rec.bodies("/down")[0]["id"] == dead[0]["id"]
        ids = {h[ID_HEADER] for p, h, _ in rec.received if p == "/down"}
        assert ids == {dead[0]["id"]}
        await eventually(lambda: _all_delivered(api, down["id"]))
        # and a delivery of another webhook cannot be redelivered through this one
        status, answer = await api.call(
            "POST", f"/v1/webhooks/{down['id']}/deliveries/{flaky_list[0]['id']}/redeliver")
        assert (status, answer["code"]) == (404, "not_found")
        # A deleted webhook is gone
        assert (await api.call("DELETE", f"/v1/webhooks/{down['id']}"))[0] == 200
        assert (await api.call("GET", f"/v1/webhooks/{down['id']}"))[0] == 404
        status, changed = await api.call("PATCH", f"/v1/webhooks/{flaky['id']}", json={"events": ["run.canceled"]})
        assert status == 200 and changed["events"] == ["run.canceled"]
        # and a canceled run (made terminal by the cancel script, not by a worker) is reported too
        later = await api.trigger("echo", {"x": 3}, delay=60)
        assert (await api.call("DELETE", f"/v1/runs/{later}"))[0] in (200, 202)
        canceled = await eventually(lambda: [b for b in rec.bodies("/flaky") if b["type"] == "run.canceled"])
        assert [b["data"]["id"] for b in canceled] == [later] and canceled[0]["data"]["status"] == "canceled"


async def _all_delivered(api: ApiNode, hook_id: str) -> list[dict[str, Any]] | None:
    found = await _deliveries(api, hook_id)
    return found if found and all(d["status"] == "delivered" for d in found) else None


async def test_cli_registers_webhooks_and_lists_deliveries(api: ApiNode) -> None:
    # When a webhook is added from the shell
    code, out, err = await baton(api, "webhooks", "add", "http://127.0.0.1:9/hook", "--events",
                                 "run.completed,run.dead_lettered")
    # Then it prints its id and the secret, once
    assert code == 0, err
    hook_id = out.split()[1]
    assert "signing secret (shown only now): whsec_" in out
    assert [h["id"] for h in (await api.call("GET", "/v1/webhooks"))[1]["data"]] == [hook_id]
    code, out, err = await baton(api, "webhooks", "deliveries", hook_id)
    assert code == 0 and out.split()[:3] == ["ID", "EVENT", "RUN"]
    # And a bad registration is one line on stderr, exit 1, naming what is wrong
    code, out, err = await baton(api, "webhooks", "add", "http://127.0.0.1:9/hook", "--events", "run.finished")
    assert code == 1 and err.count("\n") == 1 and "run.finished" in err and "Traceback" not in err
    assert [h["id"] for h in (await api.call("GET", "/v1/webhooks"))[1]["data"]] == [hook_id]


async def test_an_endpoint_that_hangs_never_slows_runs(make_app: Any, api_keys: dict[str, str]) -> None:
    async with receiver() as rec, serving(make_app, api_keys, webhook_timeout_s=1, webhook_concurrency=2) as api:
        # Given a webhook whose endpoint takes every request and never answers, holding every delivery slot
        hook = await _register(api, rec.url + "/hang", ["run.completed"])
        await api.wait_status(await api.trigger("echo", {"i": -1}), "completed")
        await api.wait_status(await api.trigger("echo", {"i": -2}), "completed")
        await eventually(lambda: rec.hanging >= 2)
        # When many runs complete while those deliveries hang
        ids = [await api.trigger("echo", {"i": i}) for i in range(20)]
        for run_id in ids:
            await api.wait_status(run_id, "completed")
        # Then they all finished while their deliveries wait behind the endpoint, none delivered
        waiting = await eventually(lambda: _pending(api, hook["id"], 22), timeout=15)
        assert {d["status"] for d in waiting} == {"pending"}
        # and each hanging attempt fails on the delivery's own timeout, to be retried
        failed = await eventually(lambda: _attempted(api, hook["id"]), timeout=15)
        assert "TimeoutError" in failed[0]["last_error"] and failed[0]["status"] == "pending"


async def _attempted(api: ApiNode, hook_id: str) -> list[dict[str, Any]] | None:
    found = [d for d in await _deliveries(api, hook_id) if d["attempts"] >= 1]
    return found or None


async def _pending(api: ApiNode, hook_id: str, n: int) -> list[dict[str, Any]] | None:
    found = await _deliveries(api, hook_id)
    return found if len(found) >= n else None
