"""The operator's API: queues (depth, age, throughput, pause, purge), job limits, schedules, nodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.api.conftest import ApiNode
from tests.nodes import eventually

OPERATOR = "default"  # api_operator_projects defaults to "default"


async def queue(api: ApiNode, name: str) -> dict[str, Any]:
    status, body = await api.call("GET", f"/v1/queues/{name}", OPERATOR)
    assert status == 200, body
    return dict(body)


async def test_a_paused_queue_holds_its_runs_and_shows_them_queued_with_their_age(api: ApiNode) -> None:
    # Given the mail queue, paused
    status, body = await api.call("POST", "/v1/queues/mail/pause", OPERATOR)
    assert status == 200 and body["paused"] is True and body["name"] == "mail"
    # When two runs are submitted to it
    ids = [await api.trigger("mail", {"n": i}) for i in range(2)]
    # Then they stay queued, and the queue says so, with the age of the oldest
    listed = await eventually(lambda: _oldest_aged(api, "mail"), 10)
    assert listed["counts"]["queued"] == 2 and listed["counts"]["executing"] == 0
    assert listed["counts_exact"] is True
    assert [(await api.run(i))["status"] for i in ids] == ["queued", "queued"]
    # And the list of queues has it, next to the default queue
    status, page = await api.call("GET", "/v1/queues", OPERATOR)
    assert status == 200 and {"default", "mail"} <= {q["name"] for q in page["data"]}
    # When it is resumed
    status, body = await api.call("POST", "/v1/queues/mail/resume", OPERATOR)
    assert status == 200 and body["paused"] is False
    # Then the runs complete and the throughput series counts them in the minute in progress
    for run_id in ids:
        assert (await api.wait_status(run_id))["status"] == "completed"
    after = await queue(api, "mail")
    points = after["throughput"]["points"]
    assert len(points) == 60 and points[-1] + points[-2] >= 2 and after["throughput"]["last_hour_total"] >= 2
    assert after["counts"]["queued"] == 0 and after["oldest_queued_age_ms"] == 0


async def _oldest_aged(api: ApiNode, name: str) -> dict[str, Any] | None:
    found = await queue(api, name)
    return found if found["counts"]["queued"] == 2 and found["oldest_queued_age_ms"] > 0 else None


async def test_queue_counts_show_executing_and_delayed_runs_of_that_queue_only(api: ApiNode) -> None:
    # Given one mail run executing (held by a gate), one delayed, and a default-queue run delayed too
    running = await api.trigger("mail", {"gate": "q-exec"})
    await api.wait_status(running, "executing")
    await api.trigger("mail", {"later": True}, delay=60)
    await api.trigger("echo", 1, delay=60)
    # When the queue is read
    found = await queue(api, "mail")
    # Then each state counts the mail queue's own runs
    assert found["counts"] == {"queued": 0, "delayed": 1, "executing": 1, "waiting": 0, "paused": 0}
    api.gates.open("q-exec")


async def test_purging_a_queue_needs_its_name_and_cancels_only_its_queued_runs(api: ApiNode) -> None:
    # Given a paused mail queue with three queued runs and one delayed one
    await api.call("POST", "/v1/queues/mail/pause", OPERATOR)
    queued = [await api.trigger("mail", {"n": i}) for i in range(3)]
    delayed = await api.trigger("mail", {"n": 9}, delay=60)
    # When purged without the confirmation, or with the wrong one
    for params in ({}, {"confirm": "default"}):
        status, err = await api.call("POST", "/v1/queues/mail/purge", OPERATOR, params=params)
        # Then nothing happens
        assert status == 400 and err["code"] in ("confirmation_required", "invalid_parameter"), err
    assert (await queue(api, "mail"))["counts"]["queued"] == 3
    # When purged two at a time
    status, first = await api.call("POST", "/v1/queues/mail/purge", OPERATOR, params={"confirm": "mail", "limit": 2})
    assert status == 200 and first == {"queue": "mail", "purged": 2, "skipped": 0, "remaining": 1, "has_more": True}
    status, second = await api.call("POST", "/v1/queues/mail/purge", OPERATOR, params={"confirm": "mail"})
    assert status == 200 and second["purged"] == 1 and second["has_more"] is False
    # Then the queued runs are canceled and the delayed one is untouched
    assert [(await api.run(i))["status"] for i in queued] == ["canceled"] * 3
    assert (await api.run(delayed))["status"] == "delayed"


async def test_operator_endpoints_refuse_keys_of_other_projects_and_unknown_queues(api: ApiNode) -> None:
    # Given a key of project alpha (not in api_operator_projects)
    for method, path in (("GET", "/v1/queues"), ("POST", "/v1/queues/mail/pause"), ("GET", "/v1/nodes"),
                         ("GET", "/v1/schedules"), ("GET", "/v1/jobs/echo/limits")):
        status, err = await api.call(method, path, "alpha")
        # Then every operator endpoint answers 403
        assert status == 403 and err["code"] == "forbidden", (path, err)
    assert (await queue(api, "mail"))["paused"] is False
    # And a queue nothing names is not found (a typo must not pause a queue nobody serves)
    status, err = await api.call("POST", "/v1/queues/mial/pause", OPERATOR)
    assert status == 404 and err["code"] == "not_found"


async def test_job_limits_are_read_overridden_at_runtime_and_cleared(api: ApiNode) -> None:
    # Given the job single, registered with max_concurrency 1
    status, body = await api.call("GET", "/v1/jobs/single/limits", OPERATOR)
    assert status == 200 and body["registered"]["max_concurrency"] == 1 and body["override"] is None
    assert body["effective"] == body["registered"]
    # When the limit is raised to 2 with a rate limit
    limits = {"max_concurrency": 2, "rate_limit": {"count": 50, "window_s": 1}}
    status, body = await api.call("PUT", "/v1/jobs/single/limits", OPERATOR, json=limits)
    assert status == 200 and body["effective"]["max_concurrency"] == 2
    assert body["effective"]["rate_limit"] == {"count": 50, "window_s": 1.0}
    # Then two runs of it execute at once
    ids = [await api.trigger("single", {"gate": "lim"}) for _ in range(2)]
    for run_id in ids:
        await api.wait_status(run_id, "executing")
    api.gates.open("lim")
    # When the override is cleared, the registered limits apply again
    status, body = await api.call("DELETE", "/v1/jobs/single/limits", OPERATOR)
    assert status == 200 and body["override"] is None and body["effective"]["max_concurrency"] == 1
    # And bad limits or unknown jobs are refused
    status, err = await api.call("PUT", "/v1/jobs/single/limits", OPERATOR, json={"max_concurrency": -1})
    assert status == 400 and err["code"] == "invalid_body"
    # and so is a limit the job's runs are not created to count: a per-key rate, when its code declares none
    per_key_rate = {"rate_limit_per_key": {"count": 2, "window_s": 1}}
    status, err = await api.call("PUT", "/v1/jobs/single/limits", OPERATOR, json=per_key_rate)
    assert status == 400 and err["code"] == "bad_limits" and "declares no rate_limit_per_key" in err["error"]
    status, err = await api.call("GET", "/v1/jobs/nope/limits", OPERATOR)
    assert status == 404 and err["code"] == "unknown_job"


async def test_schedules_are_created_fired_backfilled_paused_and_deleted(api: ApiNode) -> None:
    # Given a new schedule of the echo job, made through the API
    body = {"job": "echo", "expression": "0 3 * * *", "timezone": "Europe/Paris", "input": {"from": "cron"},
            "overlap": "allow"}
    status, made = await api.call("PUT", "/v1/schedules/nightly", OPERATOR, json=body)
    assert status == 201 and made["name"] == "nightly" and made["expression"] == "0 3 * * *"
    status, again = await api.call("PUT", "/v1/schedules/nightly", OPERATOR, json={**body, "expression": "0 4 * * *"})
    assert status == 200 and again["expression"] == "0 4 * * *"
    status, page = await api.call("GET", "/v1/schedules", OPERATOR)
    assert [s["name"] for s in page["data"]] == ["nightly"]
    # When it is triggered now
    status, fired = await api.call("POST", "/v1/schedules/nightly/trigger", OPERATOR)
    assert status == 200 and fired["skipped"] is False and fired["run_id"].startswith("cron.nightly.")
    run = await api.wait_status(fired["run_id"], project="default")
    assert run["status"] == "completed" and run["output"] == {"from": "cron"}
    # When three days are backfilled, twice
    end = datetime.now(UTC).replace(microsecond=0)
    span = {"start": (end - timedelta(days=3)).isoformat(), "end": end.isoformat()}
    status, filled = await api.call("POST", "/v1/schedules/nightly/backfill", OPERATOR, json=span)
    assert status == 200 and filled["ticks"] == 3 and filled["created"] == 3 and filled["truncated"] is False
    status, refilled = await api.call("POST", "/v1/schedules/nightly/backfill", OPERATOR, json=span)
    # Then each tick ran once: the second call found their runs
    assert refilled["created"] == 0 and refilled["existing"] == 3 and refilled["run_ids"] == filled["run_ids"]
    # And a range reaching before 1970 or past 9999 is refused with why (year 1 was a 500), as is one
    # backwards; one ending with the last second of 9999 finds no tick after its start there
    for start, end in (("0001-01-01T00:00:00Z", "2000-01-01T00:00:00Z"),
                       ("2000-01-02T00:00:00Z", "2000-01-01T00:00:00Z"),
                       ("9999-12-31T00:00:00Z", "9999-12-31T23:59:59.999Z")):
        status, err = await api.call("POST", "/v1/schedules/nightly/backfill", OPERATOR,
                                     json={"start": start, "end": end})
        assert (status, err["code"]) == (400, "bad_range"), (start, end, err)
    status, last = await api.call("POST", "/v1/schedules/nightly/backfill", OPERATOR,
                                  json={"start": "9999-12-31T04:00:00Z", "end": "9999-12-31T23:59:59Z"})
    assert status == 200 and last["ticks"] == 0, last
    # When paused and resumed
    status, paused = await api.call("POST", "/v1/schedules/nightly/pause", OPERATOR)
    assert status == 200 and paused["paused"] is True
    status, resumed = await api.call("POST", "/v1/schedules/nightly/resume", OPERATOR)
    assert status == 200 and resumed["paused"] is False
    # When deleted, it is gone
    status, gone = await api.call("DELETE", "/v1/schedules/nightly", OPERATOR)
    assert status == 200 and gone == {"name": "nightly", "deleted": True}
    status, err = await api.call("GET", "/v1/schedules/nightly", OPERATOR)
    assert status == 404 and err["code"] == "not_found"


async def test_bad_schedules_are_refused_with_the_reason(api: ApiNode) -> None:
    cases = [({"job": "echo", "expression": "61 * * * *"}, 400, "invalid_body"),
             # (it was stored, answered 500, and crash-looped the scheduler until the node gave up)
             ({"job": "echo", "expression": "0 0 31 2 *"}, 400, "invalid_body"),
             ({"job": "echo", "expression": "* * * * *", "timezone": "Mars/Olympus"}, 400, "invalid_body"),
             ({"job": "echo", "expression": "* * * * *", "options": {"priority": 5000}}, 400, "bad_priority"),
             ({"job": "nope", "expression": "* * * * *"}, 404, "unknown_job")]
    for body, want, code in cases:
        status, err = await api.call("PUT", "/v1/schedules/bad", OPERATOR, json=body)
        assert (status, err["code"]) == (want, code), (body, err)
    status, page = await api.call("GET", "/v1/schedules", OPERATOR)
    assert page["data"] == []
    # And a stored schedule whose job is gone, fired now, says so (it answered 200 "skipped")
    gone = {"name": "gone", "job": "retired", "expression": "* * * * *", "timezone": "UTC", "input": None,
            "overlap": "allow", "catch_up": "skip", "options": {}}
    await api.app.redis.hset(api.app.keys.schedules, "gone", orjson.dumps(gone))
    try:
        status, err = await api.call("POST", "/v1/schedules/gone/trigger", OPERATOR)
        assert (status, err["code"]) == (404, "unknown_job"), err
    finally:
        await api.app.delete_schedule("gone")


async def test_nodes_are_listed_and_one_drains_on_request(api: ApiNode) -> None:
    # Given the running node
    node_id = api.app.settings.node_id
    found = await eventually(lambda: _node(api, node_id), 10)
    # Then it is listed alive, with its slots, leases and version
    assert found["alive"] is True and found["slots_total"] == api.app.settings.concurrency
    assert found["leases_held"] == 0 and found["version"] and found["draining"] is False
    assert 0 <= found["heartbeat_age_ms"] < 5000 and "mail" in found["queues"]
    # When an unknown node is asked to drain, nothing happens
    status, err = await api.call("POST", "/v1/nodes/nobody/drain", OPERATOR)
    assert status == 404 and err["code"] == "not_found"
    # When the node is asked to drain
    status, body = await api.call("POST", f"/v1/nodes/{node_id}/drain", OPERATOR)
    assert status == 202 and body["drain_requested"] is True
    # Then it stops at its next heartbeat
    await eventually(api.node.shutdown_requested.is_set, 10)


async def _node(api: ApiNode, node_id: str) -> dict[str, Any] | None:
    status, page = await api.call("GET", "/v1/nodes", OPERATOR)
    assert status == 200, page
    return next((n for n in page["data"] if n["id"] == node_id and n["version"]), None)


async def test_a_state_set_too_large_to_read_whole_is_sampled_and_said_so(make_app: Any, monkeypatch: Any) -> None:
    # Given 40 delayed runs of one queue, and a scan cap of 10 runs per state set
    from runtime import queues

    app = make_app()

    @app.job(queue="bulk")
    async def later(ctx: Any, payload: Any) -> None:
        return None

    await app.trigger_batch([{"job": "later", "input": i, "delay": 600} for i in range(40)])
    monkeypatch.setattr(queues, "STATE_SCAN_CAP", 10)
    # When the queue is read
    [found] = await queues.list_queues(app, only="bulk")
    # Then its count is scaled from the sample, and marked as such
    assert found.counts["delayed"] == 40 and found.counts_exact is False
    monkeypatch.setattr(queues, "STATE_SCAN_CAP", 20_000)
    [exact] = await queues.list_queues(app, only="bulk")
    assert exact.counts["delayed"] == 40 and exact.counts_exact is True
