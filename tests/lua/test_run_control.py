"""The run-control scripts on their own: run_pause, run_resume, run_reschedule, run_restart,
run_idem_reset, run_debug, run_append, and the paused outcome of settle."""

from __future__ import annotations

import orjson

from runtime.errors import StatusCode
from runtime.scripts import Outcome
from runtime.statuses import RETENTION_MARGIN_MS
from tests.lua.support import Listener, Lua, text


async def test_pause_and_resume_a_queued_run(lua: Lua) -> None:
    # Given a queued run
    run_id = await lua.create_one()
    # When it is paused
    assert await lua.scripts.pause(run_id) == 1
    # Then it left its ready set for the paused index and cannot be claimed
    assert await lua.zscore(lua.part.ready("default"), run_id) is None
    assert await lua.zscore(lua.part.paused, run_id) is not None
    rec = await lua.run(run_id)
    assert (rec["status"], rec["paused_from"]) == ("paused", "queued")
    assert await lua.claim() == []
    # And pausing again changes nothing
    assert await lua.scripts.pause(run_id) == 0
    # When it is resumed
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        assert await lua.scripts.resume(run_id) == 1
        # Then it is queued again (and nodes are woken) and can be claimed
        assert await wake.messages() == [lua.part.prefix]
    assert (await lua.run(run_id))["status"] == "queued" and "paused_from" not in await lua.run(run_id)
    assert await lua.zscore(lua.part.paused, run_id) is None
    assert [c.run_id for c in await lua.claim()] == [run_id]
    # And resuming a run that is not paused is refused
    assert await lua.scripts.resume(run_id) == StatusCode.WRONG_STATUS


async def test_pause_keeps_a_delayed_runs_due_time(lua: Lua) -> None:
    # Given a run delayed by a minute
    run_id = await lua.create_one(delay_s=60)
    due = await lua.zscore(lua.part.delayed, run_id)
    # When it is paused and resumed
    assert await lua.scripts.pause(run_id) == 1
    assert (await lua.run(run_id))["paused_due"] == str(due)
    assert await lua.scripts.resume(run_id) == 1
    # Then it is delayed again with the same due time
    assert (await lua.run(run_id))["status"] == "delayed"
    assert await lua.zscore(lua.part.delayed, run_id) == due


async def test_pausing_an_executing_run_parks_it_when_its_handler_suspends(lua: Lua) -> None:
    # Given an executing run
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    # When a pause is requested
    assert await lua.scripts.pause(run_id) == 2
    # Then the next recorded step reports it (code 2) and writes the step
    code = await lua.scripts.record_step(run_id, claimed.token, "a", 0, '{"name":"a","status":"completed"}', True)
    assert code == 2
    # When the handler ends the attempt with a paused suspension
    [(_, status)] = await lua.scripts.finish(lua.part, [Outcome(run_id, claimed.token, "waiting",
                                                                output_json='{"kind":"paused"}')])
    # Then the run is paused, uncharged, out of the lease, and the attempt is recorded
    assert status == "paused"
    rec = await lua.run(run_id)
    assert (rec["status"], rec["paused_from"], rec["charged"]) == ("paused", "executing", "0")
    assert "pause_requested" not in rec and "lease_token" not in rec
    assert await lua.zscore(lua.part.leased, run_id) is None
    assert [a["status"] for a in orjson.loads(rec["attempts"])] == ["waiting"]
    # And resume queues it for a new attempt
    assert await lua.scripts.resume(run_id) == 1
    again = await lua.claim_one(run_id)
    assert again.attempt == 2


async def test_resume_withdraws_a_pending_pause_request(lua: Lua) -> None:
    # Given an executing run with a pause requested
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    assert await lua.scripts.pause(run_id) == 2
    # When it is resumed before its next step
    assert await lua.scripts.resume(run_id) == 2
    # Then steps no longer report a pause
    assert await lua.scripts.record_step(run_id, claimed.token, "a", 0, '{"status":"completed"}', True) == 1


async def test_a_waiting_run_with_a_pause_request_is_parked_when_woken(lua: Lua) -> None:
    # Given a run waiting for an event, with a pause requested
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    wait = '{"kind":"event","key":"k1","step":"__event#0","index":0}'
    assert (await lua.scripts.finish(lua.part, [Outcome(run_id, claimed.token, "waiting", output_json=wait)]))[0][1] \
        == "waiting"
    assert await lua.scripts.pause(run_id) == 2
    # When the event arrives
    assert await lua.scripts.send_event("k1", '{"v":1}', 60_000) == 1
    # Then the event step is recorded, but the run is parked instead of queued
    rec = await lua.run(run_id)
    assert (rec["status"], rec["paused_from"]) == ("paused", "waiting")
    steps = await lua.redis.hgetall(lua.part.steps(run_id))
    assert orjson.loads(steps[b"__event#0"])["output"] == {"v": 1}
    assert await lua.zscore(lua.part.ready("default"), run_id) is None


async def test_pause_of_missing_or_finished_runs(lua: Lua) -> None:
    # Given a finished run
    run_id = await lua.create_one()
    assert await lua.finish(await lua.claim_one(run_id), "completed") == "completed"
    # Then pausing it, or a missing run, is refused with the header's codes
    assert await lua.scripts.pause(run_id) == StatusCode.ALREADY_FINISHED
    assert await lua.scripts.pause("missing") == StatusCode.NOT_FOUND
    assert await lua.scripts.resume("missing") == StatusCode.NOT_FOUND


async def test_cancel_ends_a_paused_run(lua: Lua) -> None:
    # Given a paused run
    run_id = await lua.create_one()
    assert await lua.scripts.pause(run_id) == 1
    # When it is canceled
    assert await lua.scripts.cancel(run_id) == 1
    # Then it is canceled and out of the paused index
    assert (await lua.run(run_id))["status"] == "canceled"
    assert await lua.zscore(lua.part.paused, run_id) is None


async def test_reschedule(lua: Lua) -> None:
    # Given a queued run, a delayed run and an executing run
    queued = await lua.create_one()
    delayed = await lua.create_one(delay_s=600)
    executing = await lua.create_one()
    now = await lua.now_ms()
    # When the queued run is moved 60 s ahead
    assert await lua.scripts.reschedule(queued, None, 60_000) == 1
    # Then it is delayed until then (judged by the Redis clock)
    assert (await lua.run(queued))["status"] == "delayed"
    assert await lua.zscore(lua.part.ready("default"), queued) is None
    due = await lua.zscore(lua.part.delayed, queued)
    assert due is not None and now + 60_000 <= due <= now + 61_000
    # When the delayed run is moved to a past time
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        assert await lua.scripts.reschedule(delayed, now - 1000, None) == 1
        assert await wake.messages() == [lua.part.prefix]
    # Then it is queued now
    assert (await lua.run(delayed))["status"] == "queued"
    assert await lua.zscore(lua.part.delayed, delayed) is None
    # And an executing run cannot be rescheduled
    assert executing in [c.run_id for c in await lua.claim(10)]
    assert await lua.scripts.reschedule(executing, None, 1000) == StatusCode.WRONG_STATUS
    assert await lua.scripts.reschedule("missing", None, 1000) == StatusCode.NOT_FOUND


async def test_restart_cancels_a_live_run_and_copies_it(lua: Lua) -> None:
    # Given a delayed run with a child
    parent = await lua.create_one(delay_s=60, input={"x": 1}, labels={"a": "b"})
    await lua.redis.sadd(lua.part.children(parent), "kid")
    kid = await lua.create_one(run_id="kid", delay_s=60)
    assert kid == "kid"
    # When it is restarted as "new-1"
    assert await lua.scripts.restart(parent, "new-1") == 2
    # Then it and its child are canceled, and the new run is queued with the same input, linked both ways
    old, new = await lua.run(parent), await lua.run("new-1")
    assert old["status"] == "canceled" and old["restarted_as"] == "new-1"
    assert (await lua.run("kid"))["status"] == "canceled"
    assert (new["status"], new["restart_of"], new["source"]) == ("queued", parent, "restart")
    assert orjson.loads(new["input"]) == {"x": 1} and new["labels"] == old["labels"]
    # And restarting a finished run only copies it; an existing new id is refused
    assert await lua.scripts.restart(parent, "new-2") == 1
    assert await lua.scripts.restart(parent, "new-2") == StatusCode.EXISTS
    assert await lua.scripts.restart("missing", "new-3") == StatusCode.NOT_FOUND


async def test_restart_of_an_executing_run_requests_its_cancellation(lua: Lua) -> None:
    # Given an executing run
    run_id = await lua.create_one()
    await lua.claim_one(run_id)
    # When it is restarted
    async with Listener(lua.redis, lua.keys.cancel_channel) as cancel:
        assert await lua.scripts.restart(run_id, "new-x") == 3
        # Then its node is told to cancel it, and the new run is queued
        assert await cancel.messages() == [run_id]
    assert (await lua.run(run_id))["cancel_requested"] == "1"
    assert (await lua.run("new-x"))["status"] == "queued"


async def test_replay_in_dead_letter_mode_replays_once(lua: Lua) -> None:
    # Given a dead-lettered run and a completed one
    dead = await lua.create_one(max_attempts=1)
    assert await lua.finish(await lua.claim_one(dead), "failed", error_json='{"message":"x"}') == "dead_letter"
    done = await lua.create_one()
    assert await lua.finish(await lua.claim_one(done), "completed") == "completed"
    # When the dead one is replayed from the DLQ twice, and the completed one once
    first = await lua.scripts.replay(dead, "r-1", dead_letter_only=True)
    second = await lua.scripts.replay(dead, "r-2", dead_letter_only=True)
    other = await lua.scripts.replay(done, "r-3", dead_letter_only=True)
    # Then the first creates a run and marks the source, the second is refused, the completed one too
    assert (first, second, other) == (1, StatusCode.ALREADY_REPLAYED, StatusCode.WRONG_STATUS)
    assert (await lua.run(dead))["replayed_as"] == "r-1"
    assert (await lua.run("r-1"))["replay_of"] == dead and await lua.run("r-2") == {}


async def test_any_replay_is_recorded_on_its_source_and_counts_for_the_dead_letter_queue(lua: Lua) -> None:
    # Given a dead-lettered run replayed from its own page (not the queue), twice
    dead = await lua.create_one(max_attempts=1)
    assert await lua.finish(await lua.claim_one(dead), "failed", error_json='{"message":"x"}') == "dead_letter"
    assert await lua.scripts.replay(dead, "r-1", dead_letter_only=False) == 1
    assert await lua.scripts.replay(dead, "r-2", dead_letter_only=False) == 1
    # Then the source names its latest replay, and the queue does not replay it again
    assert (await lua.run(dead))["replayed_as"] == "r-2"
    assert await lua.scripts.replay(dead, "r-3", dead_letter_only=True) == StatusCode.ALREADY_REPLAYED
    assert await lua.run("r-3") == {}


async def test_idempotency_reset_and_debug_flag(lua: Lua) -> None:
    # Given a run with an idempotency key and one without
    keyed = await lua.create_one(idempotency_key="k")
    plain = await lua.create_one()
    # When the key is reset
    assert await lua.scripts.reset_idempotency(keyed) == 1
    # Then the key no longer maps to the run; a second reset, or a run without a key, finds nothing
    assert await lua.redis.get(lua.part.idempotency("work", "k")) is None
    assert await lua.scripts.reset_idempotency(keyed) == 0
    assert await lua.scripts.reset_idempotency(plain) == 0
    assert await lua.scripts.reset_idempotency("missing") == StatusCode.NOT_FOUND
    # When debug mode is set and cleared
    assert await lua.scripts.set_debug(plain, True) == 1
    assert (await lua.run(plain))["debug_mode"] == "1"
    assert await lua.scripts.set_debug(plain, False) == 1
    assert (await lua.run(plain))["debug_mode"] == "0"
    assert await lua.scripts.set_debug("missing", True) == StatusCode.NOT_FOUND


async def test_append_is_fenced_and_capped_streams_expire_with_the_run(lua: Lua) -> None:
    # Given an executing run
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    # When records and chunks are appended with its token, and with a stale one
    assert await lua.scripts.append(run_id, claimed.token, "rec", [("usage", '{"t":1}'), ("output", '{"k":2}')]) == 2
    assert await lua.scripts.append(run_id, claimed.token, "chunks", [("chunk", '"a"')]) == 1
    assert await lua.scripts.append(run_id, "other/9", "chunks", [("chunk", '"b"')]) == -1
    # Then only the fenced writes are stored, in order
    rows = await lua.redis.xrange(lua.part.records(run_id))
    assert [(text(f[b"type"]), text(f[b"data"])) for _, f in rows] == [("usage", '{"t":1}'), ("output", '{"k":2}')]
    assert [text(f[b"data"]) for _, f in await lua.redis.xrange(lua.part.chunks(run_id))] == ['"a"']
    # And when the run finishes, both streams expire with it
    assert await lua.finish(claimed, "completed") == "completed"
    kept_ms = lua.settings.finished_ttl_s * 1000 + RETENTION_MARGIN_MS
    assert 0 < await lua.redis.pttl(lua.part.records(run_id)) <= kept_ms
    assert 0 < await lua.redis.pttl(lua.part.chunks(run_id)) <= kept_ms
