"""runs_promote on its own: due delayed runs become ready; the wait until the next one."""

from __future__ import annotations

from tests.lua.support import Listener, Lua, priority_of, wait_until


async def test_due_delayed_run_becomes_ready(lua: Lua) -> None:
    # Given a delayed run of priority 7 on queue "later", forced due, and one far in the future
    due = await lua.create_one(queue="later", priority=7, delay_s=60)
    later = await lua.create_one(delay_s=60)
    await lua.redis.hset(lua.part.run(due), "next_retry_at", 1)
    await lua.redis.zadd(lua.part.delayed, {due: 1})
    # When promoting
    moved, wait = await lua.scripts.promote(lua.part)
    # Then the due run is queued in its ready set, scored by priority and promotion time
    assert moved == 1
    run = await lua.run(due)
    assert run["status"] == "queued" and "next_retry_at" not in run
    assert run["ready_at"] == run["updated_at"]
    assert priority_of(await lua.zscore(lua.part.ready("later"), due)) == 7
    assert await lua.members(lua.part.queues) == {"later"}
    assert await lua.zmembers(lua.part.delayed) == [later]
    # And the wait is the time until the other run is due
    scheduled = int((await lua.run(later))["scheduled_at"])
    assert 0 < wait <= scheduled - int(run["ready_at"])
    assert wait > 59_000
    assert (await lua.run(later))["status"] == "delayed"


async def test_nothing_delayed_waits_minus_one(lua: Lua) -> None:
    # Given an empty delayed set
    # When promoting
    result = await lua.scripts.promote(lua.part)
    # Then nothing moves and there is nothing to wait for
    assert result == (0, -1)


async def test_run_becomes_due_by_the_server_clock(lua: Lua) -> None:
    # Given a run delayed by 200 ms
    run_id = await lua.create_one(delay_s=0.2)
    # When promoting at once
    moved, wait = await lua.scripts.promote(lua.part)
    # Then it is not moved and the wait is at most 200 ms
    assert moved == 0 and 0 <= wait <= 200

    # When promoting until it moves
    async def promoted() -> int:
        return (await lua.scripts.promote(lua.part))[0]

    assert await wait_until(promoted, timeout=5.0) == 1
    # Then it became ready no earlier than it was scheduled
    run = await lua.run(run_id)
    assert run["status"] == "queued" and int(run["ready_at"]) >= int(run["scheduled_at"])


async def test_entries_of_runs_no_longer_delayed_are_dropped(lua: Lua) -> None:
    # Given delayed-set entries for a queued run and for a missing run
    queued = await lua.create_one()
    score = await lua.zscore(lua.part.ready("default"), queued)
    await lua.redis.zadd(lua.part.delayed, {queued: 1, "ghost": 1})
    # When promoting
    result = await lua.scripts.promote(lua.part)
    # Then neither counts as moved, both entries are gone, and the queued run is unchanged
    assert result == (0, -1)
    assert await lua.redis.exists(lua.part.delayed) == 0
    assert await lua.zscore(lua.part.ready("default"), queued) == score
    assert await lua.redis.exists(lua.part.run("ghost")) == 0


async def test_limit_bounds_one_pass(lua: Lua) -> None:
    # Given three delayed runs all forced due
    ids = [await lua.create_one(delay_s=60) for _ in range(3)]
    await lua.redis.zadd(lua.part.delayed, dict.fromkeys(ids, 1))
    # When promoting two at a time
    first = await lua.scripts.promote(lua.part, limit=2)
    second = await lua.scripts.promote(lua.part, limit=2)
    # Then 2 then 1 move; the first call reports the third as already due
    assert first == (2, 0) and second == (1, -1)
    assert await lua.redis.zcard(lua.part.ready("default")) == 3


async def test_wake_is_published_only_when_runs_moved(lua: Lua) -> None:
    # Given a delayed run
    run_id = await lua.create_one(delay_s=60)
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        # When promoting before it is due
        await lua.scripts.promote(lua.part)
        # Then nothing is published
        assert await wake.messages() == []
        # When it is due and promoted
        await lua.redis.zadd(lua.part.delayed, {run_id: 1})
        assert (await lua.scripts.promote(lua.part))[0] == 1
        # Then the partition prefix is published once
        assert await wake.messages() == [lua.part.prefix]
