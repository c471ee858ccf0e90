"""run_replay on its own: copy a finished run into a new queued one."""

from __future__ import annotations

import orjson

from runtime.errors import StatusCode
from runtime.jobs import Backoff, JobOptions
from tests.lua.support import Listener, Lua, priority_of

COPIED = ("job", "queue", "input", "priority", "max_attempts", "timeout_ms", "backoff", "labels", "tags",
          "metadata", "concurrency_key", "version")


async def dead_lettered(lua: Lua) -> str:
    """A run with every copyable field that failed its only attempt."""
    lua.jobs["work"] = JobOptions(backoff=Backoff(kind="linear", initial_s=3, max_s=9, jitter=0))
    run_id = await lua.create_one(
        input={"order": 7}, queue="mail", priority=4, max_attempts=1, timeout_s=9, labels={"t": "a"},
        tags=["x"], metadata={"m": True}, concurrency_key="ck", idempotency_key="ik", version="v3",
    )
    c = await lua.claim_one(run_id, queue="mail")
    assert await lua.finish(c, "failed", error_json='{"message": "no"}') == "dead_letter"
    return run_id


async def test_replay_copies_input_and_options_into_a_new_queued_run(lua: Lua) -> None:
    # Given a dead-lettered run with every option set
    old = await dead_lettered(lua)
    source = await lua.run(old)
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        # When it is replayed as "new-1"
        code = await lua.scripts.replay(old, "new-1")
        # Then the new run is created and the partition is woken
        assert code == 1
        assert await wake.messages() == [lua.part.prefix]
    new = await lua.run("new-1")
    # And it carries the source's input and options, linked back with replay_of
    assert {k: new[k] for k in COPIED} == {k: source[k] for k in COPIED}
    assert orjson.loads(new["input"]) == {"order": 7}
    assert (new["source"], new["replay_of"]) == ("replay", old) and "id" not in new
    # And it starts fresh: queued, no attempts, no result, no idempotency key
    assert (new["status"], new["attempt"], new["charged"]) == ("queued", "0", "0")
    assert not {"attempts", "error", "output", "finished_at", "idempotency_key", "started_at"} & set(new)
    assert new["created_at"] == new["ready_at"] and "scheduled_at" not in new
    ckey = source.get("concurrency_key", "")
    group = lua.part.keyed_group("mail", ckey) if ckey else lua.part.ready("mail")
    assert priority_of(await lua.zscore(group, "new-1")) == 4
    assert "mail" in await lua.members(lua.part.queues)
    # And the source keeps its terminal record, naming its replay
    assert await lua.run(old) == {**source, "replayed_as": "new-1"}


async def test_replay_of_a_minimal_run_writes_no_absent_fields(lua: Lua) -> None:
    # Given a completed run without optional fields
    old = await lua.create_one()
    assert await lua.finish(await lua.claim_one(old), "completed") == "completed"
    # When it is replayed
    assert await lua.scripts.replay(old, "new-2") == 1
    # Then the optional fields stay absent and the default priority is used
    new = await lua.run("new-2")
    assert not {"labels", "tags", "metadata", "concurrency_key", "version"} & set(new)
    assert priority_of(await lua.zscore(lua.part.ready("default"), "new-2")) == 0


async def test_live_runs_cannot_be_replayed(lua: Lua) -> None:
    # Given an executing, a queued and a delayed run
    executing = await lua.create_one()
    await lua.claim_one(executing)
    queued = await lua.create_one()
    delayed = await lua.create_one(delay_s=60)
    # When each is replayed
    codes = [await lua.scripts.replay(r, f"copy-{i}") for i, r in enumerate((queued, delayed, executing))]
    # Then each is refused as not finished and no copy exists
    assert codes == [StatusCode.NOT_FINISHED] * 3 == [-4, -4, -4]
    assert await lua.redis.exists(*(lua.part.run(f"copy-{i}") for i in range(3))) == 0


async def test_missing_run_returns_not_found(lua: Lua) -> None:
    # Given no run with that id
    # When it is replayed
    code = await lua.scripts.replay("no-such-run", "copy")
    # Then -2 is returned and nothing is created
    assert code == StatusCode.NOT_FOUND
    assert code == -2
    assert await lua.redis.exists(lua.part.run("copy")) == 0


async def test_existing_new_id_is_refused(lua: Lua) -> None:
    # Given a finished run and another run already holding the new id
    old = await lua.create_one()
    assert await lua.scripts.cancel(old) == 1
    taken = await lua.create_one(input="mine")
    before = await lua.run(taken)
    # When the finished run is replayed onto the taken id
    code = await lua.scripts.replay(old, taken)
    # Then -5 is returned and the existing run is untouched
    assert code == StatusCode.EXISTS
    assert code == -5
    assert await lua.run(taken) == before
    assert await lua.zmembers(lua.part.ready("default")) == [taken]
