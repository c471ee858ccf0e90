"""A stored run is always renderable: values the API never wrote (old data, corruption, far-future times)
degrade to null or their raw text; no request about such a run, and no listing that includes it, fails."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from runtime.api.errors import ApiError
from runtime.api.routes import ROUTES
from runtime.api.routing import Param, component
from runtime.api.server import _coerce
from tests.api.conftest import ApiNode

#: each view and the component schema of a run in it
VIEWS = {"native": "NativeRun", "durably": "DurablyRun", "trigger": "TriggerRun", "hatchet": "HatchetRun",
         "strait": "StraitRun"}
#: every GET about one run that answers JSON
_JSON_GETS = [r.path for r in ROUTES if r.method == "GET" and r.path.startswith("/v1/runs/{")
              and r.media_type == "application/json"]

#: values no Baton code writes: beyond datetime's range, not numbers, not JSON, of the wrong JSON type
CORRUPT_RECORD = {
    "created_at": "1e300", "started_at": "99999999999999999999999", "finished_at": "nan", "updated_at": "inf",
    "scheduled_at": "1000000000000000000", "heartbeat_at": "soon", "next_retry_at": "-1e20",
    "paused_at": "x", "expires_at": "1e30", "lease_expires_at": "later", "wait_started_at": "1e40",
    "priority": "high", "attempt": "1e99", "charged": "", "max_attempts": "-inf", "timeout_ms": "1e25",
    "current_step_index": "1e300", "completed_step_count": "two", "lineage_depth": "9" * 40,
    "attempts": '[{"number": "x", "started_at": 1e300, "status": 5}, "not an attempt"]',
    "labels": '["not", "a", "map"]', "tags": '{"not": "a list"}', "metadata": "{broken",
    "output": "{not json", "error": '"just a string"', "progress": "{", "backoff": "exponential,x,1e999,2",
    "version": "99999999999999999999999999", "wait_kind": "sleep",
}


async def _corrupt(api: ApiNode, redis: Any, run_id: str) -> None:
    """Overwrite the run's record and fill its streams with entries no Baton code writes."""
    p = api.app.keys.partition_of_run(run_id)
    await redis.hset(p.run(run_id), mapping={**CORRUPT_RECORD, "tags": b'["ok", "\xff\xfe"]'})
    await redis.set(p.input(run_id), b"\xff{not json")
    await redis.hset(p.steps(run_id), mapping={"a": "not json", "b": '{"index": "x", "started_at": 1e300}',
                                                 "c": "[1, 2]"})
    for fields in ({"type": "status\nevent: injected", "data": "{", "ts": "1e300"},
                   {"type": "log", "data": '"a string"', "ts": "x"}, {"type": b"\xff", "data": "7"}):
        await redis.xadd(p.events(run_id), fields)
    await redis.xadd(p.checkpoints(run_id), {"sequence": "x", "state": "{", "created_at": "1e300"})
    for fields in ({"type": "usage", "data": '{"prompt_tokens": "lots", "total_tokens": 1e300}'},
                   {"type": "usage", "data": "{"}, {"type": "output", "data": '{"value": 1}'},
                   {"type": "output", "data": '{"output_key": 5}'}, {"type": "tool_call", "data": "[]"}):
        await redis.xadd(p.records(run_id), fields)
    await redis.xadd(p.chunks(run_id), {"data": "{", "ts": "1e300"})
    await redis.zadd(p.waiting, {run_id: 1e300})


def _check(validator: Draft202012Validator, body: Any, where: str) -> None:
    error = best_match(validator.iter_errors(body))
    assert error is None, (where, list(error.absolute_path), error.message[:300])


async def _sse(api: ApiNode, path: str) -> bytes:
    """The whole body of an event stream of a finished run (it ends by itself)."""
    async with api.http.get(api.url + path, headers=api.auth(), timeout=aiohttp.ClientTimeout(total=20)) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def test_corrupt_and_far_future_records_render_everywhere(api: ApiNode, redis: Any) -> None:
    # Given a run accepted with a far-future delay (the API stores its time beyond what a date can show) ...
    # (the range table now refuses such a delay at the door: 400, and only the runs below exist)
    status, body = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1, "delay": 1e15})
    assert status in (200, 201, 400), body
    expected = 3 if status in (200, 201) else 2
    # ... and a finished run whose record and streams are then overwritten with values no Baton code writes
    victim = await api.trigger("echo", {"n": 1})
    await api.wait_status(victim)
    await _corrupt(api, redis, victim)
    # ... and an index entry at +inf pointing at a record that has only garbage (and no id field)
    p = api.app.keys.partition_of_run("zz-garbage")
    await redis.hset(p.run("zz-garbage"), mapping={"status": "queued", "job": "echo", "project": "alpha",
                                                   "created_at": "+inf", "attempts": "{"})
    await redis.zadd(p.project_runs("alpha"), {"zz-garbage": float("inf")})
    # ... and entries of the project's stream index no Baton code writes: one naming no run, one without a
    # run id, both far in the future
    far = "99999999999999"
    await redis.xadd(p.project_index("alpha"), {"r": "no-such-run"}, id=f"{far}-0")
    await redis.xadd(p.project_index("alpha"), {"x": "y"}, id=f"{far}-1")
    # When the project's runs are listed in every view, one per page across the odd index scores
    for view, schema_name in VIEWS.items():
        run_schema = Draft202012Validator(component(schema_name))
        seen, cursor = [], None
        while True:
            # (the strait view pages by creation time, which a corrupt record does not have: one page)
            params = {"view": view, "limit": 100 if view == "strait" else 1, **({"cursor": cursor} if cursor else {})}
            status, page = await api.call("GET", "/v1/runs", params=params)
            # Then every page is a 200 in the documented shape
            assert status == 200, (view, page)
            items = page if view == "strait" else page["data"]
            for run in items:
                _check(run_schema, run, f"list {view}")
            seen.extend(items)
            cursor = None if view == "strait" else page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == expected, (view, seen)
    # And the stream entries that name no run were dropped on the way
    assert await redis.xrange(p.project_index("alpha"), far, "+") == []
    # And every JSON read of the corrupt runs is a 200 in the documented shape
    for run_id in (victim, "zz-garbage"):
        for view, schema_name in VIEWS.items():
            status, body = await api.call("GET", f"/v1/runs/{run_id}", params={"view": view})
            assert status == 200, (run_id, view, body)
            _check(Draft202012Validator(component(schema_name)), body, f"{run_id} {view}")
        for path in _JSON_GETS:
            url = path.replace("{run_id}", run_id)
            status, body = await api.call("GET", url)
            assert status == 200, (url, body)
    # And the event and chunk streams end normally, with one "event:" line per frame (no injected framing)
    events = await _sse(api, f"/v1/runs/{victim}/stream")
    lines = events.split(b"\n")
    assert b"event: injected" not in lines
    assert sum(line.startswith(b"event: ") for line in lines) == sum(line.startswith(b"data: ") for line in lines)
    assert b"event: end" in events
    chunks = await _sse(api, f"/v1/runs/{victim}/stream/chunks")
    assert b"event: chunk" in chunks and b"event: end" in chunks
    # And the usage total is a number it can write (the corrupt counts read as absent)
    status, usage = await api.call("GET", f"/v1/runs/{victim}/usage")
    assert status == 200 and usage["total"]["prompt_tokens"] == 0 and orjson.dumps(usage)


async def test_a_refused_redis_command_is_an_internal_error_not_an_outage(api: ApiNode, redis: Any) -> None:
    # Given a run whose checkpoint stream key holds a value of another type (Redis answers WRONGTYPE)
    run_id = await api.trigger("echo", 1)
    await api.wait_status(run_id)
    p = api.app.keys.partition_of_run(run_id)
    await redis.set(p.checkpoints(run_id), "not a stream")
    # When its checkpoints are read
    status, body = await api.call("GET", f"/v1/runs/{run_id}/checkpoints")
    # Then the answer is a 500 for the server log, not a 503 telling the client to wait for Redis to come back
    assert (status, body["code"]) == (500, "internal_error"), body


@pytest.mark.parametrize(("value", "says"), [
    ("abc", "limit must be an integer"), ("1.5", "limit must be an integer"),
    ("100000000000000000000", "limit: 100000000000000000000 is out of range"),
    ("0", "limit: 0 is less than the minimum of 1"), ("101", "limit: 101 is greater than the maximum of 100"),
])
async def test_a_query_number_of_the_wrong_kind_or_range_is_a_400_saying_which(api: ApiNode, value: str,
                                                                               says: str) -> None:
    # When a listing's limit is not an integer, or one outside its bounds (however many digits it has)
    status, body = await api.call("GET", "/v1/runs", params={"limit": value})
    # Then the 400 names the parameter and what it must be
    assert (status, body["code"], body["error"]) == (400, "invalid_parameter", says), body


@pytest.mark.parametrize("raw", ["nan", "inf", "-Infinity", "x"])
def test_a_query_number_must_be_finite(raw: str) -> None:
    # (no route has a number query parameter today; a NaN would pass every minimum and maximum)
    with pytest.raises(ApiError) as caught:
        _coerce(Param("ratio", {"type": "number", "minimum": 0, "maximum": 1}), raw)
    assert (caught.value.status, str(caught.value)) == (400, "ratio must be a finite number")


async def test_a_bad_time_in_a_body_is_an_invalid_body_saying_what_it_may_be(api: ApiNode) -> None:
    # Given a delayed run
    run_id = await api.trigger("echo", 1, delay=60)
    # When a body carries a time that is none (a reschedule, Trigger.dev's reschedule, a hatchet filter)
    for path, body, says in (
        (f"/v1/runs/{run_id}/reschedule", {"scheduled_at": "garbage"}, "scheduled_at must be an ISO-8601 date-time"),
        (f"/api/v1/runs/run_{run_id}/reschedule", {"delay": "banana"},
         "delay must be a duration (e.g. 1h30m) or an ISO-8601 date-time"),
        (f"/v1/runs/{run_id}/reschedule", {"scheduled_at": "2026-01-01T00:00:00"},
         "scheduled_at must carry a time zone"),
    ):
        status, err = await api.call("POST", path, json=body)
        # Then it is a 400 invalid_body (as any other bad body value), whose message says what the value may be
        assert (status, err["code"]) == (400, "invalid_body") and err["error"].startswith(says), (path, err)
    # And the run is as it was
    assert (await api.run(run_id))["status"] == "delayed"


async def test_submission_errors_are_400s_with_their_reason(api: ApiNode) -> None:
    # When a trigger carries an option the submission code rejects (past the request's JSON Schema)
    status, body = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1, "run_at": "yesterday"})
    # Then it is a 400 whose code is the submission's reason and whose message names the option
    assert (status, body["code"]) == (400, "bad_run_at") and "run_at" in body["error"], body
    # And in a batch, the same, with the item's place
    status, body = await api.call("POST", "/v1/runs/batch", json={"runs": [{"job": "echo", "run_at": "yesterday"}]})
    assert (status, body["code"]) == (400, "bad_run_at") and body["error"].startswith("runs[0]: "), body


@pytest.mark.parametrize(("option", "value"), [
    ("delay", 1e300), ("delay", 1e15), ("ttl", 1e300), ("idempotency_ttl", 1e300), ("idempotency_ttl", 0.0001),
    ("timeout", 1e17), ("max_attempts", 10**23), ("priority", 10**6), ("run_at", 10**18),
    ("run_at", "9999999-01-01T00:00:00Z"),
])
async def test_out_of_range_trigger_options_are_400s_that_store_nothing(api: ApiNode, option: str,
                                                                         value: Any) -> None:
    # Given a project with some runs already listed fine
    before = await api.call("GET", "/v1/runs", params={"limit": 100})
    # When a trigger carries a number (or time) out of its range (issue 12, section 3)
    status, body = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1, option: value})
    # Then it is a 400 naming the option, nothing was created, and listing still works
    assert status == 400 and option in body["error"], (status, body)
    after = await api.call("GET", "/v1/runs", params={"limit": 100})
    assert after[0] == 200 and len(after[1]["data"]) == len(before[1]["data"])


async def test_a_redis_out_of_memory_is_a_503_to_retry_not_an_internal_error(api: ApiNode, redis: Any) -> None:
    # Given a Redis that refuses writes (used memory over maxmemory, no eviction)
    before = next(iter((await redis.config_get("maxmemory")).values()))
    await redis.config_set("maxmemory", 1)
    try:
        # When a run is triggered
        status, body = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1})
    finally:
        await redis.config_set("maxmemory", before)
    # Then it is a 503 that says why and to retry (the client maps OOM to a class of its own: a check of
    # the reply's text took it for a refused command, a 500)
    assert (status, body["code"]) == (503, "unavailable"), body
    assert "OutOfMemoryError" in body["error"] and "retry later" in body["error"]
    # And the same request goes through once Redis has room
    status, body = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1})
    assert status in (200, 201), body
