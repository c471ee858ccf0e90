"""Rejected stream entries as operators read them: GET /v1/rejected (newest first, paged, one entry found by
its id), baton rejected ls, and baton get of a rejected entry through Redis."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import ApiNode
from tests.api.test_cli import baton
from tests.nodes import eventually

OPERATOR = "default"  # api_operator_projects defaults to "default"


async def rejected_entries(api: ApiNode, count: int) -> list[str]:
    """``count`` entries the intake rejects (unknown jobs), appended to the submission stream; their ids."""
    keys = api.app.keys
    ids = [(await api.app.redis.xadd(keys.submit_stream, {"job": f"ghost{i}", "input": "{}"})).decode()
           for i in range(count)]

    async def all_rejected() -> bool:
        return await api.app.redis.xlen(keys.rejected_stream) >= count
    await eventually(all_rejected, 15)
    return ids


async def test_rejected_entries_are_listed_newest_first_with_why(api: ApiNode) -> None:
    # Given five entries the intake rejected, and a bad JSON one
    ids = await rejected_entries(api, 5)
    keys = api.app.keys
    bad = (await api.app.redis.xadd(keys.submit_stream, {"job": "echo", "input": "{nope"})).decode()
    await eventually(lambda: _listed(api, bad), 15)
    # When an operator lists them two at a time
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        status, page = await api.call("GET", "/v1/rejected", OPERATOR, params={"limit": 2, **(
            {"cursor": cursor} if cursor else {})})
        assert status == 200 and len(page["data"]) <= 2, page
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Then every rejection is there once, newest first, each with its reason, message and fields
    assert [r["entry_id"] for r in seen] == [bad, *reversed(ids)], seen
    newest = seen[0]
    assert newest["reason"] == "bad_json" and newest["fields"] == {"job": "echo", "input": "{nope"}, newest
    assert newest["size"] > 0 and newest["truncated"] is False and newest["rejected_at"].endswith("Z")
    assert {r["reason"] for r in seen[1:]} == {"unknown_job"} and "ghost0" in seen[-1]["error"]
    # And one entry's rejection is found by its id; an entry never rejected finds none
    status, found = await api.call("GET", "/v1/rejected", OPERATOR, params={"entry_id": ids[2]})
    assert status == 200 and [r["entry_id"] for r in found["data"]] == [ids[2]], found
    status, found = await api.call("GET", "/v1/rejected", OPERATOR, params={"entry_id": "1-0"})
    assert status == 200 and found["data"] == [], found
    # And the endpoint is an operator's: a key of another project gets 403, a bad cursor 400
    status, err = await api.call("GET", "/v1/rejected", "alpha")
    assert status == 403 and err["code"] == "forbidden", err
    status, err = await api.call("GET", "/v1/rejected", OPERATOR, params={"cursor": "later"})
    assert status == 400 and err["code"] == "invalid_parameter", err


async def _listed(api: ApiNode, entry_id: str) -> bool:
    status, found = await api.call("GET", "/v1/rejected", OPERATOR, params={"entry_id": entry_id})
    return status == 200 and bool(found["data"])


async def test_the_cli_lists_rejections_and_get_says_why_an_entry_made_no_run(api: ApiNode) -> None:
    [entry] = await rejected_entries(api, 1)
    # When the operator lists rejections
    code, out, err = await baton(api, "rejected", "ls", project=OPERATOR)
    # Then the table has the entry with its reason
    header, *rows = out.splitlines()
    assert code == 0 and header.split() == ["REJECTED", "ENTRY", "REASON", "ERROR"], (out, err)
    assert any(entry in row and "unknown_job" in row for row in rows), out
    # And baton get of the entry, straight through Redis, says why it made no run (one line, exit 1)
    settings = api.app.settings
    code, out, err = await baton(None, "get", entry, env={"BATON_REDIS_URL": settings.redis_url,
                                                           "BATON_PREFIX": settings.prefix})
    assert code == 1 and out == "" and err.count("\n") == 1, (out, err)
    assert f"stream entry {entry} made no run: it was rejected (unknown_job: " in err, err
