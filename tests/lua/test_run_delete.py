"""run_delete on its own: a finished run goes with everything recorded about it; a live one stays."""

from __future__ import annotations

from runtime.errors import StatusCode
from tests.lua.support import Lua, text
from tests.lua.test_run_replay import dead_lettered


async def test_delete_removes_a_dead_letter_its_history_indices_and_idempotency_key(lua: Lua) -> None:
    # Given a dead-lettered run with an idempotency key, steps, checkpoints and records
    run_id = await dead_lettered(lua)
    p = lua.part
    await lua.redis.hset(p.steps(run_id), "s", "{}")
    await lua.redis.sadd(p.children(run_id), "child-1")
    await lua.redis.xadd(p.records(run_id), {"type": "usage", "data": "{}"})
    idem = p.idempotency("work", "ik")
    assert text(await lua.redis.get(idem)) == run_id
    # When it is deleted
    assert await lua.scripts.delete(run_id) == 1
    # Then no key of it is left, it is in no index, and its idempotency key is free again
    left = [k for k in (p.run(run_id), p.input(run_id), p.events(run_id), p.steps(run_id), p.records(run_id),
                        p.children(run_id), idem) if await lua.redis.exists(k)]
    assert left == []
    assert await lua.zscore(p.status("dead_letter"), run_id) is None
    assert await lua.listed() == []
    # And deleting it again says it does not exist
    assert await lua.scripts.delete(run_id) == StatusCode.NOT_FOUND


async def test_delete_refuses_a_live_run_and_keeps_another_runs_idempotency_key(lua: Lua) -> None:
    # Given a queued run
    live = await lua.create_one(idempotency_key="k2")
    # Then it cannot be deleted, and nothing of it changed
    assert await lua.scripts.delete(live) == StatusCode.NOT_FINISHED
    assert (await lua.run(live))["status"] == "queued"
    assert await lua.zscore(lua.part.ready("default"), live) is not None
    # Given a finished run whose key was reset and reused by a newer run
    done = await lua.create_one(job="other", idempotency_key="k3")
    assert await lua.finish(await lua.claim_one(done, job="other"), "completed") == "completed"
    idem = lua.part.idempotency("other", "k3")
    await lua.redis.set(idem, "newer-run")
    # When the finished run is deleted
    assert await lua.scripts.delete(done) == 1
    # Then the key that now names another run is left alone
    assert text(await lua.redis.get(idem)) == "newer-run"
