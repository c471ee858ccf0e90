"""A Hatchet client against the hatchet view: runs in every status checked against seed 002's JSON
Schema, and every id the view emits (all UUIDs) accepted back by the API."""

from __future__ import annotations

import uuid

from tests.api.conftest import ApiNode
from tests.api.seeds import HATCHET, NATIVE, act_on_runs, every_page, release, runs_in_every_status

EXPECTED = {"completed": "COMPLETED", "dead_letter": "FAILED", "failed": "FAILED", "delayed": "QUEUED",
            "executing": "RUNNING", "waiting": "RUNNING", "paused": "QUEUED", "canceled": "CANCELLED",
            "child": "RUNNING", "queued": "QUEUED", "expired": "FAILED", "retrying": "QUEUED"}


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


async def test_a_hatchet_client_reads_runs_by_the_ids_it_is_given(api: ApiNode) -> None:
    # Given runs in every status, and runs whose ids the caller chose: long, short, and a UUID
    ids = await runs_in_every_status(api)
    chosen = {"long": "order-2026-12-02-customer-0001-shipment-0042-retry", "short": "o-1",
              "uuid": str(uuid.uuid4())}
    for name, run_id in chosen.items():
        status, body = await api.call("POST", "/v1/jobs/echo/trigger", json={"id": run_id, "input": {"n": name}})
        assert status == 201, body
        ids[name] = body["id"]
        await api.wait_status(body["id"])
    # When each is read in the hatchet view
    runs = {name: await api.run(run_id, view="hatchet") for name, run_id in ids.items()}
    # Then each is seed 002's V1WorkflowRun, in Hatchet's status vocabulary, with UUID ids
    for name, run in runs.items():
        HATCHET.validate(run)
        assert run["status"] == EXPECTED.get(name, "COMPLETED"), (name, run["status"])
        assert _is_uuid(run["id"]) and run["metadata"]["id"] == run["id"], run
    assert {EXPECTED[n] for n in NATIVE} == {"QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED"}
    assert runs["uuid"]["id"] == chosen["uuid"]  # a UUID id stays itself
    assert runs["dead_letter"]["input"] == {"value": [1, 2]} and runs["dead_letter"]["errorMessage"] == "boom"
    assert runs["completed"]["output"] == {"value": [0]} and runs["delayed"]["output"] == {}
    # And every id the view emits (the run's, its parent's) is accepted back and names that run
    for name, run in runs.items():
        again = await api.run(run["id"], view="hatchet")
        assert again["displayName"] == run["displayName"], name
    parent = await api.run(runs["child"]["parentTaskExternalId"], view="hatchet")
    assert parent["id"] == runs["waiting"]["id"] and _is_uuid(runs["child"]["parentTaskExternalId"])
    # When the runs are listed in the hatchet view, Then every item is a V1WorkflowRun whose id resolves
    status, page = await api.call("GET", "/v1/runs", params={"view": "hatchet", "limit": 100})
    assert status == 200 and {r["id"] for r in page["data"]} >= {r["id"] for r in runs.values()}
    for run in page["data"]:
        HATCHET.validate(run)
        assert (await api.run(run["id"], view="hatchet"))["id"] == run["id"]
    # And paging through the list meets every run once
    paged = await every_page(api, "hatchet")
    assert sorted(r["id"] for r in paged) == sorted(r["id"] for r in page["data"])
    for run in paged:
        HATCHET.validate(run)
    # When it acts on runs by their UUIDs, Then every run an answer carries is a V1WorkflowRun whose id resolves
    acted = await act_on_runs(api, "hatchet", {name: run["id"] for name, run in runs.items()})
    for run in acted:
        HATCHET.validate(run)
        assert _is_uuid(run["id"]) and (await api.run(run["id"], view="hatchet"))["id"] == run["id"]
    assert [r["status"] for r in acted[:5]] == ["QUEUED", "QUEUED", "QUEUED", "COMPLETED", "CANCELLED"]
    # And another project's key cannot resolve them
    status, _body = await api.call("GET", f"/v1/runs/{runs['long']['id']}", project="beta")
    assert status == 404
    release(api)
