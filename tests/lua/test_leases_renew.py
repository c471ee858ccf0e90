"""leases_renew on its own: fenced extension, lost leases, cancellation notices."""

from __future__ import annotations

from tests.lua.support import Lua


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
    assert run["status"] == "executing" and run["lease_token"] == c.token


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
    # When its old token and an unknown run are renewed
    lost, cancel = await lua.scripts.renew(lua.part, [(run_id, c.token), ("nope", "node-a/1")])
    # Then both are lost and no lease reappears
    assert (lost, cancel) == ([run_id, "nope"], [])
    assert await lua.redis.exists(lua.part.leased) == 0
    assert "lease_expires_at" not in await lua.run(run_id)


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
