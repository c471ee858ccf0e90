"""run_cancel on its own: queued, delayed, executing, finished and missing runs."""

from __future__ import annotations

import orjson

from runtime.errors import StatusCode
from runtime.keys import Keys
from runtime.scripts import Scripts
from runtime.statuses import RETENTION_MARGIN_MS
from tests.lua.support import Listener, Lua, lease_of


async def assert_canceled_now(lua: Lua, run_id: str) -> dict[str, str]:
    run = await lua.run(run_id)
    assert run["status"] == "canceled"
    assert orjson.loads(run["error"]) == {"message": "canceled", "type": "Canceled"}
    assert await lua.zscore(lua.part.status("canceled"), run_id) == int(run["finished_at"])
    ttl_ms = lua.settings.finished_ttl_s * 1000 + RETENTION_MARGIN_MS  # (the keys outlive the retention)
    assert ttl_ms - 5000 < await lua.redis.pttl(lua.part.run(run_id)) <= ttl_ms
    return run


async def test_queued_run_is_canceled_at_once(lua: Lua) -> None:
    # Given a queued run next to another
    run_id, other = await lua.create_one(), await lua.create_one()
    # When it is canceled
    code = await lua.scripts.cancel(run_id)
    # Then it is canceled and out of the ready set; the other stays
    assert code == 1
    await assert_canceled_now(lua, run_id)
    assert await lua.zmembers(lua.part.ready("default")) == [other]


async def test_delayed_run_is_canceled_at_once(lua: Lua) -> None:
    # Given a delayed retry
    run_id = await lua.create_one(delay_s=60)
    await lua.redis.hset(lua.part.run(run_id), "next_retry_at", 123)
    # When it is canceled
    code = await lua.scripts.cancel(run_id)
    # Then it is canceled and out of the delayed set
    assert code == 1
    run = await assert_canceled_now(lua, run_id)
    assert "next_retry_at" not in run
    assert await lua.redis.exists(lua.part.delayed) == 0


async def test_executing_run_gets_cancel_requested(lua: Lua) -> None:
    # Given an executing run
    run_id = await lua.create_one()
    c = await lua.claim_one(run_id)
    async with Listener(lua.redis, lua.keys.cancel_channel) as channel:
        # When it is canceled
        code = await lua.scripts.cancel(run_id)
        # Then cancellation is requested and its id is published on the cancel channel
        assert code == 2
        assert await channel.messages() == [run_id]
    # And the run keeps executing under its lease until its node stops it
    run = await lua.run(run_id)
    assert (run["status"], run["cancel_requested"], lease_of(run)) == ("executing", "1", c.token)
    assert await lua.zscore(lua.part.leased, run_id) is not None
    assert await lua.redis.exists(lua.part.status("canceled")) == 0
    assert await lua.redis.pttl(lua.part.run(run_id)) == -1


async def test_finished_run_returns_already_finished(lua: Lua) -> None:
    # Given a completed run and a run canceled once
    done = await lua.create_one()
    assert await lua.finish(await lua.claim_one(done), "completed") == "completed"
    gone = await lua.create_one()
    assert await lua.scripts.cancel(gone) == 1
    before = await lua.run(done)
    # When both are canceled
    codes = [await lua.scripts.cancel(done), await lua.scripts.cancel(gone)]
    # Then both report -3 and the completed one is untouched
    assert codes == [StatusCode.ALREADY_FINISHED, StatusCode.ALREADY_FINISHED] == [-3, -3]
    assert await lua.run(done) == before


async def test_missing_run_returns_not_found(lua: Lua) -> None:
    # Given no run with that id
    # When it is canceled
    code = await lua.scripts.cancel("no-such-run")
    # Then -2 is returned and nothing is created
    assert code == StatusCode.NOT_FOUND
    assert code == -2
    assert await lua.redis.exists(lua.part.run("no-such-run"), lua.part.status("canceled")) == 0


async def test_cancel_finds_the_run_in_its_partition(lua: Lua) -> None:
    # Given four partitions and a queued run created in the partition of its id
    keys = Keys(lua.settings.prefix, 4)
    scripts = Scripts(lua.redis, keys, lua.settings.with_changes(partitions=4))
    run_id = next(i for i in (f"r{n}" for n in range(100)) if keys.partition_of_run(i).index == 3)
    p = keys.partitions[3]
    [(_, created)] = await scripts.create(p, [lua.spec(run_id=run_id).script_args()])
    # When it is canceled by id
    code = await scripts.cancel(run_id)
    # Then the record in partition 3 is canceled
    assert (created, code) == (1, 1)
    assert await lua.redis.hget(p.run(run_id), "status") == b"canceled"
    assert await lua.redis.zscore(p.status("canceled"), run_id) is not None
