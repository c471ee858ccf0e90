"""The OpenAPI document: generated from the route table, committed, served, and checked against the live
server by schemathesis (no 5xx, every response as documented)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator, FormatChecker
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.core.parameters import ParameterLocation

from runtime import Baton, Settings
from runtime.api import hash_key, new_key
from runtime.api.media import media_type
from runtime.api.openapi import COMMITTED, document, render_document
from runtime.api.routes import ROUTES
from runtime.api.routing import component
from runtime.api.schemas import VIEW_RUN
from runtime.api.ui import UI_ROUTES
from runtime.api.views import VIEWS, status_words
from tests.api.conftest import ApiNode, Gates, define_jobs
from tests.nodes import running_node
from tests.servers import RedisProcess, free_port


def test_committed_document_is_the_generated_one() -> None:
    # Given the document generated from the route table
    generated = render_document()
    # Then the committed file is byte for byte the same (regenerate: python -m runtime.api.openapi)
    assert COMMITTED.read_bytes() == generated, "runtime/api/openapi.json is stale: python -m runtime.api.openapi"


def test_document_covers_every_route_with_auth_and_errors() -> None:
    # Given the document
    doc = document()
    # Then it is OpenAPI 3.1 with one operation per route, each with a unique operationId
    assert doc["openapi"] == "3.1.0"
    operations = [(path, method) for path, item in doc["paths"].items() for method in item]
    assert sorted(operations) == sorted((r.path, r.method.lower()) for r in ROUTES)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    # And every /v1 operation (and every /api one, Trigger.dev's paths) needs the bearer key and documents 401
    # and the error shape, but a waitpoint token's callback URL, which its signature authorises (403 otherwise)
    for path, item in doc["paths"].items():
        for op in item.values():
            if op["operationId"] == "tokenCallback":
                assert op["security"] == [] and "403" in op["responses"]
            elif path.startswith(("/v1", "/api/")):
                assert "security" not in op and "401" in op["responses"], (path, op["operationId"])
            else:
                assert op["security"] == []
            assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}


async def test_served_document_is_the_generated_one(api: ApiNode) -> None:
    # When /openapi.json is fetched without a key
    status, served = await api.call("GET", "/openapi.json", project=None)
    # Then it is the generated document
    assert status == 200 and served == orjson.loads(render_document())
    # And every route the server has is in it, and nothing else but the dashboard's own routes and HEAD
    # beside each GET that is no event stream (HTTP's own: not an operation of its own)
    assert api.node.api is not None
    served_routes = [*((r.method, r.path, r.media_type) for r in ROUTES),
                     *((method, path, "") for method, path, _h, _n in UI_ROUTES)]
    heads = [("HEAD", path) for method, path, media in served_routes
             if method == "GET" and media != "text/event-stream"]
    assert sorted(api.node.api.routes) == sorted([*((m, p) for m, p, _ in served_routes), *heads])


class ThreadedNode:
    """A node with its API in its own thread and event loop (schemathesis calls it synchronously)."""

    def __init__(self, redis_url: str) -> None:
        self.key = new_key()
        self.port = free_port()
        self.settings = Settings(
            redis_url=redis_url, prefix=f"st{uuid.uuid4().hex[:10]}", concurrency=10, lease_ttl_ms=2000,
            renew_interval_ms=500, reap_interval_ms=200, metrics_port=0, shutdown_grace_s=2, api_port=self.port,
            api_host="127.0.0.1", api_keys=f"alpha:{hash_key(self.key)}",
        )
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="api-node", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        app = Baton(self.settings)
        gates = Gates()
        define_jobs(app, gates)
        async with running_node(app) as node:
            assert node.api is not None
            await node.api.listening.wait()
            # some runs in several states, so that lists are not empty
            for job, payload in (("echo", {"a": 1}), ("boom", None), ("gated", {"gate": "never"})):
                await app.trigger(job, payload)
            self.ready.set()
            await self.stop_event.wait()
            for event in gates.events.values():
                event.set()
        await app.close()

    def start(self) -> ThreadedNode:
        self.thread.start()
        assert self.ready.wait(30), "API node did not start"
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


@pytest.fixture(scope="module")
def live_api(redis_server: RedisProcess) -> Iterator[ThreadedNode]:
    """One API node for every schemathesis case of this module."""
    node = ThreadedNode(redis_server.url).start()
    yield node
    node.stop()


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """A stream of one line, the value generated (an NDJSON body's schema is a line's: Trigger.dev's batch
    items); stdlib json, which writes any integer the generator makes."""
    return json.dumps(value).encode() + b"\n"


#: the generated document, loaded by schemathesis (which validates it as OpenAPI 3.1)
schema = schemathesis.openapi.from_dict(document())

#: examples per operation (about 10 s in all); BATON_SCHEMATHESIS_EXAMPLES=200 for a deeper run
EXAMPLES = int(os.environ.get("BATON_SCHEMATHESIS_EXAMPLES", "12"))

#: every check schemathesis has (what --checks all runs)
CHECKS = list(REGISTERED_CHECKS.get_all())


def _checks(case: Any) -> list[Any]:
    """The checks of one case: all of them, except positive_data_acceptance ("a schema-valid request is
    accepted") for the values whose validity no JSON Schema can state: a cursor or page[after] (valid only
    when this API returned it), payload_contains (JSON text that must parse to an object), metadata_value without
    metadata_key (a constraint between two query parameters), a body holding an integer beyond 64 bits
    (JSON Schema cannot tell it from a float such as 1e300; the JsonValue component says it in words), and
    tasks.trigger's payload and options (text in the format another field names; values such as durations and
    dates read by Trigger.dev's rules, and options Baton refuses by name), as a Trigger.dev batch's
    parentRunId and resumeParentOnCompletion (in the SDK's schema, refused by name), wait.createToken and a
    queue's concurrency override and reset (operations of the SDK Baton refuses, with why), a run list's
    run_id beside another filter or a cursor (one run, looked up alone), and a status of another view than
    the request's. Those get a 400 that names the value, which the other checks still verify."""
    query = case.query or {}
    body = case.body if isinstance(case.body, dict) else {}
    state_bound = _another_views_status(case, query, body) or "cursor" in query or "page[after]" in query or (
        "payload_contains" in query) or (
        "metadata_value" in query and "metadata_key" not in query) or _holds_a_long_integer(case.body) or (
        case.operation.path == "/api/v1/tasks/{task_id}/trigger") or (
        case.operation.path in ("/api/v3/batches", "/api/v2/tasks/batch") and (
            body.get("parentRunId") or body.get("resumeParentOnCompletion"))) or (
        (case.operation.method.upper(), case.operation.path) == ("POST", "/api/v1/waitpoints/tokens")) or (
        case.operation.path.startswith("/api/v1/queues/{queue}/concurrency/")) or (
        "run_id" in query and case.operation.path == "/v1/runs" and len(set(query) - {"view", "project_id",
                                                                                          "limit"}) > 1)
    # a body over max_body_bytes is refused before it is read (413 body_too_large): a rejection, which
    # negative_data_rejection's list of statuses does not name
    too_large = case.body is not None and len(json.dumps(case.body, default=str)) > Settings().max_body_bytes
    return [c for c in CHECKS if not (state_bound and c.__name__ == "positive_data_acceptance")
            and not (too_large and c.__name__ == "negative_data_rejection")]


def _another_views_status(case: Any, query: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether a status filter names a status of another view than the request's: each view takes its own
    words (views.status_words), and no schema can tie an enum to another parameter, so the document lists
    every view's words in one enum."""
    filters = body.get("filter") if isinstance(body.get("filter"), dict) else body  # (a bulk action's, or its own)
    wanted = query.get("status") or filters.get("status") or []
    words = wanted.split(",") if isinstance(wanted, str) else wanted if isinstance(wanted, list) else []
    view = query.get("view") or (case.headers or {}).get("X-Baton-View") or "native"
    return any(w not in status_words(str(view)) for w in words if isinstance(w, str))


def _holds_a_long_integer(value: Any) -> bool:
    """Whether a generated body holds an integer orjson reads as a float (beyond 64 bits)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -(2**63) <= value <= 2**64 - 1
    if isinstance(value, dict):
        return any(_holds_a_long_integer(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_a_long_integer(v) for v in value)
    return False


def _headers(case: Any, key: str) -> dict[str, str]:
    """The key for the case, unless the case is a negative one that removed it on purpose: adding it back
    would turn the invalid request into a valid one (and negative_data_rejection into a false alarm)."""
    meta = case.meta
    mutations = getattr(meta.phase.data, "mutations", None) or () if meta is not None else ()
    if any(m.parameter_location == ParameterLocation.HEADER and "Authorization" in (
            m.original_value if isinstance(m.original_value, list) else [m.original_value]) for m in mutations):
        return {}
    return {"Authorization": f"Bearer {key}"}


@schema.parametrize()
# the node in the other thread draws from `random` (lease jitter) while Hypothesis generates a case, which
# Hypothesis takes for a strategy using `random`
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_document(case: Any, live_api: ThreadedNode) -> None:
    # Given generated requests (valid and invalid) for every operation, with a valid key
    # When each is sent to the live server
    response = case.call_and_validate(base_url=live_api.url, headers=_headers(case, live_api.key),
                                      checks=_checks(case), timeout=10)
    # Then no answer is a 5xx, and each matches the document (status, content type, schema, headers);
    # invalid data is rejected with a 4xx and requests without the key with 401
    assert response.status_code < 500
    # And every rejection says why, in the one JSON error shape
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "code", "request_id"} and body["error"] and body["code"], body


async def test_each_view_has_its_own_schema_and_media_type(api: ApiNode) -> None:
    # Given the document: every operation that renders runs answers one media type per view, each with
    # that view's own schema (no schema is a union of the views)
    doc = document()
    renders = {(r.path, r.method.lower()) for r in ROUTES if r.viewed}  # (others take a view for their ids only)
    viewed = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
              if (path, method) in renders]
    assert len(viewed) >= 20 and all(any(p["name"] == "view" for p in op["parameters"]) for _, _, op in viewed)
    for path, method, op in viewed:
        for status, response in op["responses"].items():
            if status.startswith("2") and "content" in response:
                assert set(response["content"]) == {media_type(v) for v in VIEWS}, (path, method, status)
    run_op = doc["paths"]["/v1/runs/{run_id}"]["get"]["responses"]["200"]["content"]
    assert run_op == {media_type(v): {"schema": {"$ref": f"#/components/schemas/{VIEW_RUN[v]}"}} for v in VIEWS}
    assert "Run" not in doc["components"]["schemas"] and not any(
        "anyOf" in s and "NativeRun" in orjson.dumps(s).decode() for s in doc["components"]["schemas"].values())
    # When a run and the run list are read in each view
    run_id = await api.trigger("echo", {"a": 1})
    await api.wait_status(run_id)
    for view in VIEWS:
        for path, operation in ((f"/v1/runs/{run_id}", doc["paths"]["/v1/runs/{run_id}"]["get"]),
                                ("/v1/runs", doc["paths"]["/v1/runs"]["get"])):
            async with api.http.get(api.url + path, params={"view": view}, headers=api.auth()) as resp:
                body = await resp.json()
                # Then the Content-Type names the view, and the body validates against the schema the
                # document gives that media type
                assert resp.status == 200 and resp.content_type == media_type(view), (view, resp.content_type)
                schema = operation["responses"]["200"]["content"][resp.content_type]["schema"]
                name = schema["$ref"].rsplit("/", 1)[1]
                Draft202012Validator(component(name), format_checker=FormatChecker()).validate(body)
