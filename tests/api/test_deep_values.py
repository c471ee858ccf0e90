"""What Baton takes in and keeps as JSON is what it can show again (runtime/json_values.py): a value
nested deeper than MAX_JSON_DEPTH levels or an integer beyond 64 bits is refused wherever it comes in
(a request body, whatever endpoint) or is made (every way a handler keeps a value), so no read of a
run ever fails on what it holds."""

from __future__ import annotations

from typing import Any

from runtime.api.routes import ROUTES
from runtime.json_values import MAX_JSON_DEPTH
from tests.api.conftest import ApiNode

#: every read of one run (SSE streams aside): none may answer 500 for what the run holds
RUN_READS = [r for r in ROUTES if r.method == "GET" and r.path.startswith("/v1/runs/{run_id}")
             and r.path.count("{") == 1 and r.media_type == "application/json"]
VIEWS = ("native", "trigger", "hatchet", "durably", "strait")
#: between MAX_JSON_DEPTH and orjson's 255 levels: storable once, unreadable with the levels reads add
TOO_DEEP = MAX_JSON_DEPTH + 40


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


async def every_read_answers(api: ApiNode, run_id: str) -> None:
    """Each read of the run, in each view where it has views, answers 200."""
    assert len(RUN_READS) >= 10, RUN_READS
    for route in RUN_READS:
        for view in VIEWS if route.viewed else ("",):
            query = f"?view={view}" if view else ""
            status, body = await api.call("GET", route.path.format(run_id=run_id) + query)
            assert status == 200, (route.path, view, status, body)


async def test_a_value_nested_too_deep_is_refused_at_every_door_and_the_run_stays_readable(api: ApiNode) -> None:
    # Given a run waiting for a signal, and one waiting for an event
    signalled = await api.trigger("gated", {"gate": "deep-signal"})
    await api.wait_status(signalled, "executing")
    # When a signal, an event, a token's data or a run's input is sent nested deeper than the limit
    deep = nested(TOO_DEEP)
    sent = [("POST", f"/v1/runs/{signalled}/signals", {"name": "go", "data": deep}),
            ("POST", "/v1/events", {"key": "deep-event", "data": deep}),
            ("POST", "/v1/jobs/echo/trigger", {"input": deep}),
            ("POST", "/v1/tokens/wpt_" + "0" * 26 + "/complete", {"data": deep})]
    for method, path, body in sent:
        status, answer = await api.call(method, path, json=body)
        # Then each is refused at the door as a bad body, saying why
        assert (status, answer["code"]) == (400, "invalid_json"), (path, status, answer)
        assert f"nests deeper than {MAX_JSON_DEPTH} levels" in answer["error"], answer
    # and the run it was sent to reads as before, in every view
    await every_read_answers(api, signalled)
    api.gates.open("deep-signal")
    await api.wait_status(signalled, "completed")
    # And a value nested just within the limit is taken
    within = nested(MAX_JSON_DEPTH - 3)  # (three levels for the body's own object and the input's)
    status, answer = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": within})
    assert status == 201, answer
    done = await api.wait_status(answer["id"], "completed")
    assert done["output"] == within
    await every_read_answers(api, answer["id"])


async def test_an_integer_beyond_64_bits_is_refused_not_turned_into_a_float(api: ApiNode) -> None:
    # When a run is triggered with an integer orjson would read as a float
    for literal in ("123456789012345678901234567890", "18446744073709551616", "-9223372036854775809"):
        status, answer = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": {"n": int(literal)}})
        # Then it is refused, naming the integer, and nothing is created
        assert (status, answer["code"]) == (400, "invalid_json"), (literal, status, answer)
        assert f"integer {literal} at input.n, beyond 64 bits" in answer["error"], answer
    # And the integers at either end of what is read exactly come back as sent
    exact = [18446744073709551615, -9223372036854775808, "123456789012345678901234567890"]
    status, answer = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": exact})
    assert status == 201, answer
    assert (await api.wait_status(answer["id"], "completed"))["output"] == exact


async def test_a_handler_keeping_a_value_nested_too_deep_is_refused_each_way_and_the_run_stays_readable(
        api: ApiNode) -> None:
    # When a handler tries to keep a value nested deeper than the limit in every way it can
    run_id = await api.trigger("deep", {"depth": TOO_DEEP})
    done = await api.wait_status(run_id, "completed")
    # Then every way refuses it (TypeError, which a handler may catch)
    assert done["output"] == ["metadata", "state", "checkpoint", "step", "output", "chunk"], done
    # and its log entry keeps the message and says why its data was dropped
    status, logs = await api.call("GET", f"/v1/runs/{run_id}/logs")
    assert status == 200
    (entry,) = [e for e in logs["data"] if e["message"].startswith("deep data")]
    assert f"[log entry data dropped: nests deeper than {MAX_JSON_DEPTH} levels]" in entry["message"], entry
    # and every read of the run answers
    await every_read_answers(api, run_id)
    # And a value within the limit is kept every way
    kept = await api.trigger("deep", {"depth": 20})
    assert (await api.wait_status(kept, "completed"))["output"] == []
