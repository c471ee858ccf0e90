"""Background bulk actions: cancel or replay many runs by filter, with a progress resource that survives the
process that began it."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime import RunContext
from runtime.api.bulk_actions import BulkRunner, action_filter
from tests.api.conftest import ApiNode
from tests.nodes import eventually


async def finished(api: ApiNode, action_id: str, project: str = "alpha") -> dict[str, Any] | None:
    status, body = await api.call("GET", f"/v1/bulk-actions/{action_id}", project)
    assert status == 200, body
    return dict(body) if body["status"] != "running" else None


async def test_a_bulk_cancel_runs_in_the_background_and_reports_its_progress(api: ApiNode) -> None:
    # Given 250 delayed runs of project alpha, and some of project beta
    status, batch = await api.call("POST", "/v1/runs/batch", json={"runs": [
        {"job": "echo", "input": i, "delay": 600} for i in range(250)]})
    assert status == 201
    ids = [r["id"] for r in batch["runs"]]
    beta = [await api.trigger("echo", i, project="beta", delay=600) for i in range(3)]
    # When alpha asks for all its live echo runs to be canceled
    status, started = await api.call("POST", "/v1/bulk-actions", json={"action": "cancel", "filter": {"job": "echo"}})
    # Then it is accepted at once, with a progress resource
    assert status == 202 and started["status"] in ("running", "completed") and started["action"] == "cancel"
    done = await eventually(lambda: finished(api, started["id"]), 30)
    # And when it ends, every one of alpha's runs was canceled, once, and beta's were not touched
    assert done["status"] == "completed" and done["processed"] == 250 and done["succeeded"] == 250
    assert done["failed"] == 0 and done["errors"] == [] and done["finished_at"] is not None
    statuses = {(await api.run(i))["status"] for i in ids}
    assert statuses == {"canceled"}
    assert {(await api.run(i, project="beta"))["status"] for i in beta} == {"delayed"}
    # And beta cannot see alpha's action
    status, err = await api.call("GET", f"/v1/bulk-actions/{started['id']}", "beta")
    assert status == 404 and err["code"] == "not_found"
    status, page = await api.call("GET", "/v1/bulk-actions")
    assert status == 200 and [a["id"] for a in page["data"]] == [started["id"]]


async def test_a_bulk_replay_takes_finished_runs_up_to_its_limit(api: ApiNode) -> None:
    # Given four completed runs
    ids = [await api.trigger("echo", {"n": i}) for i in range(4)]
    for run_id in ids:
        await api.wait_status(run_id, "completed")
    # When up to three of them are replayed
    status, started = await api.call("POST", "/v1/bulk-actions",
                                     json={"action": "replay", "filter": {"job": "echo", "status": ["completed"]},
                                           "limit": 3})
    assert status == 202
    done = await eventually(lambda: finished(api, started["id"]), 30)
    # Then three new runs were made from them (newest first), and they run
    assert done["status"] == "completed" and done["processed"] == 3 and done["succeeded"] == 3
    status, page = await api.call("GET", "/v1/runs", params={"triggered_by": "replay"})
    replays = page["data"]
    assert sorted(r["replay_of"] for r in replays) == sorted(ids[1:])
    for run in replays:
        assert (await api.wait_status(run["id"]))["status"] == "completed"


async def test_bad_bulk_action_requests_are_refused(api: ApiNode) -> None:
    for body in ({"action": "delete"}, {"action": "cancel", "limit": 100_001}, {"action": "cancel",
                 "filter": {"status": ["bogus"]}}, {"action": "cancel", "filter": {"created_after": "yesterday"}}):
        status, err = await api.call("POST", "/v1/bulk-actions", json=body)
        assert status == 400 and err["code"] == "invalid_body", (body, err)
    status, page = await api.call("GET", "/v1/bulk-actions")
    assert page["data"] == []


async def test_an_action_left_by_a_stopped_process_is_taken_over_where_it_stopped(make_app: Any) -> None:
    # Given 600 delayed runs and a bulk cancel begun by one API process
    app, ids, first, action_id = await _cancel_under_way(make_app)
    key = app.keys.bulk_action(action_id)
    # When that process stops mid-way (its runner records the run in hand and gives the lease back)
    await first.close()
    raw = await app.redis.hgetall(key)
    assert raw[b"status"] == b"running" and int(raw[b"processed"]) < 600
    # Then another process takes it over and finishes it from where it stopped
    second = BulkRunner(app, 5000)
    assert await second.take_over() == 1
    done = await eventually(lambda: _ended(app, key), 30)
    assert done[b"status"] == b"completed"
    processed, succeeded, failed = (int(done[k]) for k in (b"processed", b"succeeded", b"failed"))
    # (each run handled once: the first process recorded the run in hand before it gave the action back)
    assert (processed, succeeded, failed) == (600, 600, 0)
    runs = [await app.get_run(i) for i in ids]
    assert {r.status for r in runs if r} == {"canceled"} and len(runs) == 600
    await second.close()


async def _cancel_under_way(make_app: Any) -> tuple[Any, list[str], BulkRunner, str]:
    """An app with 600 delayed runs of ``later``, and a runner's bulk cancel of them, 50 in: (app, run ids,
    runner, the action's id)."""
    app = make_app()

    @app.job()
    async def later(ctx: RunContext, payload: Any) -> None:
        return None

    ids = await app.trigger_batch([{"job": "later", "input": i, "delay": 600} for i in range(600)])
    runner = BulkRunner(app, 5000)
    fltr = action_filter("default", "cancel", {"job": "later"})
    view = await runner.create("default", "cancel", {"job": "later"}, fltr, 100_000)
    await eventually(lambda: _processed(app, app.keys.bulk_action(view["id"]), 50), 20, interval=0.001)
    return app, ids, runner, view["id"]


async def _processed(app: Any, key: str, at_least: int) -> bool:
    return int(await app.redis.hget(key, "processed") or 0) >= at_least


async def _ended(app: Any, key: str) -> dict[bytes, bytes] | None:
    raw: dict[bytes, bytes] = await app.redis.hgetall(key)
    await asyncio.sleep(0)
    return raw if raw.get(b"status") != b"running" else None


async def test_a_bulk_action_stops_when_asked(api: ApiNode) -> None:
    # Given a bulk cancel of 600 delayed runs, just started
    status, _batch = await api.call("POST", "/v1/runs/batch", json={"runs": [
        {"job": "echo", "input": i, "delay": 600} for i in range(600)]})
    assert status == 201
    status, started = await api.call("POST", "/v1/bulk-actions", json={"action": "cancel", "filter": {"job": "echo"}})
    assert status == 202
    # When it is stopped
    status, body = await api.call("DELETE", f"/v1/bulk-actions/{started['id']}")
    assert status == 200 and body["cancel_requested"] is True
    # Then it ends canceled before the end of its work (it checks before each page of 100 runs)
    done = await eventually(lambda: finished(api, started["id"]), 30)
    assert done["status"] == "canceled" and done["processed"] < 600
    status, page = await api.call("GET", "/v1/runs", params={"status": "delayed", "limit": 100})
    assert len(page["data"]) == 100  # runs it had not reached are still delayed


async def test_an_action_caught_by_a_redis_out_of_memory_is_taken_over_where_it_stopped(make_app: Any) -> None:
    # Given a bulk cancel of 600 delayed runs under way
    app, ids, runner, action_id = await _cancel_under_way(make_app)
    key = app.keys.bulk_action(action_id)
    # When Redis refuses writes (out of memory) mid-way
    before = next(iter((await app.redis.config_get("maxmemory")).values()))
    await app.redis.config_set("maxmemory", 1)
    try:
        await eventually(lambda: not runner.tasks, 20)
        # Then the action is not marked failed: it stays running, its lease given back
        raw = await app.redis.hgetall(key)
        assert raw[b"status"] == b"running" and int(raw[b"processed"]) < 600, raw
        assert not await app.redis.exists(app.keys.bulk_lease(action_id))
    finally:
        await app.redis.config_set("maxmemory", before)
    # And once Redis has room, the next watch takes it over and finishes it, no run handled twice (a cancel
    # that landed just before its progress write was refused is not counted: the run no longer matches)
    assert await runner.take_over() == 1
    done = await eventually(lambda: _ended(app, key), 30)
    assert done[b"status"] == b"completed"
    processed, succeeded, failed = (int(done[k]) for k in (b"processed", b"succeeded", b"failed"))
    assert failed == 0 and succeeded == processed and 599 <= processed <= 600, done
    assert {r.status for r in [await app.get_run(i) for i in ids] if r} == {"canceled"}
    await runner.close()


async def test_a_bulk_call_naming_too_many_runs_says_how_many_it_takes(api: ApiNode) -> None:
    # Given more run ids than one bulk call takes (the dashboard splits a larger selection itself)
    from runtime.api.schemas import BULK_IDS_MAX

    ids = [f"06h4ln365q8n3t2k4v7s{n:06d}" for n in range(BULK_IDS_MAX + 30)]
    for path in ("/v1/runs/bulk-dlq-replay", "/v1/runs/bulk-delete", "/v1/runs/bulk-cancel"):
        status, err = await api.call("POST", path, json={"run_ids": ids})
        # Then the 400 names the list's size and the limit, not the ids cut off mid-list
        assert status == 400 and err["code"] == "invalid_body", (path, err)
        assert err["error"] == (f"body.run_ids: a list of {len(ids)} items is too long "
                                f"(at most {BULK_IDS_MAX} items)"), err
    # and the dashboard's session says the limit
    status, session = await api.call("POST", "/ui/session", json={"api_key": api.keys["default"]})
    assert status == 200 and session["bulk_ids_max"] == BULK_IDS_MAX
