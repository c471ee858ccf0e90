"""step_record on its own: a step's record is written once, fenced by the lease token."""

from __future__ import annotations

import orjson

from tests.lua.support import Lua


async def test_the_same_completed_record_sent_twice_is_answered_as_written(lua: Lua) -> None:
    # Given an executing run whose step "a" was recorded completed (the reply lost, say)
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    record = '{"name":"a","index":0,"status":"completed","output":1,"started_at":5,"completed_at":6}'
    assert await lua.scripts.record_step(run_id, claimed.token, "a", 0, record, True) == 1
    # When the very same write arrives again (the call tried again)
    again = await lua.scripts.record_step(run_id, claimed.token, "a", 0, record, True)
    # Then it is answered as written, and the step is counted and timelined once
    assert again == 1
    rec = await lua.run(run_id)
    assert rec["completed_step_count"] == "1"
    events = await lua.redis.xrange(lua.part.events(run_id))
    assert [orjson.loads(f[b"data"])["name"] for _, f in events if f.get(b"type") == b"step"] == ["a"]


async def test_another_record_for_a_completed_step_is_refused(lua: Lua) -> None:
    # Given a run whose step "a" completed
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    first = '{"name":"a","index":0,"status":"completed","output":1,"started_at":5,"completed_at":6}'
    assert await lua.scripts.record_step(run_id, claimed.token, "a", 0, first, True) == 1
    # When a different record for the same name arrives (a step name used twice)
    second = '{"name":"a","index":1,"status":"completed","output":2,"started_at":7,"completed_at":8}'
    # Then it is refused (-6), and the first record stays
    assert await lua.scripts.record_step(run_id, claimed.token, "a", 1, second, True) == -6
    assert await lua.redis.hget(lua.part.steps(run_id), "a") == first.encode()


async def test_a_record_sent_again_after_the_lease_moved_on_is_fenced(lua: Lua) -> None:
    # Given a step recorded under a lease, then the run given back and claimed again
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    record = '{"name":"a","index":0,"status":"completed","output":1,"started_at":5,"completed_at":6}'
    assert await lua.scripts.record_step(run_id, claimed.token, "a", 0, record, True) == 1
    assert await lua.finish(claimed, "released") == "queued"
    await lua.claim_one(run_id)
    # When the first lease's write arrives again
    # Then the token check refuses it before anything else
    assert await lua.scripts.record_step(run_id, claimed.token, "a", 0, record, True) == -1
