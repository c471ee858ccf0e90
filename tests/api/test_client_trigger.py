"""A Trigger.dev client against the trigger view: runs in every status, read one by one and listed,
checked against seed 004's JSON Schema and seed 001's run structure (its field list and statuses)."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import ApiNode
from tests.api.seeds import (
    NATIVE,
    TRIGGER,
    TRIGGER_STRUCTURE,
    act_on_runs,
    every_page,
    release,
    runs_in_every_status,
)

#: each kind of run (seeds.NATIVE) as Trigger.dev names its status
EXPECTED = {"completed": "COMPLETED_SUCCESSFULLY", "dead_letter": "COMPLETED_WITH_ERRORS",
            "failed": "COMPLETED_WITH_ERRORS", "delayed": "DELAYED", "executing": "EXECUTING",
            "waiting": "WAITING_TO_RESUME", "paused": "WAITING_TO_RESUME", "canceled": "CANCELLED",
            "child": "EXECUTING", "queued": "QUEUED", "expired": "EXPIRED", "retrying": "REATTEMPTING"}
STRUCTURE = set(TRIGGER_STRUCTURE["structure"])
STATUSES = set(TRIGGER_STRUCTURE["runStatuses"]["terminal"]) | set(TRIGGER_STRUCTURE["runStatuses"]["active"])
#: attempt statuses Trigger.dev's API returns (seed 001 leaves the field a string)
ATTEMPT_STATUSES = {"PENDING", "EXECUTING", "PAUSED", "FAILED", "CANCELED", "COMPLETED"}


def check(run: dict[str, Any], versioned: bool) -> None:
    """Seed 004's schema, and seed 001's structure: exactly its fields (output only once completed,
    version only for a run of a versioned job: one that is not is locked to no deployment version)."""
    TRIGGER.validate(run)
    wanted = STRUCTURE - ({"output"} if run["status"] != "COMPLETED_SUCCESSFULLY" else set()) - (
        set() if versioned else {"version"})
    assert set(run) == wanted, (run["id"], set(run) ^ wanted)
    assert run["status"] in STATUSES and set(run["relatedRuns"]) <= set(TRIGGER_STRUCTURE["structure"]["relatedRuns"])
    assert run["version"] != "" if versioned else "version" not in run
    for attempt in run["attempts"]:
        assert set(attempt) <= set(TRIGGER_STRUCTURE["structure"]["attempts"]["_item"]), attempt
        assert attempt["status"] in ATTEMPT_STATUSES and "startedAt" in attempt, attempt


async def test_a_trigger_client_reads_runs_in_every_status(api: ApiNode) -> None:
    # Given runs in every status
    ids = await runs_in_every_status(api)
    # When each is read in the trigger view
    runs = {name: await api.run(run_id, view="trigger") for name, run_id in ids.items()}
    # Then each is seed 004's run and seed 001's structure, in Trigger.dev's status vocabulary
    for name, run in runs.items():
        check(run, versioned=name == "completed")
        assert run["status"] == EXPECTED[name], (name, run["status"])
        assert run["id"] == f"run_{ids[name]}"
    assert {r["status"] for r in runs.values()} == set(EXPECTED.values())
    done = runs["completed"]
    assert done["output"] == [0] and done["version"] == "7" and done["payload"] == {"n": 1, "gate": "views"}
    assert done["attempts"][-1]["status"] == "COMPLETED" and done["tags"] == ["a", "b"]
    # And an executing run shows its attempt in progress, as Trigger.dev does
    for name in ("executing", "child"):
        current = runs[name]["attempts"][-1]
        assert current["status"] == "EXECUTING" and current["completedAt"] is None and current["startedAt"], current
    assert runs["dead_letter"]["attempts"][-1]["error"]["message"] == "boom"
    # And a child's root and parent are the runs' summaries, and a parent lists its children
    parent = {"id": f"run_{ids['waiting']}", "status": "WAITING_TO_RESUME", "taskIdentifier": "parent"}
    assert runs["child"]["relatedRuns"] == {"root": parent, "parent": parent, "children": []}
    children = runs["waiting"]["relatedRuns"]["children"]
    assert {c["id"] for c in children} == {f"run_{c}" for c in await api.app.get_children(ids["waiting"])}
    assert all(c["status"] == "EXECUTING" and c["taskIdentifier"] == "gated" for c in children)
    # And every id the view emits is accepted back, naming the same run
    for ref in [runs["child"]["relatedRuns"]["parent"], *children, done]:
        assert (await api.run(ref["id"], view="trigger"))["id"] == ref["id"]
    # When the runs are listed in the trigger view, Then every item is a Trigger.dev run as well
    status, page = await api.call("GET", "/v1/runs", params={"view": "trigger", "limit": 100})
    assert status == 200 and {r["id"] for r in page["data"]} >= {f"run_{i}" for i in ids.values()}
    for run in page["data"]:
        check(run, versioned=run["id"] == done["id"])
    listed_child = next(r for r in page["data"] if r["id"] == runs["child"]["id"])
    assert listed_child["relatedRuns"] == {"root": parent, "parent": parent}
    # And paging through the list in the trigger view meets every run once
    paged = await every_page(api, "trigger")
    assert sorted(r["id"] for r in paged) == sorted(r["id"] for r in page["data"])
    for run in paged:
        check(run, versioned=run["id"] == done["id"])
    # When it acts on runs by their run_ ids, Then every run an answer carries is a Trigger.dev run
    acted = await act_on_runs(api, "trigger", {name: run["id"] for name, run in runs.items()})
    for run in acted:
        check(run, versioned=run["taskIdentifier"] == "steps")
    assert [r["status"] for r in acted[:5]] == ["WAITING_TO_RESUME", "QUEUED", "WAITING_TO_RESUME",
                                                "COMPLETED_SUCCESSFULLY", "CANCELLED"]
    # And a view chosen by header works alike, and an unknown one is refused
    status, page = await api.call("GET", "/v1/runs", headers={"X-Baton-View": "trigger"})
    assert status == 200 and all(r["id"].startswith("run_") for r in page["data"])
    status, _err = await api.call("GET", "/v1/runs", headers={"X-Baton-View": "nope"})
    assert status == 400
    release(api)
    assert set(NATIVE) == set(EXPECTED)


async def test_each_trigger_view_id_names_one_run(api: ApiNode) -> None:
    # Given two runs whose own ids are "x13737" and "run_x13737": the view shows them as run_<id>
    for own, who in (("x13737", "plain"), ("run_x13737", "prefixed")):
        await api.trigger("echo", {"who": who}, id=own)
    status, page = await api.call("GET", "/v1/runs", params={"view": "trigger", "limit": 100})
    assert status == 200
    shown = {run["id"]: run["payload"]["who"] for run in page["data"]
             if isinstance(run["payload"], dict) and run["payload"].get("who") in ("plain", "prefixed")}
    assert sorted(shown.values()) == ["plain", "prefixed"] and all(i.startswith("run_") for i in shown), shown
    # When each is read back by the id the view gave it, and by the short form of that id
    for view_id, who in shown.items():
        # Then it is that run, not the other one whose own id is the same text
        assert (await api.run(view_id, view="trigger"))["payload"] == {"who": who}
    assert (await api.run("run_x13737", view="trigger"))["payload"] == {"who": "plain"}
    assert (await api.run("run_run_x13737", view="trigger"))["payload"] == {"who": "prefixed"}


async def test_an_action_answers_the_id_its_view_shows(api: ApiNode) -> None:
    # Given delayed runs, acted on by clients of the trigger and hatchet views with the ids those views show
    for view in ("trigger", "hatchet"):
        run_id = await api.trigger("echo", {"n": 1}, delay=60)
        shown = await api.run(run_id, view=view)
        view_id = shown["id"] if view == "trigger" else shown["metadata"]["id"]
        # When one is canceled
        status, body = await api.call("DELETE", f"/v1/runs/{view_id}", params={"view": view})
        # Then the answer's id is the one that view gave, as is its run's
        assert status == 200 and body["result"] == "canceled", body
        assert body["id"] == view_id != run_id, (view, body["id"], view_id)
