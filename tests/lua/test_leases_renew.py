"""leases_renew on its own: fenced extension, lost leases, cancellation notices."""

from __future__ import annotations

from runtime.records import Run
from runtime.scripts import Outcome
from tests.lua.support import Lua, lease_of


async def test_matching_token_extends_the_lease(lua: Lua) -> None:
    # Given a leased run whose lease is about to run out
    run_id = await lua.create_one()
    c = await lua.claim_one(run_id)
    soon = c.claimed_at_ms + 5
    await lua.redis.zadd(lua.part.leased, {run_id: soon})
    before = await lua.now_ms()
    # When its owner renews it
    lost, cancel = await lua.scripts.renew(lua.part, [(run_id, c.token)])
    # Then nothing is lost and the expiry moved to renewal time + TTL, in the set and the record
    assert (lost, cancel) == ([], [])
    run = await lua.run(run_id)
    score = await lua.zscore(lua.part.leased, run_id)
    assert score is not None and score >= before + lua.settings.lease_ttl_ms > soon
    assert int(run["lease_expires_at"]) == score
    assert int(run["heartbeat_at"]) + lua.settings.lease_ttl_ms == score
    assert run["status"] == "executing" and lease_of(run) == c.token


async def test_wrong_token_is_reported_lost_and_nothing_changes(lua: Lua) -> None:
    # Given a run leased by node-a
    run_id = await lua.create_one()
    c = await lua.claim_one(run_id, node="node-a")
    record = await lua.run(run_id)
    score = await lua.zscore(lua.part.leased, run_id)
    await lua.next_ms(c.claimed_at_ms)
    # When another token (a stale attempt, another node) renews it
    lost, cancel = await lua.scripts.renew(lua.part, [(run_id, "node-a/0"), (run_id, "node-b/1")])
    # Then it is reported lost twice and neither the record nor the lease changed
    assert (lost, cancel) == ([run_id, run_id], [])
    assert await lua.run(run_id) == record
    assert await lua.zscore(lua.part.leased, run_id) == score


async def test_unknown_and_finished_runs_are_lost_and_not_re_leased(lua: Lua) -> None:
    # Given a run that completed after being claimed
    run_id = await lua.create_one()
    c = await lua.claim_one(run_id)
    assert await lua.finish(c, "completed") == "completed"
    record = await lua.run(run_id)
    assert lease_of(record) == c.token  # the finished run keeps its last token
    # When its old token and an unknown run are renewed
    lost, cancel = await lua.scripts.renew(lua.part, [(run_id, c.token), ("nope", "node-a/1")])
    # Then both are lost, no lease reappears and the finished record is untouched
    assert (lost, cancel) == ([run_id, "nope"], [])
    assert await lua.leases() == []
    assert await lua.run(run_id) == record
    assert await lua.redis.exists(lua.part.run("nope")) == 0
    run = Run.from_hash(record, run_id=run_id)
    assert (run.lease_node, run.lease_expires_at_ms) == (None, None)


async def test_cancel_requested_is_reported_and_lease_still_extended(lua: Lua) -> None:
    # Given two leased runs, one with cancellation requested
    keep, stop = await lua.create_one(), await lua.create_one()
    claimed = {c.run_id: c for c in await lua.claim(2)}
    assert await lua.scripts.cancel(stop) == 2
    await lua.redis.zadd(lua.part.leased, {stop: 5, keep: 5})
    # When both are renewed in one call
    lost, cancel = await lua.scripts.renew(lua.part, [(keep, claimed[keep].token), (stop, claimed[stop].token)])
    # Then only the canceled one is reported for cancellation, and both leases are extended
    assert (lost, cancel) == ([], [stop])
    for run_id in (keep, stop):
        score = await lua.zscore(lua.part.leased, run_id)
        assert score is not None and score > 5


async def test_every_fenced_script_refuses_a_finished_runs_last_token(lua: Lua) -> None:
    # Given a completed run: its record keeps the last lease's token (a finish deletes no
    # fields), so each script acting for a lease must refuse it by the status as well
    run_id = await lua.create_one()
    c = await lua.claim_one(run_id)
    assert await lua.finish(c, "completed", output_json="1") == "completed"
    record = await lua.run(run_id)
    assert lease_of(record) == c.token
    s, t = lua.scripts, c.token
    # When every fenced write is attempted with that token
    answers = {
        "append": await s.append(run_id, t, "rec", [("log", "{}")]),
        "update": await s.update(run_id, t, {"x": "1"}, [("log", "{}")]),
        "record_step": await s.record_step(run_id, t, "step", 0, "{}", True),
        "checkpoint": await s.checkpoint(run_id, t, "handler", "{}"),
        "set_state": await s.set_state(run_id, t, "{}"),
        "take_message": await s.take_message(run_id, t, "signal", "go", "wait", 0),
        "create_token": await s.create_token(run_id, t, "tok-1", 1000, "[]", 1000),
        "finish": (await s.finish(lua.part, [Outcome(run_id, t, "failed", "", "{}")]))[0][1],
        "renew": (await s.renew(lua.part, [(run_id, t)]))[0],
    }
    # Then each reports the lease gone and the record is as it was
    assert answers == {"append": -1, "update": -1, "record_step": -1, "checkpoint": -1, "set_state": -1,
                       "take_message": -1, "create_token": None, "finish": -1, "renew": [run_id]}
    assert await lua.run(run_id) == record
