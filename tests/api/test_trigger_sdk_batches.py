"""Trigger.dev's batch API, as @trigger.dev/sdk 4.x calls it for batch.trigger and tasks.batchTrigger: a
batch made first, its items streamed as NDJSON (sent again after a failure), then batch.retrieve; and the
one-request batch of earlier 4.x SDKs. Every answer is checked against the SDK's response shape (the
OpenAPI components, written from its zod schemas)."""

from __future__ import annotations

from typing import Any

import orjson
from jsonschema import Draft202012Validator

from runtime.api.routing import component
from tests.api.conftest import ApiNode

NDJSON = {"Content-Type": "application/x-ndjson"}


def _valid(name: str, value: Any) -> None:
    errors = [e.message for e in Draft202012Validator(component(name)).iter_errors(value)]
    assert not errors, (name, errors, value)


def item(index: int, task: str, payload: Any, **options: Any) -> dict[str, Any]:
    """A line of the stream as the SDK writes it: the payload as superjson text, its type and size."""
    return {"index": index, "task": task, "payload": orjson.dumps({"json": payload}).decode(),
            "options": {"payloadType": "application/super+json", "payloadSize": 12, **options}}


def ndjson(items: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(i) + b"\n" for i in items)


async def create(api: ApiNode, run_count: int, project: str = "alpha", **body: Any) -> tuple[int, Any]:
    return await api.call("POST", "/api/v3/batches", project=project, json={"runCount": run_count, **body})


async def stream(api: ApiNode, batch_id: str, items: list[dict[str, Any]], project: str = "alpha") -> tuple[int, Any]:
    return await api.call("POST", f"/api/v3/batches/{batch_id}/items", project=project, data=ndjson(items),
                          headers=NDJSON)


async def batch_runs(api: ApiNode, batch_id: str) -> set[str]:
    """The runs runs.list finds by the batch filter (the ids the trigger API shows)."""
    status, page = await api.call("GET", "/api/v1/runs", params={"filter[batch]": batch_id, "page[size]": "100"})
    assert status == 200, page
    return {run["id"] for run in page["data"]}


async def test_a_batch_streamed_twice_makes_each_items_run_once_and_says_which_failed(api: ApiNode) -> None:
    # Given a batch of four items, the first call of batch.trigger
    status, made = await create(api, 4, taskIdentifiers=["echo", "no_such_task"])
    assert status == 200 and made["runCount"] == 4 and made["isCached"] is False, made
    _valid("TriggerApiBatchCreated", made)
    batch_id = made["id"]
    items = [item(0, "echo", {"n": 0}, tags=["b"]), item(1, "echo", {"n": 1}), item(2, "no_such_task", {}),
             item(3, "echo", {"n": 3}, machine="small-1x")]
    # When the stream is cut after two items
    status, first = await stream(api, batch_id, [items[0], items[2]])
    # Then those two are taken and the batch is not sealed: the SDK sends the stream again
    assert status == 200 and first == {"id": batch_id, "itemsAccepted": 2, "itemsDeduplicated": 0, "sealed": False,
                                       "enqueuedCount": 2, "expectedCount": 4}, first
    _valid("TriggerApiBatchItemsResult", first)
    status, partial = await api.call("GET", f"/api/v2/batches/{batch_id}")
    assert status == 200 and partial["status"] == "PROCESSING" and "completedAt" not in partial["processing"], partial
    # When the whole stream comes again
    status, second = await stream(api, batch_id, items)
    # Then only the new items count, and the batch is sealed
    assert status == 200 and second == {"id": batch_id, "itemsAccepted": 2, "itemsDeduplicated": 2,
                                        "sealed": True}, second
    # And each good item made one run, named after the batch and its index (in the project's namespace), whose
    # input is the payload
    status, batch = await api.call("GET", f"/api/v2/batches/{batch_id}")
    assert status == 200, batch
    _valid("TriggerApiBatch", batch)
    assert batch["runs"] == [f"run_alpha:{batch_id}_0", f"run_alpha:{batch_id}_1"], batch
    assert await batch_runs(api, batch_id) == set(batch["runs"])
    for n, run_id in zip((0, 1), batch["runs"], strict=True):
        assert (await api.wait_status(run_id.removeprefix("run_")))["output"] == {"n": n}
        status, retrieved = await api.call("GET", f"/api/v3/runs/{run_id}")
        assert retrieved["batchId"] == batch_id and retrieved["triggerFunction"] == "batchTrigger", retrieved
    assert (await api.run(batch["runs"][0].removeprefix("run_"), view="native"))["tags"] == ["b"]
    # And the items that made none say why, as Trigger.dev's processing errors
    assert batch["status"] == "PARTIAL_FAILED" and batch["runCount"] == 4, batch
    errors = {e["index"]: e for e in batch["processing"]["errors"]}
    assert set(errors) == {2, 3}, errors
    assert errors[2]["taskIdentifier"] == "no_such_task" and errors[2]["errorCode"] == "unknown_job", errors
    assert errors[3]["errorCode"] == "unsupported_parameter" and "machine" in errors[3]["error"], errors
    # And a third stream of the same items makes nothing more
    status, third = await stream(api, batch_id, items)
    assert third["itemsAccepted"] == 0 and third["itemsDeduplicated"] == 4 and third["sealed"], third
    assert len(await batch_runs(api, batch_id)) == 2


async def test_a_batch_reads_pending_then_completed_and_aborted_when_no_item_made_a_run(api: ApiNode) -> None:
    # Given a sealed batch whose runs wait on a gate
    _, made = await create(api, 2)
    items = [item(i, "gated", {"gate": "batch"}) for i in range(2)]
    assert (await stream(api, made["id"], items))[1]["sealed"] is True
    # Then it is PENDING while a run has not finished
    _, batch = await api.call("GET", f"/api/v2/batches/{made['id']}")
    assert batch["status"] == "PENDING" and batch["processing"] == {"errors": [], "completedAt": batch["processing"][
        "completedAt"]}, batch
    # And COMPLETED once all have
    api.gates.open("batch")
    for run_id in batch["runs"]:
        await api.wait_status(run_id.removeprefix("run_"), "completed")
    _, done = await api.call("GET", f"/api/v2/batches/{made['id']}")
    assert done["status"] == "COMPLETED" and done["updatedAt"] >= done["createdAt"], done
    # And a batch none of whose items could make a run is ABORTED
    _, lost = await create(api, 1)
    await stream(api, lost["id"], [item(0, "no_such_task", {})])
    _, aborted = await api.call("GET", f"/api/v2/batches/{lost['id']}")
    assert aborted["status"] == "ABORTED" and aborted["runs"] == [], aborted


async def test_an_idempotency_key_names_one_batch_per_project(api: ApiNode) -> None:
    # When batch.trigger is called twice with one idempotency key
    _, first = await create(api, 2, idempotencyKey="nightly-2026-12-07")
    _, again = await create(api, 5, idempotencyKey="nightly-2026-12-07")
    # Then the second answers the first batch, cached (the SDK sends no items then), as it was made
    assert again == {"id": first["id"], "runCount": 2, "isCached": True, "idempotencyKey": "nightly-2026-12-07"}
    assert first["isCached"] is False
    # And another project's key of the same text is another batch, which alpha cannot see
    _, theirs = await create(api, 2, project="beta", idempotencyKey="nightly-2026-12-07")
    assert theirs["id"] != first["id"] and theirs["isCached"] is False
    for method, path, data in (("GET", f"/api/v2/batches/{theirs['id']}", None),
                               ("POST", f"/api/v3/batches/{theirs['id']}/items", ndjson([item(0, "echo", 1)])),
                               ("GET", "/api/v2/batches/batch_0000", None)):
        status, answer = await api.call(method, path, data=data, headers=NDJSON if data else None)
        assert status == 404 and answer["code"] == "not_found", (path, answer)


async def test_bad_batches_and_streams_answer_400_and_make_no_run(api: ApiNode) -> None:
    _, made = await create(api, 2)
    good = item(0, "echo", {"n": 1})
    for body, code, named in (
            (ndjson([good]) + b"{not json\n", "invalid_json", "line 2"),
            (ndjson([good, {"index": 1, "payload": "1"}]), "invalid_body", "line 2"),  # no task
            (ndjson([good, {**item(1, "echo", 1), "extra": True}]), "invalid_body", "line 2"),
            (ndjson([good, item(2, "echo", 1)]), "invalid_body", "index 2"),  # past runCount
            (ndjson([good, item(-1, "echo", 1)]), "invalid_body", "line 2")):
        status, answer = await api.call("POST", f"/api/v3/batches/{made['id']}/items", data=body, headers=NDJSON)
        assert status == 400 and answer["code"] == code and named in answer["error"], (body, answer)
    assert await batch_runs(api, made["id"]) == set()
    for body, code in (({"runCount": 0}, "invalid_body"), ({"runCount": 1001}, "invalid_body"), ({}, "invalid_body"),
                       ({"runCount": 1, "parentRunId": "run_x"}, "unsupported_parameter"),
                       ({"runCount": 1, "resumeParentOnCompletion": True}, "unsupported_parameter")):
        status, answer = await api.call("POST", "/api/v3/batches", json=body)
        assert status == 400 and answer["code"] == code, (body, answer)
    status, answer = await api.call("POST", f"/api/v3/batches/{made['id']}/items", project=None, data=ndjson([good]),
                                    headers=NDJSON)
    assert status == 401, answer


async def test_a_one_request_batch_of_earlier_sdks_makes_a_batch_of_its_items(api: ApiNode) -> None:
    # When an earlier 4.x SDK posts every item at once (batchTriggerV3)
    body = {"items": [{k: v for k, v in item(0, "echo", {"n": i}).items() if k != "index"} for i in range(3)]}
    status, made = await api.call("POST", "/api/v2/tasks/batch", json=body)
    # Then it is a batch of those runs, indexed by place
    assert status == 200 and made["runCount"] == 3 and made["id"].startswith("batch_"), made
    _valid("TriggerApiBatchTriggered", made)
    _, batch = await api.call("GET", f"/api/v2/batches/{made['id']}")
    assert batch["runs"] == [f"run_alpha:{made['id']}_{i}" for i in range(3)], batch
    for i, run_id in enumerate(batch["runs"]):
        assert (await api.wait_status(run_id.removeprefix("run_")))["output"] == {"n": i}
    status, answer = await api.call("POST", "/api/v2/tasks/batch", json={**body, "parentRunId": "run_x"})
    assert status == 400 and answer["code"] == "unsupported_parameter", answer


async def test_an_item_stream_over_max_body_bytes_is_refused_whole(api: ApiNode) -> None:
    # Given a batch whose items, streamed as the SDK streams them (chunked, no length), exceed max_body_bytes
    _, made = await create(api, 2)
    big = [item(i, "echo", {"blob": "x" * 600_000}) for i in range(2)]

    async def chunks() -> Any:
        for line in big:
            yield orjson.dumps(line) + b"\n"

    async with api.http.post(f"{api.url}/api/v3/batches/{made['id']}/items", data=chunks(),
                             headers={**api.auth(), **NDJSON}) as resp:
        answer = await resp.json()
    # Then the answer is 413 in Baton's error shape, and no item made a run
    assert resp.status == 413 and answer["code"] == "body_too_large", answer
    assert await batch_runs(api, made["id"]) == set()
