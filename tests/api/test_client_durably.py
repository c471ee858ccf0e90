"""A durably client against the durably view: ClientRun, StepRecord and LogEntry exactly as seed 000
declares them (every field, no other, their types and enums), for runs in every status."""

from __future__ import annotations

from tests.api.conftest import ApiNode
from tests.api.seeds import (
    DURABLY_LOG,
    DURABLY_RUN,
    DURABLY_STEP,
    NATIVE,
    act_on_runs,
    every_page,
    release,
    runs_in_every_status,
)
from tests.nodes import eventually

EXPECTED = {"completed": "completed", "dead_letter": "failed", "failed": "failed", "delayed": "pending",
            "executing": "leased", "waiting": "pending", "paused": "pending", "canceled": "cancelled",
            "child": "leased", "queued": "pending", "expired": "failed", "retrying": "pending"}


async def test_a_durably_client_reads_runs_steps_and_logs(api: ApiNode) -> None:
    # Given runs in every status, and a run that waited for an event and got it
    ids = await runs_in_every_status(api)
    waiter = await api.trigger("waiter", {"key": "durably-k"})
    await api.wait_status(waiter, "waiting")
    _, waiting_steps = await api.call("GET", f"/v1/runs/{waiter}/steps", params={"view": "durably"})
    status, _sent = await api.call("POST", "/v1/events", json={"key": "durably-k", "data": {"ok": True}})
    assert status == 200
    await api.wait_status(waiter)
    # When each run is read in the durably view, Then it is exactly a ClientRun with durably's status
    for name, run_id in ids.items():
        run = await api.run(run_id, view="durably")
        DURABLY_RUN.validate(run)
        assert run["status"] == EXPECTED[name], (name, run["status"])
    assert {EXPECTED[n] for n in NATIVE} == {"pending", "leased", "completed", "failed", "cancelled"}
    done = await api.run(ids["completed"], view="durably")
    assert done["progress"] == {"current": 1, "total": 1, "message": "step 0 done"}
    assert (done["completedStepCount"], done["labels"], done["output"]) == (1, {"team": "x"}, [0])
    # (durably moves its current step past each step it completes)
    assert done["currentStepIndex"] == 1
    assert (await api.run(ids["dead_letter"], view="durably"))["error"] == "boom"
    # and a run has an error only when it failed (the seed: "Error message (when failed)")
    for name in ("canceled", "retrying"):
        assert (await api.run(ids[name], view="durably"))["error"] is None, name
    # And every run's steps are exactly durably's StepRecords: finished steps only (a wait in progress is
    # not a record yet, as in durably)
    assert waiting_steps == {"data": []}
    for run_id in [*ids.values(), waiter]:
        status, steps = await api.call("GET", f"/v1/runs/{run_id}/steps", params={"view": "durably"})
        assert status == 200
        for step in steps["data"]:
            DURABLY_STEP.validate(step)
        # ("Total number of completed steps": a wait that got its event is one, as the steps list it)
        completed = sum(1 for step in steps["data"] if step["status"] == "completed")
        assert (await api.run(run_id, view="durably"))["completedStepCount"] == completed, (run_id, steps)
    _, steps = await api.call("GET", f"/v1/runs/{ids['completed']}/steps", params={"view": "durably"})
    assert [(s["name"], s["status"], s["output"]) for s in steps["data"]] == [("s0", "completed", 0)]
    _, steps = await api.call("GET", f"/v1/runs/{waiter}/steps", params={"view": "durably"})
    assert [(s["status"], s["output"]) for s in steps["data"]] == [("completed", {"ok": True})]
    # And the waiting parent's wait for its children is not a step record yet
    _, parent_steps = await api.call("GET", f"/v1/runs/{ids['waiting']}/steps", params={"view": "durably"})
    _, native_steps = await api.call("GET", f"/v1/runs/{ids['waiting']}/steps")
    assert parent_steps == {"data": []} and [s["status"] for s in native_steps["data"]] == ["waiting"]
    # And every run's logs are exactly durably's LogEntries
    for run_id in [*ids.values(), waiter]:
        status, logs = await api.call("GET", f"/v1/runs/{run_id}/logs")
        assert status == 200
        for entry in logs["data"]:
            DURABLY_LOG.validate(entry)
            assert entry["runId"] == run_id
    _, logs = await api.call("GET", f"/v1/runs/{ids['dead_letter']}/logs")
    assert [(e["level"], e["message"], e["data"]) for e in logs["data"]] == [
        ("error", "about to fail", {"reason": "test"}), ("warn", "handler raised RuntimeError: boom", None)]

    async def executing_logs() -> list[tuple[str, str]]:
        _, logs = await api.call("GET", f"/v1/runs/{ids['executing']}/logs")
        return [(e["level"], e["message"]) for e in logs["data"]]

    # (an executing run's logs are readable once its node flushes them)
    assert await eventually(executing_logs, 15) == [("info", "waiting for gate views-hold")]
    # When the runs are listed in the durably view, Then every item is a ClientRun
    status, page = await api.call("GET", "/v1/runs", params={"view": "durably", "limit": 100})
    assert status == 200 and {r["id"] for r in page["data"]} >= set(ids.values())
    for run in page["data"]:
        DURABLY_RUN.validate(run)
    # And paging through the list meets every run once
    paged = await every_page(api, "durably")
    assert sorted(r["id"] for r in paged) == sorted(r["id"] for r in page["data"])
    for run in paged:
        DURABLY_RUN.validate(run)
    # And a status filter takes durably's statuses, selecting the runs that show them
    _, now = await api.call("GET", "/v1/runs", params={"view": "durably", "limit": 100})
    shown = {r["id"]: r["status"] for r in now["data"]}
    for wanted in ("pending", "leased", "failed,cancelled"):
        status, filtered = await api.call("GET", "/v1/runs", params={"view": "durably", "status": wanted,
                                                                      "limit": 100})
        assert status == 200, filtered
        assert {r["id"] for r in filtered["data"]} == {i for i, s in shown.items() if s in wanted.split(",")}, wanted
    # When it acts on runs, Then every run an answer carries is a ClientRun
    acted = await act_on_runs(api, "durably", ids)
    for run in acted:
        DURABLY_RUN.validate(run)
    assert [r["status"] for r in acted[:5]] == ["pending", "pending", "pending", "completed", "cancelled"]
    release(api)


def test_every_endpoint_taking_a_run_id_takes_the_view_too() -> None:
    # Given every endpoint whose path names a run (a seed system's client sends its view on every call)
    from runtime.api.routes import ROUTES

    with_run_id = [r for r in ROUTES if "{run_id}" in r.path and r.path.startswith("/v1/")]
    # Then each declares the view parameter (else it answered 400 unknown query parameter)
    assert with_run_id and all(any(p.name == "view" for p in r.params) for r in with_run_id), [
        f"{r.method} {r.path}" for r in with_run_id if not any(p.name == "view" for p in r.params)]


async def test_a_seed_client_may_send_its_view_to_the_run_endpoints_that_answer_no_run(api: ApiNode) -> None:
    # Given a finished run
    run_id = await api.trigger("echo", {"n": 1})
    await api.wait_status(run_id, "completed")
    # When a durably client reads its logs, state and query with ?view=durably (as it reads runs and steps)
    for path in ("logs", "state", "query"):
        plain = await api.call("GET", f"/v1/runs/{run_id}/{path}")
        viewed = await api.call("GET", f"/v1/runs/{run_id}/{path}", params={"view": "durably"})
        # Then the answer is the same as without it, not a 400
        assert viewed[0] == plain[0] == 200, (path, viewed, plain)
        assert viewed[1] == plain[1] or path == "logs", (path, viewed, plain)
