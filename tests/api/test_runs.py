"""The run endpoints do what their names say: lists and filters, one run, bulk operations, records."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.conftest import ApiNode
from tests.nodes import eventually


async def test_list_filters_and_cursor_pages(api: ApiNode) -> None:
    # Given runs of several jobs, labels, tags, metadata and inputs in project alpha, and one in beta
    ids = []
    for i in range(7):
        ids.append(await api.trigger("echo", {"i": i, "kind": "even" if i % 2 == 0 else "odd"}, labels={"team": "a"},
                                     tags=["t1"] if i < 3 else ["t2"], metadata={"n": i, "who": "ada"}))
    boom = await api.trigger("boom", {"i": 99})
    other = await api.trigger("echo", {"i": 1}, project="beta")
    for run_id in [*ids, boom]:
        await api.wait_status(run_id)
    # When the whole list is read in pages of 3
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        status, page = await api.call("GET", "/v1/runs", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert status == 200, page
        seen.extend(r["id"] for r in page["data"])
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            assert page["has_more"] is False
            break
    # Then every alpha run appears once, newest first (stable order), and beta's never
    assert seen == list(reversed([*ids, boom])) and other not in seen and pages == 3
    # And each filter narrows the list
    async def listed(**params: Any) -> list[str]:
        status, page = await api.call("GET", "/v1/runs", params=params)
        assert status == 200, page
        return [r["id"] for r in page["data"]]

    assert await listed(status="dead_letter") == [boom]
    assert set(await listed(status="completed,dead_letter")) == {*ids, boom}
    # (an empty status filter is refused: it listed every run)
    status, err = await api.call("GET", "/v1/runs", params={"status": ""})
    assert (status, err["code"]) == (400, "invalid_parameter"), err
    assert await listed(job="boom") == [boom]
    assert set(await listed(tag="t1")) == set(ids[:3])
    assert set(await listed(label="team=a")) == set(ids)
    assert await listed(metadata_key="n", metadata_value="4") == [ids[4]]
    assert set(await listed(metadata_key="who")) == set(ids)
    assert set(await listed(payload_contains='{"kind": "even"}')) == {ids[0], ids[2], ids[4], ids[6]}
    assert set(await listed(triggered_by="api")) == {*ids, boom}
    assert await listed(triggered_by="spawn") == []
    first = await api.run(ids[0])
    assert set(await listed(created_after=first["created_at"])) == {*ids, boom}
    assert await listed(created_before=first["created_at"], job="echo") == [ids[0]]
    # And bad filters are 400s with the error shape
    for params in ({"limit": 101}, {"status": "nope"}, {"status": "completed,"}, {"cursor": "garbage!"},
                   {"payload_contains": "[1]"},
                   {"created_after": "yesterday"}):
        status, body = await api.call("GET", "/v1/runs", params=params)
        assert status == 400 and set(body) == {"error", "code", "request_id"}, (params, body)


async def test_a_run_id_lookup_answers_a_page_whether_or_not_the_run_exists(api: ApiNode) -> None:
    # Given a run of project alpha, one of beta, and one created with an idempotency key
    mine = await api.trigger("echo", {"i": 1})
    theirs = await api.trigger("echo", {"i": 2}, project="beta")
    keyed = await api.trigger("echo", {"i": 3}, idempotency_key="order-7")

    async def looked_up(term: str, **params: Any) -> tuple[int, Any]:
        return await api.call("GET", "/v1/runs", params={"run_id": term, **params})

    # When a search box looks each term up as a run id
    # Then a run of the project is a page of one, in the view asked for
    status, page = await looked_up(mine)
    assert status == 200 and [r["id"] for r in page["data"]] == [mine], page
    assert (page["has_more"], page["next_cursor"], page["scanned"]) == (False, None, 1)
    status, page = await looked_up(mine, view="trigger")
    assert status == 200 and [r["id"] for r in page["data"]] == [f"run_{mine}"], page
    # and a term that names no run of the project (another project's run, an idempotency key, an id
    # no run has) is an empty page, not a 404 (the browser logged one as an error for every key searched)
    for term in (theirs, "order-7", "nope", "x" * 132):
        status, page = await looked_up(term)
        assert status == 200 and page["data"] == [] and page["has_more"] is False, (term, page)
    # and the term then finds the run by its idempotency key, as the search box asks next
    status, page = await api.call("GET", "/v1/runs", params={"idempotency_key": "order-7"})
    assert status == 200 and [r["id"] for r in page["data"]] == [keyed], page
    # And the lookup takes no other filter or cursor beside it, nor an id past 132 characters
    for params in ({"job": "echo"}, {"status": "completed"}, {"cursor": "abc"}):
        status, body = await looked_up(mine, **params)
        assert (status, body["code"]) == (400, "invalid_parameter"), (params, body)
        assert "run_id names one run" in body["error"], body
    status, body = await looked_up("x" * 133)
    assert (status, body["code"]) == (400, "invalid_parameter"), body


async def test_listing_skips_and_drops_expired_records(api: ApiNode) -> None:
    # Given two runs, one of whose records has expired (deleted) while its index entry stayed
    keep = await api.trigger("echo", 1)
    gone = await api.trigger("echo", 2)
    await api.wait_status(keep)
    await api.wait_status(gone)
    p = api.app.keys.partition_of_run(gone)
    await api.app.redis.delete(p.run(gone))
    # When the runs are listed
    status, page = await api.call("GET", "/v1/runs")
    # Then the expired one is skipped and its index entry removed
    assert status == 200 and [r["id"] for r in page["data"]] == [keep]
    assert [f[b"r"].decode() for _, f in await api.app.redis.xrange(p.project_index("alpha"))] == [keep]


async def test_get_cancel_and_bulk_cancel(api: ApiNode) -> None:
    # Given a delayed run, an executing run and a finished run
    delayed = await api.trigger("echo", 1, delay=60)
    executing = await api.trigger("gated", {"gate": "g-cancel"})
    await api.wait_status(executing, "executing")
    done = await api.trigger("echo", 2)
    await api.wait_status(done)
    # When the delayed one is canceled with DELETE
    status, body = await api.call("DELETE", f"/v1/runs/{delayed}")
    # Then it ends canceled at once
    assert status == 200 and body["result"] == "canceled" and body["run"]["status"] == "canceled"
    # And canceling a finished run is a 409 conflict
    status, body = await api.call("DELETE", f"/v1/runs/{done}")
    assert status == 409 and body["code"] == "already_finished"
    # When the executing one is canceled in bulk with a missing id and a finished id
    status, body = await api.call("POST", "/v1/runs/bulk-cancel", json={"run_ids": [executing, "missing", done]})
    assert status == 200
    assert [(r["id"], r["status"]) for r in body["results"]] == [
        (executing, "cancel_requested"), ("missing", "failed"), (done, "failed")]
    assert (body["total"], body["canceled"], body["failed"]) == (3, 1, 2)
    # Then it stops and ends canceled
    assert (await api.wait_status(executing))["status"] == "canceled"


async def test_cancel_all_matching_a_filter(api: ApiNode) -> None:
    # Given delayed runs of two jobs in alpha and one in beta
    mine = [await api.trigger("echo", i, delay=60, labels={"batch": "x"}) for i in range(3)]
    keep = await api.trigger("checkpointer", 0, delay=60, labels={"batch": "x"})
    theirs = await api.trigger("echo", 9, delay=60, labels={"batch": "x"}, project="beta")
    # When every live echo run labelled batch=x is canceled
    status, body = await api.call("POST", "/v1/runs/bulk-cancel-all", json={"job": "echo", "label": "batch=x"})
    # Then exactly the matching alpha runs are canceled
    assert status == 200 and body["canceled"] == 3 and {r["id"] for r in body["results"]} == set(mine)
    assert body["has_more"] is False
    assert (await api.run(keep))["status"] == "delayed"
    assert (await api.run(theirs, "beta"))["status"] == "delayed"


async def test_replay_and_bulk_replay_create_linked_runs(api: ApiNode) -> None:
    # Given a dead-lettered run and a live one
    dead = await api.trigger("boom", {"x": 1})
    await api.wait_status(dead)
    live = await api.trigger("echo", 1, delay=60)
    # When the dead one is replayed
    status, body = await api.call("POST", f"/v1/runs/{dead}/replay")
    # Then a new run with the same input, linked back, is created (201)
    assert status == 201 and body["id"] != dead and body["replay_of"] == dead and body["input"] == {"x": 1}
    assert body["project"] == "alpha"
    # And replaying a live run is a conflict
    status, err = await api.call("POST", f"/v1/runs/{live}/replay")
    assert status == 409 and err["code"] == "not_finished"
    # When both are bulk-replayed
    status, bulk = await api.call("POST", "/v1/runs/bulk-replay", json={"run_ids": [dead, live]})
    # Then the dead one is replayed and the live one reported
    assert status == 200 and bulk["count"] == 1 and bulk["failed"] == 1
    assert bulk["replayed"][0]["replay_of"] == dead
    assert [r["status"] for r in bulk["results"]] == ["replayed", "failed"]


async def test_dead_letter_queue_list_and_replay_once(api: ApiNode) -> None:
    # Given three dead-lettered runs and a failed (permanent) one
    dead = [await api.trigger("boom", i) for i in range(3)]
    failed = await api.trigger("fatal", 0)
    for run_id in [*dead, failed]:
        await api.wait_status(run_id)
    assert (await api.run(failed))["status"] == "failed"
    # When the DLQ is listed
    status, page = await api.call("GET", "/v1/runs/dlq")
    # Then it holds the dead-lettered runs only, most recent first (runs that
    # finished in the same millisecond are ordered by id, as in the index)
    records = {run_id: await api.run(run_id) for run_id in dead}
    newest_first = sorted(dead, key=lambda i: (records[i]["finished_at"], i), reverse=True)
    assert status == 200 and [r["id"] for r in page["data"]] == newest_first
    # When one is replayed from the DLQ, then again
    status, first = await api.call("POST", f"/v1/runs/{dead[0]}/dlq-replay")
    assert status == 201 and first["replay_of"] == dead[0]
    status, again = await api.call("POST", f"/v1/runs/{dead[0]}/dlq-replay")
    # Then the second time is refused: a DLQ entry is replayed once
    assert status == 409 and again["code"] == "already_replayed"
    assert (await api.run(dead[0]))["replayed_as"] == first["id"]
    # And a run that is not dead-lettered cannot be DLQ-replayed
    status, err = await api.call("POST", f"/v1/runs/{failed}/dlq-replay")
    assert status == 409 and err["code"] == "wrong_status"
    # When the rest of the DLQ is bulk-replayed without ids (the replay of dead[0] failed again meanwhile)
    await api.wait_status(first["id"])
    status, bulk = await api.call("POST", "/v1/runs/bulk-dlq-replay", json={})
    # Then exactly the entries not replayed yet are replayed
    assert status == 200 and bulk["count"] == 3
    replayed = {r["replay_of"] for r in bulk["replayed"]}
    assert replayed == {dead[1], dead[2], first["id"]}
    status, bulk = await api.call("POST", "/v1/runs/bulk-dlq-replay", json={})
    assert status == 200 and not {r["replay_of"] for r in bulk["replayed"]} & (replayed | {dead[0]})


async def test_children_dependency_status_and_lineage(api: ApiNode) -> None:
    # Given a parent waiting for two gated children
    parent = await api.trigger("parent", {"gate": "g-children"})
    await api.wait_status(parent, "waiting")
    # When its children and dependency status are read
    status, children = await api.call("GET", f"/v1/runs/{parent}/children")
    assert status == 200 and len(children["data"]) == 2
    assert all(c["parent_id"] == parent and c["project"] == "alpha" for c in children["data"])
    # (paged by the last child's id: a cursor that is no run id is refused, not an empty page)
    first, second = sorted(c["id"] for c in children["data"])
    status, page = await api.call("GET", f"/v1/runs/{parent}/children", params={"limit": 1})
    assert [c["id"] for c in page["data"]] == [first] and page["next_cursor"] == first
    status, page = await api.call("GET", f"/v1/runs/{parent}/children", params={"cursor": first})
    assert [c["id"] for c in page["data"]] == [second] and page["has_more"] is False
    status, err = await api.call("GET", f"/v1/runs/{parent}/children", params={"cursor": "☃"})
    assert (status, err["code"]) == (400, "bad_cursor"), err
    status, deps = await api.call("GET", f"/v1/runs/{parent}/dependency-status")
    # Then it depends on both unfinished children
    assert status == 200 and deps["dependencies_satisfied"] is False
    assert {d["depends_on_run_id"] for d in deps["dependencies"]} == {c["id"] for c in children["data"]}
    assert deps["waiting_for"]["kind"] == "children"
    # When the children finish
    api.gates.open("g-children")
    await api.wait_status(parent)
    status, deps = await api.call("GET", f"/v1/runs/{parent}/dependency-status")
    # Then nothing holds it back any more
    assert deps["dependencies_satisfied"] is True and deps["dependencies"] == []
    child = children["data"][0]["id"]
    status, deps = await api.call("GET", f"/v1/runs/{child}/dependency-status")
    assert deps["parent"]["id"] == parent
    # Given a chain of continue_as_new runs
    first = await api.trigger("chain", 0)

    async def chain_done() -> Any:
        _status, body = await api.call("GET", f"/v1/runs/{first}/lineage")
        return body["data"] if len(body["data"]) == 3 and body["data"][-1]["status"] == "completed" else None

    chain = await eventually(chain_done, 15)
    # Then the lineage lists the three runs in order, from any of them, in the caller's project
    assert [r["input"] for r in chain] == [0, 1, 2] and all(r["project"] == "alpha" for r in chain)
    status, from_middle = await api.call("GET", f"/v1/runs/{chain[1]['id']}/lineage")
    assert [r["id"] for r in from_middle["data"]] == [r["id"] for r in chain]


async def test_events_checkpoints_steps_state_and_debug_bundle(api: ApiNode) -> None:
    # Given a failed run with an error log, and a run with checkpoints
    dead = await api.trigger("boom", None)
    cp = await api.trigger("checkpointer", None)
    await api.wait_status(dead)
    await api.wait_status(cp)
    # When its events are read, all and filtered
    status, events = await api.call("GET", f"/v1/runs/{dead}/events")
    assert status == 200
    types = [e["type"] for e in events["data"]]
    assert "log" in types and "attempt" in types and types[-1] == "status"
    status, errors = await api.call("GET", f"/v1/runs/{dead}/events", params={"level": "error"})
    # Then the level filter keeps the error log, the failed attempt and the dead_letter status
    assert {e["type"] for e in errors["data"]} == {"log", "attempt", "status"}
    assert all(e["level"] == "error" for e in errors["data"])
    status, logs = await api.call("GET", f"/v1/runs/{dead}/events", params={"type": "log"})
    assert [e["message"] for e in logs["data"]] == ["about to fail", "handler raised RuntimeError: boom"]
    # And checkpoints come back in sequence
    status, cps = await api.call("GET", f"/v1/runs/{cp}/checkpoints")
    assert status == 200 and [(c["sequence"], c["state"]) for c in cps["data"]] == [(1, {"n": 1}), (2, {"n": 2})]
    # And the state and the debug bundle gather everything
    status, state = await api.call("GET", f"/v1/runs/{cp}/state")
    assert status == 200 and state["latest_checkpoint"]["sequence"] == 2 and state["lease"] is None
    status, bundle = await api.call("GET", f"/v1/runs/{dead}/debug-bundle")
    assert status == 200 and bundle["run"]["id"] == dead and bundle["run"]["status"] == "dead_letter"
    assert len(bundle["events"]) == len(events["data"])
    assert set(bundle) == {"run", "events", "checkpoints", "usage", "tool_calls", "outputs", "steps", "children"}


async def test_usage_tool_calls_and_outputs_recorded_by_the_handler(api: ApiNode) -> None:
    # Given a run that records usage, a tool call and outputs
    run_id = await api.trigger("ai", {"words": ["a", "b"]})
    await api.wait_status(run_id)
    # When the records are read
    status, usage = await api.call("GET", f"/v1/runs/{run_id}/usage")
    assert status == 200
    # Then usage lists both calls with totals
    assert [(u["provider"], u["total_tokens"]) for u in usage["data"]] == [("openai", 120), ("anthropic", 15)]
    assert usage["total"] == {"prompt_tokens": 110, "completion_tokens": 25, "total_tokens": 135,
                              "cost_microusd": 1550, "calls": 2}
    status, tools = await api.call("GET", f"/v1/runs/{run_id}/tool-calls")
    assert [(t["tool_name"], t["input"], t["output"], t["duration_ms"]) for t in tools["data"]] == [
        ("search", {"q": "baton"}, {"hits": 3}, 12)]
    # And outputs keep the latest value per key, with its schema
    status, outputs = await api.call("GET", f"/v1/runs/{run_id}/outputs")
    assert [(o["output_key"], o["value"]) for o in outputs["data"]] == [("summary", {"text": "final"}),
                                                                        ("score", 0.9)]
    assert outputs["data"][0]["schema"] == {"type": "object", "required": ["text"]}


async def test_output_that_breaks_its_schema_fails_the_attempt(api: ApiNode) -> None:
    # Given a job whose output does not match its schema
    # When it runs
    run_id = await api.trigger("bad_output")
    run = await api.wait_status(run_id)
    # Then the attempt fails with the schema error
    assert run["status"] == "dead_letter" and "does not match its schema" in run["error"]["message"]


async def test_jobs_trigger_batch_and_events(api: ApiNode) -> None:
    # When the jobs are listed
    status, jobs = await api.call("GET", "/v1/jobs")
    # Then every job of the node is there with its options
    assert status == 200
    by_name = {j["name"]: j for j in jobs["data"]}
    assert {"echo", "boom", "gated", "waiter"} <= set(by_name) and by_name["boom"]["max_attempts"] == 1
    # When a run is triggered twice with one idempotency key, in alpha and in beta
    status, first = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1, "idempotency_key": "k1"})
    status2, second = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 2, "idempotency_key": "k1"})
    status3, beta = await api.call("POST", "/v1/jobs/echo/trigger", project="beta",
                                   json={"input": 3, "idempotency_key": "k1"})
    # Then the second answers the first run, and beta's key is its own
    assert (status, first["created"], first["outcome"]) == (201, True, "created")
    assert (status2, second["id"], second["outcome"]) == (200, first["id"], "idempotent")
    assert status3 == 201 and beta["id"] != first["id"] and beta["run"]["idempotency_key"] == "k1"
    # And an unknown job is a 404, a bad body a 400
    status, err = await api.call("POST", "/v1/jobs/nope/trigger", json={})
    assert status == 404 and err["code"] == "unknown_job"
    status, err = await api.call("POST", "/v1/jobs/echo/trigger", json={"priority": "high"})
    assert status == 400 and err["code"] == "bad_priority" and "[-1000, 1000]" in err["error"]
    status, err = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1, "unknown": 1})
    assert status == 400 and err["code"] == "invalid_body"
    # When a batch is triggered
    status, batch = await api.call("POST", "/v1/runs/batch", json={"runs": [
        {"job": "echo", "input": i} for i in range(3)]})
    # Then the runs share a batch id that filters the list
    assert status == 201 and len(batch["runs"]) == 3 and all(r["created"] for r in batch["runs"])
    status, page = await api.call("GET", "/v1/runs", params={"batch_id": batch["batch_id"]})
    assert {r["id"] for r in page["data"]} == {r["id"] for r in batch["runs"]}
    # When a run waits for an event and the event is sent by another project, then by its own
    waiting = await api.trigger("waiter", {"key": "order-7"})
    await api.wait_status(waiting, "waiting")
    status, sent = await api.call("POST", "/v1/events", project="beta", json={"key": "order-7", "data": {"by": "b"}})
    assert status == 200 and sent["woken"] == 0
    await asyncio.sleep(0.1)
    assert (await api.run(waiting))["status"] == "waiting"
    status, sent = await api.call("POST", "/v1/events", json={"key": "order-7", "data": {"by": "a"}})
    # Then only its own project's event wakes it
    assert status == 200 and sent["woken"] == 1
    assert (await api.wait_status(waiting))["output"] == {"by": "a"}


async def test_health_readiness_and_metrics(api: ApiNode) -> None:
    # When the operational endpoints are called without a key
    status, health = await api.call("GET", "/health", project=None)
    ready_status, ready = await api.call("GET", "/ready", project=None)
    await api.call("GET", "/v1/runs")
    metrics_status, metrics = await api.call("GET", "/metrics", project=None)
    # Then they answer, and /metrics has the node's and the API's metrics
    assert (status, health) == (200, {"status": "ok"})
    assert ready_status == 200 and ready == {"status": "ready", "redis": True, "draining": False}
    assert metrics_status == 200 and "baton_executor_slots" in metrics
    assert 'baton_api_requests_total{operation="listRuns",status="200"}' in metrics
    # When the node starts draining
    api.node.request_shutdown()
    # Then readiness turns 503 while the API still answers
    status, ready = await api.call("GET", "/ready", project=None)
    assert status == 503 and ready["draining"] is True


async def test_trigger_accepts_flow_control_options(api: ApiNode) -> None:
    # When runs are triggered with a debounce key twice within its window, in alpha and in beta
    body = {"input": 1, "debounce": {"key": "doc-9", "window": 30}}
    status, first = await api.call("POST", "/v1/jobs/echo/trigger", json=body)
    status2, second = await api.call("POST", "/v1/jobs/echo/trigger", json={**body, "input": 2})
    status3, beta = await api.call("POST", "/v1/jobs/echo/trigger", project="beta", json=body)
    # Then the second was absorbed into the first (the caller is told which run), beta's key is its own
    assert (status, first["outcome"]) == (201, "created")
    assert (second["id"], second["outcome"]) == (first["id"], "debounced") and status2 in (200, 201)
    assert beta["outcome"] == "created" and beta["id"] != first["id"] and status3 == 201
    # And a TTL is recorded on the run
    status, ttl_run = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 3, "ttl": 60, "delay": 30})
    assert status == 201 and ttl_run["run"]["status"] == "delayed"
    run = await api.app.get_run(ttl_run["id"])
    assert run is not None and run.raw.get("expires_at")
    # And a malformed option is a 400 with a JSON error
    status, err = await api.call("POST", "/v1/jobs/echo/trigger", json={"debounce": {"window": 1}})
    assert status == 400 and err["code"]
