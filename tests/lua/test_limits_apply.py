"""limits_apply: lease sets exist only for what a limit counts, and follow the limits as they change."""

from __future__ import annotations

from tests.lua.support import Lua


async def test_a_limit_set_while_runs_execute_counts_them_at_once(lua: Lua) -> None:
    # Given three runs of "work" executing while the job has no limits (so no lease sets)
    for _ in range(4):
        await lua.create_one()
    executing = await lua.claim(3, node="node-a")
    assert len(executing) == 3 and await lua.redis.exists(lua.part.job_leases("work")) == 0
    # When a limit of 2 at once is set at runtime
    moved = await lua.scripts.limits_apply(lua.part, "work", "override", "2,0,0,0,0,0")
    # Then the executing runs join the job's lease set, and their records say so
    assert moved == 3
    assert await lua.members(lua.part.job_leases("work")) == {c.run_id for c in executing}
    assert {(await lua.run(c.run_id))["cc"] for c in executing} == {"j"}
    # And the limit holds against them: nothing more is leased while 3 > 2 run
    assert await lua.claim(5, node="node-b") == []
    # When two finish, then one still runs and the limit leaves room for exactly one more
    assert await lua.finish(executing[0], "completed") == "completed"
    assert await lua.finish(executing[1], "completed") == "completed"
    assert await lua.members(lua.part.job_leases("work")) == {executing[2].run_id}
    assert len(await lua.claim(5, node="node-b")) == 1


async def test_clearing_a_limit_releases_the_sets_and_a_release_after_it_is_clean(lua: Lua) -> None:
    # Given a limited job with two runs executing (both in its lease set)
    await lua.scripts.limits_apply(lua.part, "work", "override", "5,0,0,0,0,0")
    await lua.create_one()
    await lua.create_one()
    a, b = await lua.claim(2)
    assert await lua.members(lua.part.job_leases("work")) == {a.run_id, b.run_id}
    # When the limit is cleared
    assert await lua.scripts.limits_apply(lua.part, "work", "override", "") == 2
    # Then no lease set is left, and finishing the runs leaves none behind either
    assert await lua.redis.exists(lua.part.job_leases("work"), lua.part.jobs_override) == 0
    assert await lua.finish(a, "completed") == "completed"
    assert await lua.finish(b, "failed", error_json='{"message":"x"}') == "delayed"
    assert await lua.redis.exists(lua.part.job_leases("work")) == 0
    assert await lua.leases() == []


async def test_unchanged_limits_cost_nothing_and_keyed_limits_track_keys(lua: Lua) -> None:
    # Given limits written once
    assert await lua.scripts.limits_apply(lua.part, "work", "code", "0,1,0,0,0,0") == 0
    # When the same spec is applied again (a node restarting), then nothing moves
    assert await lua.scripts.limits_apply(lua.part, "work", "code", "0,1,0,0,0,0") == 0
    # Given keyed runs, then a per-key limit keeps a per-key set (listed for reconcile) but no job set
    await lua.create(lua.spec(concurrency_key="k1"), lua.spec(concurrency_key="k1"), lua.spec(concurrency_key="k2"))
    claimed = await lua.claim(5)
    assert len(claimed) == 2  # one per key
    assert await lua.redis.exists(lua.part.job_leases("work")) == 0
    assert await lua.redis.scard(lua.part.key_leases("work", "k1")) == 1
    assert await lua.redis.sismember(lua.part.lease_sets, lua.part.key_leases("work", "k1")) == 1
    # When both finish, then the key sets and their listing are gone
    for c in claimed:
        assert await lua.finish(c, "completed") == "completed"
    assert await lua.redis.exists(lua.part.key_leases("work", "k1"), lua.part.key_leases("work", "k2")) == 0
    assert await lua.redis.scard(lua.part.lease_sets) == 0


async def test_reconcile_finds_a_ghost_in_a_limited_jobs_set_that_is_not_listed(lua: Lua) -> None:
    # Given a limited job whose lease set holds a run that is not leased (and is not listed anywhere)
    await lua.scripts.limits_apply(lua.part, "work", "code", "3,0,0,0,0,0")
    await lua.redis.sadd(lua.part.job_leases("work"), "ghost")
    # When the partition is reconciled, then the ghost is found and removed
    drift = await lua.scripts.reconcile(lua.part)
    assert drift["concurrency"] == 1
    assert await lua.redis.exists(lua.part.job_leases("work")) == 0
