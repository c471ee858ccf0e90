"""runs_claim with named limits shared by jobs (pools, shared rates), fairness weights and priority aging."""

from __future__ import annotations

import collections

from runtime.jobs import JobOptions
from runtime.scripts import Scripts
from runtime.shared_limits import SharedLimit
from tests.lua.support import Lua

JOBS = ["a", "b"]


async def _pooled(lua: Lua, pool: str = "gpu", size: int = 2, rate: tuple[int, float] | None = None) -> None:
    """Jobs a and b share ``pool`` (and a rate of that name when given), as register_jobs writes them."""
    for job in JOBS:
        options = JobOptions(pool=pool, shared_rate=pool if rate else "")
        lua.jobs[job] = options
        await lua.redis.hset(lua.part.jobs, job, options.limit_spec)
    await lua.redis.hset(lua.part.shared_limits, pool, SharedLimit(size, rate).spec)


async def test_a_pool_bounds_the_runs_of_every_job_in_it(lua: Lua) -> None:
    # Given jobs a and b in pool "gpu" of 2, with 3 queued runs each
    await _pooled(lua)
    for job in JOBS:
        for _ in range(3):
            await lua.create_one(job)
    # When two nodes ask for 10 runs each
    first = await lua.claim(10, node="n1", jobs=JOBS)
    second = await lua.claim(10, node="n2", jobs=JOBS)
    # Then 2 runs are leased in total, both counted in the pool's set
    assert len(first) == 2 and second == []
    assert await lua.members(lua.part.pool_leases("gpu")) == {c.run_id for c in first}
    # When one finishes, exactly one more starts (of either job)
    assert await lua.finish(first[0], "completed") == "completed"
    third = await lua.claim(10, node="n2", jobs=JOBS)
    assert len(third) == 1
    assert await lua.redis.scard(lua.part.pool_leases("gpu")) == 2
    # When the pool is made 4 at runtime, two more start and no more
    await lua.redis.hset(lua.part.shared_limits_override, "gpu", SharedLimit(4).spec)
    assert len(await lua.claim(10, node="n1", jobs=JOBS)) == 2
    assert await lua.claim(10, node="n1", jobs=JOBS) == []
    assert await lua.redis.scard(lua.part.pool_leases("gpu")) == 4


async def test_a_job_override_keeps_the_job_in_its_pool(lua: Lua) -> None:
    # Given job a in pool "gpu" of 1 whose own limits are overridden at runtime (no pool in the override)
    await _pooled(lua, size=1)
    await lua.scripts.limits_apply(lua.part, "a", "override", "5,0,0,0,0,0")
    for _ in range(3):
        await lua.create_one("a")
    # Then the pool still holds it to 1
    assert len(await lua.claim(10, jobs=["a"])) == 1


async def test_a_shared_rate_spaces_starts_across_jobs(lua: Lua) -> None:
    # Given jobs a and b sharing a rate of 2 starts per second, 2 runs queued for each
    await _pooled(lua, pool="openai", size=0, rate=(2, 1.0))
    ids = [await lua.create_one(job) for job in ("a", "b", "a", "b")]
    # When a node claims all it can
    claimed, retry_in = await lua.scripts.claim(lua.part, "n1", 10, ["default"], JOBS, 0)
    # Then one run started, and the next may go 500 ms later
    assert [c.run_id for c in claimed] == ids[:1]
    assert 400 < retry_in <= 500
    # When that time has passed, exactly the next one (of the other job) starts
    await lua.next_ms(claimed[0].claimed_at_ms + 500)
    again, _ = await lua.scripts.claim(lua.part, "n1", 10, ["default"], JOBS, 0)
    assert [c.run_id for c in again] == ids[1:2]


async def test_reconcile_repairs_pool_sets(lua: Lua) -> None:
    # Given two runs leased in pool "gpu"
    await _pooled(lua)
    for _ in range(2):
        await lua.create_one("a")
    leased = await lua.claim(10, jobs=JOBS)
    pool = lua.part.pool_leases("gpu")
    # When the pool set loses one of them and gains an id that holds no lease
    await lua.redis.srem(pool, leased[0].run_id)
    await lua.redis.sadd(pool, "ghost")
    # Then reconcile counts both and puts the set right
    drift = await lua.scripts.reconcile(lua.part)
    assert drift["concurrency"] == 2 and drift["total"] == 2
    assert await lua.members(pool) == {c.run_id for c in leased}
    assert (await lua.scripts.reconcile(lua.part))["total"] == 0


async def test_a_weighted_key_gets_its_weight_in_turns(lua: Lua) -> None:
    # Given key "heavy" (weight 3) and keys "light", "other" (weight 1), 40 queued runs each
    for i in range(40):
        for key, weight in (("heavy", 3), ("light", 1), ("other", 1)):
            await lua.create_one(concurrency_key=key, fairness_weight=weight, input=i)
    # When runs are claimed one at a time, then in batches
    order = [c for _ in range(25) for c in await lua.claim(1)]
    order += [c for _ in range(5) for c in await lua.claim(5)]
    keys = [(await lua.run(c.run_id))["concurrency_key"] for c in order]
    # Then every round of 5 turns gives heavy 3 and the others 1 each, and each key keeps its order
    for start in range(0, 50, 5):
        assert collections.Counter(keys[start:start + 5]) == {"heavy": 3, "light": 1, "other": 1}, keys
    heavy_inputs = [(await lua.run(c.run_id))["input"] for c, k in zip(order, keys, strict=True) if k == "heavy"]
    assert heavy_inputs == [str(i) for i in range(30)]


async def test_unweighted_claims_leave_group_scores_whole(lua: Lua) -> None:
    # Given two keys without weights
    for key in ("x", "y", "x", "y"):
        await lua.create_one(concurrency_key=key)
    await lua.claim(1)
    # Then the rotation scores stay the plain turn numbers
    scores = [s for _, s in await lua.redis.zrange(lua.part.groups("default"), 0, -1, withscores=True)]
    assert all(s == int(s) for s in scores)


def _aging(lua: Lua, seconds: float) -> Lua:
    settings = lua.settings.with_changes(priority_aging_s=seconds)
    return Lua(redis=lua.redis, settings=settings, keys=lua.keys, scripts=Scripts(lua.redis, lua.keys, settings),
               jobs=lua.jobs)


async def test_priority_aging_lets_an_old_low_priority_run_go_first(lua: Lua) -> None:
    aged = _aging(lua, 0.1)
    # Given a priority-0 run queued, then a priority-1 run
    low = await aged.create_one(priority=0)
    low_ready = await aged.ready_since(low)
    high = await aged.create_one(priority=1)
    # When claimed before the low one has waited 2 aging periods: priority wins
    assert [c.run_id for c in await aged.claim(1)] == [high]
    # When it has waited 200 ms (priority 0 + 2 > a fresh priority-1 run's 1)
    await aged.next_ms(low_ready + 200)
    fresh = await aged.create_one(priority=1)
    # Then the old low-priority run goes first, and the fresh one next
    assert [c.run_id for c in await aged.claim(1)] == [low]
    assert [c.run_id for c in await aged.claim(1)] == [fresh]


async def test_without_aging_priority_always_wins(lua: Lua) -> None:
    # Given the same queue with aging off, and the low-priority run 200 ms old
    low = await lua.create_one(priority=0)
    await lua.next_ms(await lua.ready_since(low) + 200)
    high = await lua.create_one(priority=1)
    # Then the high-priority run goes first
    assert [c.run_id for c in await lua.claim(1)] == [high]


async def test_aging_compares_across_several_priority_levels(lua: Lua) -> None:
    aged = _aging(lua, 0.2)
    # Given runs of priorities -5 (oldest), 0 (800 ms later) and 3 (1500 ms after the first)
    oldest = await aged.create_one(priority=-5)
    ready = await aged.ready_since(oldest)
    await aged.next_ms(ready + 800)
    middle = await aged.create_one(priority=0)
    await aged.next_ms(ready + 1500)
    top = await aged.create_one(priority=3)
    # Then at 1.5 s the levels are -5+7=2, 0+3=3 and a fresh 3: a tie goes to priority, so top first
    assert [c.run_id for c in await aged.claim(1)] == [top]
    # When at 2 s the levels are -5+10=5 and 0+6=6: the middle run, then the oldest
    await aged.next_ms(ready + 2000)
    assert [c.run_id for c in await aged.claim(1)] == [middle]
    assert [c.run_id for c in await aged.claim(1)] == [oldest]
    assert await aged.redis.zcard(aged.part.ready("default")) == 0


async def test_a_batch_claim_puts_every_outranking_level_ahead(lua: Lua) -> None:
    aged = _aging(lua, 0.1)
    # Given old runs of priorities -2 and -1, then fresh runs of priority 1
    a = await aged.create_one(priority=-2)
    b = await aged.create_one(priority=-1)
    await aged.next_ms(await aged.ready_since(a) + 500)
    fresh = [await aged.create_one(priority=1) for _ in range(2)]
    # When one claim takes four: levels are -1+5=4 and -2+5=3 against the fresh runs' 1
    claimed = await aged.claim(4)
    # Then both old runs go ahead, the higher aged level first, then the fresh ones in order
    assert [c.run_id for c in claimed] == [b, a, *fresh]
