"""Run control over HTTP: pause/resume, reschedule, restart, idempotency-key reset, debug mode."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.api.conftest import ApiNode
from tests.nodes import eventually


async def test_pausing_a_queued_run_keeps_it_from_being_leased_until_resumed(api: ApiNode) -> None:
    # Given a job limited to one run at a time: one run executing, a second one queued behind it
    first = await api.trigger("single", {"gate": "g-single"})
    await api.wait_status(first, "executing")
    second = await api.trigger("single", {"x": 1})
    assert (await api.run(second))["status"] == "queued"
    # When the queued one is paused
    status, body = await api.call("POST", f"/v1/runs/{second}/pause")
    assert status == 200 and body["result"] == "paused" and body["run"]["status"] == "paused"
    # Then it is not leased even when the first finishes and frees the slot
    api.gates.open("g-single")
    await api.wait_status(first)
    third = await api.trigger("single", {"y": 1})
    await api.wait_status(third)  # the freed slot went to a run queued later
    run = await api.run(second)
    assert run["status"] == "paused" and run["attempt"] == 0 and run["paused_at"] is not None
    # And pausing again is harmless
    status, body = await api.call("POST", f"/v1/runs/{second}/pause")
    assert status == 200 and body["result"] == "already_paused"
    # When it is resumed
    status, body = await api.call("POST", f"/v1/runs/{second}/resume")
    # Then it runs to completion
    assert status == 200 and body["result"] == "resumed"
    done = await api.wait_status(second)
    assert done["status"] == "completed" and done["output"] == {"x": 1}
    # And resuming a run that is not paused is a conflict
    status, err = await api.call("POST", f"/v1/runs/{second}/resume")
    assert status == 409 and err["code"] == "wrong_status"


async def test_pausing_a_delayed_run_keeps_its_due_time(api: ApiNode) -> None:
    # Given a delayed run
    run_id = await api.trigger("echo", 1, delay=60)
    # When it is paused, then resumed
    status, body = await api.call("POST", f"/v1/runs/{run_id}/pause")
    assert status == 200 and body["run"]["status"] == "paused"
    status, body = await api.call("POST", f"/v1/runs/{run_id}/resume")
    # Then it is delayed again (its time has not come)
    assert status == 200 and body["run"]["status"] == "delayed"


async def test_pausing_an_executing_run_takes_effect_at_the_next_step_boundary(api: ApiNode) -> None:
    # Given a run executing its first of three steps
    run_id = await api.trigger("steps", {"n": 3, "gate": "pause"})
    await eventually(lambda: api.gates.executions.get("pause-0"), 10)
    # When it is paused mid-step
    status, body = await api.call("POST", f"/v1/runs/{run_id}/pause")
    # Then the pause is only requested: the step in progress goes on
    assert status == 200 and body["result"] == "pause_requested" and body["run"]["status"] == "executing"
    assert body["run"]["pause_requested"] is True
    # When the step finishes
    api.gates.open("pause-0")
    api.gates.open("pause-1")
    api.gates.open("pause-2")
    # Then the run parks in paused after recording it, without starting the next step
    run = await api.wait_status(run_id, "paused")
    assert run["completed_step_count"] == 1 and "pause-1" not in api.gates.executions
    assert [a["status"] for a in run["attempts"]] == ["waiting"] and run["attempts_charged"] == 0
    await asyncio.sleep(0.2)
    assert (await api.run(run_id))["status"] == "paused"
    # When it is resumed
    status, _ = await api.call("POST", f"/v1/runs/{run_id}/resume")
    done = await api.wait_status(run_id)
    # Then it replays the recorded step and finishes the others, each executed once
    assert status == 200 and done["status"] == "completed" and done["output"] == [0, 10, 20]
    assert api.gates.executions == {"pause-0": 1, "pause-1": 1, "pause-2": 1}


async def test_pausing_a_waiting_run_parks_it_when_the_wait_ends(api: ApiNode) -> None:
    # Given a run waiting for an event
    run_id = await api.trigger("waiter", {"key": "pw"})
    await api.wait_status(run_id, "waiting")
    # When it is paused, then the event arrives
    status, body = await api.call("POST", f"/v1/runs/{run_id}/pause")
    assert status == 200 and body["result"] == "pause_requested"
    status, sent = await api.call("POST", "/v1/events", json={"key": "pw", "data": 5})
    # Then the event is taken but the run is parked instead of queued
    assert sent["woken"] == 1
    run = await api.wait_status(run_id, "paused")
    assert run["pause_requested"] is False
    # And once resumed it completes with the event's data
    await api.call("POST", f"/v1/runs/{run_id}/resume")
    assert (await api.wait_status(run_id))["output"] == 5


async def test_pause_a_finished_run_is_a_conflict_and_cancel_ends_a_paused_run(api: ApiNode) -> None:
    # Given a finished run and a paused one
    done = await api.trigger("echo", 1)
    await api.wait_status(done)
    paused = await api.trigger("echo", 2, delay=60)
    await api.call("POST", f"/v1/runs/{paused}/pause")
    # When the finished one is paused and the paused one canceled
    status, err = await api.call("POST", f"/v1/runs/{done}/pause")
    status2, body = await api.call("DELETE", f"/v1/runs/{paused}")
    # Then the first is a 409 and the second ends canceled, out of the paused index
    assert status == 409 and err["code"] == "already_finished"
    assert status2 == 200 and body["run"]["status"] == "canceled"
    p = api.app.keys.partition_of_run(paused)
    assert await api.app.redis.zscore(p.paused, paused) is None


async def test_reschedule_moves_a_delayed_run(api: ApiNode) -> None:
    # Given a run delayed by an hour
    run_id = await api.trigger("echo", 1, delay=3600)
    # When it is rescheduled to a time in the past
    soon = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    status, body = await api.call("POST", f"/v1/runs/{run_id}/reschedule", json={"scheduled_at": soon})
    # Then it runs now
    assert status == 200 and body["result"] == "rescheduled"
    assert (await api.wait_status(run_id))["status"] == "completed"
    # Given another queued run, rescheduled 60 s ahead
    other = await api.trigger("echo", 2, delay=30)
    status, body = await api.call("POST", f"/v1/runs/{other}/reschedule", json={"delay": 60})
    # Then it is delayed with its new time
    assert status == 200 and body["run"]["status"] == "delayed"
    scheduled = datetime.fromisoformat(body["run"]["scheduled_at"].replace("Z", "+00:00"))
    assert 50 < (scheduled - datetime.now(UTC)).total_seconds() <= 61
    # And rescheduling a finished run, or with both or neither field, is refused
    status, err = await api.call("POST", f"/v1/runs/{run_id}/reschedule", json={"delay": 1})
    assert status == 409 and err["code"] == "already_finished"
    for body in ({"delay": 1, "scheduled_at": soon}, {}, {"delay": -1}):
        status, err = await api.call("POST", f"/v1/runs/{other}/reschedule", json=body)
        assert status == 400 and err["code"] == "invalid_body", body


async def test_restart_cancels_a_live_run_and_starts_it_over(api: ApiNode) -> None:
    # Given an executing run
    run_id = await api.trigger("gated", {"gate": "g-restart"})
    await api.wait_status(run_id, "executing")
    # When it is restarted
    status, new = await api.call("POST", f"/v1/runs/{run_id}/restart", json={"machine_preset": "large"})
    # Then a new linked run is created and the old one stops as canceled
    assert status == 201 and new["restart_of"] == run_id and new["input"] == {"gate": "g-restart"}
    old = await api.wait_status(run_id)
    assert old["status"] == "canceled" and old["restarted_as"] == new["id"]
    api.gates.open("g-restart")
    assert (await api.wait_status(new["id"]))["status"] == "completed"


async def test_reset_idempotency_key_lets_the_key_create_a_new_run(api: ApiNode) -> None:
    # Given a run created with an idempotency key
    first = await api.trigger("echo", 1, idempotency_key="once")
    assert await api.trigger("echo", 2, idempotency_key="once") == first
    # When its key is reset
    assert (await api.run(first))["idempotency_reset_at"] is None
    status, body = await api.call("DELETE", f"/v1/runs/{first}/idempotency-key")
    assert status == 200 and body == {"status": "reset", "run_id": first}
    # (the run keeps its key, and says when it was forgotten: the dashboard offers no second reset)
    reset = await api.run(first)
    assert reset["idempotency_key"] == "once" and reset["idempotency_reset_at"] is not None, reset
    # Then the same key creates a new run, and resetting the old run again finds nothing
    second = await api.trigger("echo", 3, idempotency_key="once")
    assert second != first
    status, body = await api.call("DELETE", f"/v1/runs/{first}/idempotency-key")
    assert body["status"] == "not_set"


async def test_debug_mode_flag(api: ApiNode) -> None:
    # Given a run
    run_id = await api.trigger("echo", 1, delay=60)
    # When debug mode is turned on
    status, body = await api.call("POST", f"/v1/runs/{run_id}/debug", json={"debug_mode": True})
    # Then the run shows it (native and strait views) and its timeline records it
    assert status == 200 and body["run"]["debug_mode"] is True
    assert (await api.run(run_id, view="strait"))["debug_mode"] is True
    status, events = await api.call("GET", f"/v1/runs/{run_id}/events", params={"type": "debug_mode"})
    assert [e["data"] for e in events["data"]] == [{"debug_mode": True}]
    # When it is turned off
    status, body = await api.call("POST", f"/v1/runs/{run_id}/debug", json={"debug_mode": False})
    assert status == 200 and body["run"]["debug_mode"] is False
    # And Strait's body may leave the flag out (its own example sends {}), or send no body: off
    await api.call("POST", f"/v1/runs/{run_id}/debug", json={"debug_mode": True})
    status, body = await api.call("POST", f"/v1/runs/{run_id}/debug", json={})
    assert status == 200 and body["run"]["debug_mode"] is False
    await api.call("POST", f"/v1/runs/{run_id}/debug", json={"debug_mode": True})
    status, body = await api.call("POST", f"/v1/runs/{run_id}/debug")
    assert status == 200 and body["run"]["debug_mode"] is False
