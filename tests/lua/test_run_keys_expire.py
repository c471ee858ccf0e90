"""Every key a run owns expires with its record when the run ends, whatever the run wrote.

A run's keys besides its record and input (timeline, steps, checkpoints, ...) are expired at its
end only when the record marks them (includes/common.lua, SATELLITES): a write that made one
without the mark would leave it in Redis for good. This drives each kind of write a handler or a
client makes and then looks at every key that holds the run's id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from runtime.scripts import Claimed
from runtime.statuses import RETENTION_MARGIN_MS
from tests.lua.support import Lua

Write = Callable[[Lua, str, Claimed], Awaitable[object]]

#: one kind of write each, made while the run executes
WRITES: dict[str, Write] = {
    "nothing": lambda lua, run_id, c: _nothing(),
    "a log line": lambda lua, run_id, c: lua.scripts.update(run_id, c.token, None, [("log", '{"m":"hi"}')]),
    "progress and a log": lambda lua, run_id, c: lua.scripts.update(
        run_id, c.token, {"progress": "0.5"}, [("progress", '{"p":0.5}')]),
    "a step": lambda lua, run_id, c: lua.scripts.record_step(
        run_id, c.token, "s1", 0, '{"name":"s1","status":"completed","output":1}', True),
    "a checkpoint": lambda lua, run_id, c: lua.scripts.checkpoint(run_id, c.token, "handler", '{"n":1}'),
    "its state": lambda lua, run_id, c: lua.scripts.set_state(run_id, c.token, '{"n":1}'),
    "an appended record": lambda lua, run_id, c: lua.scripts.append(run_id, c.token, "rec", [("usage", "{}")]),
    "a buffered signal": lambda lua, run_id, c: lua.scripts.send_signal(run_id, "go", "1", 10),
    "a watcher": lambda lua, run_id, c: lua.scripts.watch(run_id),
}


async def _nothing() -> None:
    return None


async def _keys_of(lua: Lua, run_id: str) -> list[str]:
    return sorted([k.decode() async for k in lua.redis.scan_iter(match=f"*{run_id}*")])


@pytest.mark.parametrize("outcome", ["completed", "failed", "reaped"])
@pytest.mark.parametrize("write", list(WRITES))
async def test_every_key_of_a_run_expires_with_it(lua: Lua, write: str, outcome: str) -> None:
    # Given an executing run on its last attempt that made one kind of write
    run_id = await lua.create_one(max_attempts=1)
    claimed = await lua.claim_one(run_id)
    await WRITES[write](lua, run_id, claimed)
    # When it ends: its outcome recorded, or its lease reaped (its node gone)
    if outcome == "reaped":
        await lua.expire_lease(run_id)
        assert (await lua.scripts.reap(lua.part)).runs == [(run_id, "node-a", "dead_letter")]
    else:
        fields = {"error_json": '{"message":"x","type":"E"}'} if outcome == "failed" else {}
        ended = "completed" if outcome == "completed" else "dead_letter"
        assert await lua.finish(claimed, outcome, **fields) == ended
    # Then every key holding its id has a TTL, no longer than the record's
    keys = await _keys_of(lua, run_id)
    assert lua.part.run(run_id) in keys
    ttls = {k: await lua.redis.pttl(k) for k in keys}
    kept_ms = max(lua.settings.finished_ttl_s, lua.settings.dead_letter_ttl_s) * 1000 + RETENTION_MARGIN_MS
    assert all(0 < ttl <= kept_ms for ttl in ttls.values()), ttls


async def test_a_run_that_wrote_no_event_has_no_timeline_to_expire(lua: Lua) -> None:
    # Given a run that ran and completed without a log, a step or a watcher
    run_id = await lua.create_one()
    claimed = await lua.claim_one(run_id)
    assert await lua.finish(claimed, "completed") == "completed"
    # Then it has no timeline stream, and its record does not claim one (its finish expired none)
    assert await lua.redis.exists(lua.part.events(run_id)) == 0
    assert "sat_ev" not in await lua.run(run_id)
    # When a run writes its first event, the record notes the timeline; later events add no mark
    other = await lua.create_one()
    c = await lua.claim_one(other)
    assert await lua.scripts.update(other, c.token, None, [("log", '{"m":1}'), ("log", '{"m":2}')]) == 1
    assert (await lua.run(other))["sat_ev"] == "1"
    assert await lua.redis.xlen(lua.part.events(other)) == 2


async def test_a_timeline_left_without_a_ttl_ends_with_the_runs_retention(lua: Lua) -> None:
    # Given a run whose timeline a node of a version before the sat_ev mark began (an event written
    # without marking the record), finished by this version: its end expires no timeline it does
    # not know of
    unmarked = await lua.create_one()
    claimed = await lua.claim_one(unmarked)
    await lua.redis.xadd(lua.part.events(unmarked), {"type": "status", "data": "{}", "ts": "1"})
    assert await lua.finish(claimed, "completed") == "completed"
    assert await lua.redis.pttl(lua.part.events(unmarked)) == -1
    # and a run whose timeline this version began (marked, so it expires with the record)
    marked = await lua.create_one()
    c = await lua.claim_one(marked)
    assert await lua.scripts.update(marked, c.token, None, [("log", '{"m":1}')]) == 1
    assert await lua.finish(c, "completed") == "completed"
    # When the first run's retention ends (its index entry is older than the finished-run TTL) and
    # the periodic trim runs
    await lua.redis.zadd(lua.part.status("completed"), {unmarked: 1})
    assert await lua.scripts.trim_indices(lua.part) == 1
    # Then its timeline is gone with its retention; the run still retained keeps its own
    assert await lua.redis.exists(lua.part.events(unmarked)) == 0
    assert await lua.redis.exists(lua.part.events(marked)) == 1
    assert 0 < await lua.redis.pttl(lua.part.events(marked))
