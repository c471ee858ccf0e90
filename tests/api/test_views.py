"""Views: each seed system's shape, produced from native runs in every status, validates against
that seed's schema (002, 004: JSON Schemas; 000: ClientRun field list; 001: structure; 003: examples)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

from runtime.api.views import status_durably, status_hatchet, status_strait, status_trigger
from runtime.records import Attempt, Run
from tests.api.conftest import ApiNode

SCHEMAS = Path(__file__).parent / "schemas"
FORMATS = FormatChecker()
TRIGGER = Draft7Validator(json.loads((SCHEMAS / "trigger-dev-run.schema.json").read_text()), format_checker=FORMATS)
HATCHET = Draft202012Validator(json.loads((SCHEMAS / "hatchet-v1-workflow-run.schema.json").read_text()),
                               format_checker=FORMATS)
DURABLY = Draft202012Validator(json.loads((SCHEMAS / "durably-client-run.schema.json").read_text()),
                               format_checker=FORMATS)
TRIGGER_STRUCTURE = json.loads((SCHEMAS / "trigger-dev-run-structure.json").read_text())
STRAIT_RUN = json.loads((SCHEMAS / "strait-run.example.json").read_text())
STRAIT_OBJECTS = json.loads((SCHEMAS / "strait-objects.example.json").read_text())
#: seed 003's status list (List runs, query parameter "status")
STRAIT_STATUSES = {"delayed", "queued", "dequeued", "executing", "waiting", "completed", "failed", "timed_out",
                   "crashed", "system_failed", "canceled", "expired", "dead_letter"}


def test_format_checks_are_real() -> None:
    # Given the format checker the view tests use: date-time and uuid are really checked
    assert not FORMATS.conforms("yesterday", "date-time") and FORMATS.conforms("2024-01-02T03:04:05.678Z",
                                                                               "date-time")
    assert not FORMATS.conforms("not-a-uuid", "uuid")


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}[type(value)]


def like_example(obj: dict[str, Any], example: dict[str, Any], exact: bool = True, where: str = "") -> None:
    """obj has the example's fields (exactly, or at least) with the example's JSON types (or null)."""
    keys, wanted = set(obj), set(example)
    assert (keys == wanted) if exact else (wanted <= keys), (where, keys ^ wanted if exact else wanted - keys)
    for name, sample in example.items():
        value = obj[name]
        if value is None or sample == {}:  # {} in the examples stands for any JSON value
            continue
        assert _kind(value) == _kind(sample), (where, name, value, sample)
        if isinstance(sample, dict):
            if set(sample) == {"property1", "property2"}:  # a map of strings
                assert all(isinstance(v, str) for v in value.values()), (where, name, value)
            else:
                like_example(value, sample, exact, f"{where}.{name}")


def check_strait(run: dict[str, Any]) -> None:
    like_example(run, STRAIT_RUN, where="strait run")
    assert run["status"] in STRAIT_STATUSES
    for name in ("created_at", "scheduled_at", "started_at", "finished_at"):
        assert run[name] is None or FORMATS.conforms(run[name], "date-time"), (name, run[name])


async def runs_in_every_status(api: ApiNode) -> dict[str, str]:
    """A run id per interesting state, all in project alpha."""
    ids = {
        "completed": await api.trigger("steps", {"n": 1, "gate": "views"}, labels={"team": "x"},
                                       tags=["a", "b"], metadata={"n": 1, "nested": {"k": [1]}}, version="7"),
        "dead_letter": await api.trigger("boom", [1, 2]),
        "failed": await api.trigger("fatal", "text input"),
        "delayed": await api.trigger("echo", None, delay=60),
        "executing": await api.trigger("gated", {"gate": "views-hold"}),
        "waiting": await api.trigger("parent", {"gate": "views-children"}),
        "paused": await api.trigger("echo", 5, delay=60),
        "canceled": await api.trigger("echo", 6, delay=60),
    }
    api.gates.open("views-0")
    await api.call("POST", f"/v1/runs/{ids['paused']}/pause")
    await api.call("DELETE", f"/v1/runs/{ids['canceled']}")
    for name in ("completed", "dead_letter", "failed"):
        await api.wait_status(ids[name])
    await api.wait_status(ids["executing"], "executing")
    await api.wait_status(ids["waiting"], "waiting")
    _status, children = await api.call("GET", f"/v1/runs/{ids['waiting']}/children")
    ids["child"] = children["data"][0]["id"]
    return ids


async def test_every_view_validates_against_its_seed(api: ApiNode) -> None:
    # Given runs in every status (with progress, steps, labels, tags, metadata, attempts, errors, a parent)
    ids = await runs_in_every_status(api)
    seen: dict[str, set[str]] = {"trigger": set(), "hatchet": set(), "durably": set(), "strait": set()}
    for name, run_id in ids.items():
        # When each is read in each view
        trigger = await api.run(run_id, view="trigger")
        hatchet = await api.run(run_id, view="hatchet")
        durably = await api.run(run_id, view="durably")
        strait = await api.run(run_id, view="strait")
        # Then each validates against its seed's schema or field list
        TRIGGER.validate(trigger)
        HATCHET.validate(hatchet)
        DURABLY.validate(durably)
        check_strait(strait)
        structure = set(TRIGGER_STRUCTURE["structure"]) - ({"output"} if name != "completed" else set())
        assert structure <= set(trigger), (name, structure - set(trigger))
        assert set(trigger["relatedRuns"]) <= set(TRIGGER_STRUCTURE["structure"]["relatedRuns"])
        for view, body in (("trigger", trigger), ("hatchet", hatchet), ("durably", durably), ("strait", strait)):
            seen[view].add(body["status"])
    # And the statuses map as documented
    assert seen["trigger"] >= {"COMPLETED_SUCCESSFULLY", "COMPLETED_WITH_ERRORS", "DELAYED", "EXECUTING",
                               "WAITING_TO_RESUME", "CANCELLED"}
    assert seen["hatchet"] == {"COMPLETED", "FAILED", "QUEUED", "RUNNING", "CANCELLED"}
    assert seen["durably"] == {"completed", "failed", "pending", "leased", "cancelled"}
    assert seen["strait"] >= {"completed", "dead_letter", "failed", "delayed", "executing", "waiting", "canceled"}
    # And the view-specific details hold
    done = await api.run(ids["completed"], view="trigger")
    assert done["id"] == f"run_{ids['completed']}" and done["output"] == [0] and done["version"] == "7"
    assert (await api.run(f"run_{ids['completed']}", view="trigger"))["id"] == done["id"]  # prefixed ids resolve
    hatchet_child = await api.run(ids["child"], view="hatchet")
    assert len(hatchet_child["parentTaskExternalId"]) == 36
    assert (await api.run(ids["dead_letter"], view="hatchet"))["input"] == {"value": [1, 2]}
    durably_done = await api.run(ids["completed"], view="durably")
    assert durably_done["progress"] == {"current": 1, "total": 1, "message": "step 0 done"}
    assert durably_done["completedStepCount"] == 1 and durably_done["labels"] == {"team": "x"}
    strait_done = await api.run(ids["completed"], view="strait")
    assert strait_done["job_version"] == 7 and strait_done["tags"] == {"team": "x", "a": "true", "b": "true"}
    assert strait_done["metadata"] == {"n": "1", "nested": '{"k":[1]}'} and strait_done["project_id"] == "alpha"
    assert (strait_done["retry_backoff"], strait_done["retry_initial_delay_secs"],
            strait_done["retry_max_delay_secs"]) == ("exponential", 1, 300)
    parent_trigger = await api.run(ids["waiting"], view="trigger")
    assert {c["id"] for c in parent_trigger["relatedRuns"]["children"]} == {f"run_{ids['child']}"} | {
        f"run_{c}" for c in await api.app.get_children(ids["waiting"])}
    # And list endpoints return every item in the chosen view, also by header
    status, page = await api.call("GET", "/v1/runs", params={"view": "hatchet"})
    for item in page["data"]:
        HATCHET.validate(item)
    status, page = await api.call("GET", "/v1/runs", headers={"X-Baton-View": "durably"})
    for item in page["data"]:
        DURABLY.validate(item)
    status, _err = await api.call("GET", "/v1/runs", headers={"X-Baton-View": "nope"})
    assert status == 400
    api.gates.open("views-hold")
    api.gates.open("views-children")


async def test_strait_shaped_records_match_the_seed_examples(api: ApiNode) -> None:
    # Given runs that produced events, checkpoints, usage, tool calls and outputs
    ai = await api.trigger("ai", {"words": []})
    cp = await api.trigger("checkpointer", None)
    await api.wait_status(ai)
    await api.wait_status(cp)
    # When they are read
    _, events = await api.call("GET", f"/v1/runs/{ai}/events")
    _, checkpoints = await api.call("GET", f"/v1/runs/{cp}/checkpoints")
    _, usage = await api.call("GET", f"/v1/runs/{ai}/usage")
    _, tools = await api.call("GET", f"/v1/runs/{ai}/tool-calls")
    _, outputs = await api.call("GET", f"/v1/runs/{ai}/outputs")
    _, deps = await api.call("GET", f"/v1/runs/{ai}/dependency-status")
    _, bulk = await api.call("POST", "/v1/runs/bulk-cancel", json={"run_ids": [ai]})
    _, reset = await api.call("DELETE", f"/v1/runs/{ai}/idempotency-key")
    # Then each has the fields of seed 003's example (with their types; more fields are allowed)
    for item in events["data"]:
        like_example(item, STRAIT_OBJECTS["event"], exact=False, where="event")
    for name, items in (("checkpoint", checkpoints), ("usage", usage), ("tool_call", tools), ("output", outputs)):
        assert items["data"], name
        for item in items["data"]:
            like_example(item, STRAIT_OBJECTS[name], exact=False, where=name)
    like_example(deps, {k: v for k, v in STRAIT_OBJECTS["dependency_status"].items() if k != "dependencies"},
                 exact=False, where="dependency status")
    like_example(bulk, STRAIT_OBJECTS["bulk_cancel"], exact=False, where="bulk cancel")
    like_example(reset, STRAIT_OBJECTS["idempotency_reset"], exact=False, where="idempotency reset")


def _run(status: str, attempt: int = 0, last: str | None = None) -> Run:
    run = Run.from_hash({"id": "r", "job": "j", "status": status, "attempt": str(attempt)})
    return replace(run, attempts=[Attempt(1, last, 1, 2, "n", None)] if last else [])


@pytest.mark.parametrize(("native", "attempt", "last", "trigger", "hatchet", "durably", "strait"), [
    ("queued", 0, None, "QUEUED", "QUEUED", "pending", "queued"),
    ("delayed", 0, None, "DELAYED", "QUEUED", "pending", "delayed"),
    ("delayed", 1, "failed", "REATTEMPTING", "QUEUED", "pending", "delayed"),
    ("executing", 1, None, "EXECUTING", "RUNNING", "leased", "executing"),
    ("waiting", 1, "waiting", "WAITING_TO_RESUME", "RUNNING", "pending", "waiting"),
    ("paused", 0, None, "WAITING_TO_RESUME", "QUEUED", "pending", "waiting"),
    ("completed", 1, "completed", "COMPLETED_SUCCESSFULLY", "COMPLETED", "completed", "completed"),
    ("failed", 1, "failed", "COMPLETED_WITH_ERRORS", "FAILED", "failed", "failed"),
    ("dead_letter", 3, "failed", "COMPLETED_WITH_ERRORS", "FAILED", "failed", "dead_letter"),
    ("dead_letter", 3, "crashed", "CRASHED", "FAILED", "failed", "dead_letter"),
    ("dead_letter", 3, "timed_out", "TIMED_OUT", "FAILED", "failed", "dead_letter"),
    ("canceled", 1, "canceled", "CANCELLED", "CANCELLED", "cancelled", "canceled"),
    ("expired", 0, None, "EXPIRED", "FAILED", "failed", "expired"),
])
def test_status_mapping(native: str, attempt: int, last: str | None, trigger: str, hatchet: str, durably: str,
                        strait: str) -> None:
    # Given a native run in a status (and its last attempt's outcome)
    run = _run(native, attempt, last)
    # Then each view names it as the module's table says
    assert (status_trigger(run), status_hatchet(native), status_durably(native), status_strait(native)) == (
        trigger, hatchet, durably, strait)
