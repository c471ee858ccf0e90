"""Shared limits over HTTP (/v1/limits) and the CLI (`baton limits shared-*`); fairness_weight as a trigger option."""

from __future__ import annotations

import io

import orjson

from runtime.api.commands_ops import run_ops_command
from runtime.cli import build_parser
from tests.api.conftest import ApiNode

OPERATOR = "default"


async def test_shared_limits_are_set_read_listed_and_cleared_over_http(api: ApiNode) -> None:
    # When an operator sets a pool and a rate under a new name
    limit = {"pool_size": 2, "rate_limit": {"count": 5, "window_s": 1}}
    status, body = await api.call("PUT", "/v1/limits/llm", OPERATOR, json=limit)
    # Then it is in force on every node (the override is what the claim script reads) and listed
    assert status == 200, body
    assert body["override"] == {"pool_size": 2, "rate_limit": {"count": 5, "window_s": 1.0}}
    assert body["effective"] == body["override"] and body["registered"] == {"pool_size": 0, "rate_limit": None}
    for p in api.app.keys.partitions:
        assert await api.app.redis.hget(p.shared_limits_override, "llm") == b"2,5,1000"
    status, body = await api.call("GET", "/v1/limits", OPERATOR)
    assert status == 200 and [x["name"] for x in body["data"]] == ["llm"]
    # When the override is cleared, nothing names the limit any more
    status, body = await api.call("DELETE", "/v1/limits/llm", OPERATOR)
    assert status == 200 and body["override"] is None and body["effective"]["pool_size"] == 0
    status, err = await api.call("GET", "/v1/limits/llm", OPERATOR)
    assert status == 404 and err["code"] == "not_found"
    # And bad values, bad names and other projects' keys are refused
    status, err = await api.call("PUT", "/v1/limits/llm", OPERATOR, json={"pool_size": -1})
    assert status == 400 and err["code"] == "invalid_body"
    status, err = await api.call("PUT", "/v1/limits/llm", OPERATOR, json={"rate_limit": {"count": 0, "window_s": 1}})
    assert status == 400
    status, err = await api.call("PUT", "/v1/limits/a%20b", OPERATOR, json={"pool_size": 1})
    assert status == 400
    status, err = await api.call("GET", "/v1/limits", "alpha")
    assert status == 403 and err["code"] == "forbidden"


async def _cli(api: ApiNode, *args: str) -> tuple[int, str]:
    """`baton ARGS` in this process (the subprocess form is tested for the other verbs in test_cli_ops)."""
    ns = build_parser().parse_args([*args, "--api-url", api.url, "--api-key", api.keys[OPERATOR]])
    out = io.StringIO()
    return await run_ops_command(ns, out), out.getvalue()


async def test_shared_limit_verbs_of_the_cli(api: ApiNode) -> None:
    code, out = await _cli(api, "limits", "shared-set", "gpu", "--pool", "3", "--rate", "10/1")
    assert code == 0, out
    assert out.splitlines()[0].split() == ["LIMIT", "POOL", "RATE", "OVERRIDDEN", "IN", "POOL", "JOBS"]
    assert out.splitlines()[1].split() == ["gpu", "3", "10/1s", "yes", "0", "-"]
    code, out = await _cli(api, "limits", "shared-ls", "--json")
    assert code == 0 and orjson.loads(out)["data"][0]["effective"]["pool_size"] == 3
    code, out = await _cli(api, "limits", "shared-get", "gpu")
    assert code == 0 and out.splitlines()[1].split()[:2] == ["gpu", "3"]
    code, out = await _cli(api, "limits", "shared-clear", "gpu", "--json")
    assert code == 0 and orjson.loads(out)["override"] is None


async def test_fairness_weight_is_a_trigger_option(api: ApiNode) -> None:
    # When a run is triggered with a fairness weight, it is stored with the run for the claim to read
    run_id = await api.trigger("echo", {"x": 1}, concurrency_key="tenant-a", fairness_weight=3)
    record = api.app.keys.partition_of_run(run_id).run(run_id)
    assert await api.app.redis.hget(record, "fairness_weight") == b"3"
    # And a weight out of range is refused with the field named
    status, err = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1, "fairness_weight": 0})
    assert status == 400 and "fairness_weight" in str(err)
