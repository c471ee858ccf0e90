"""A fenced write sent again under its number is answered, not applied twice: run_update,
run_append (both streams) and checkpoint_add; and an outcome sent again (runs_finish) gets the
status the first one set. A write whose reply a dropped connection lost
is sent again by the client (and by ride_out, through an outage); before the numbers, its
logs, records, chunks and checkpoints were stored twice."""

from __future__ import annotations

import orjson

from runtime.scripts import Claimed, Outcome
from tests.lua.support import Lua, text


async def _events(lua: Lua, run_id: str, kind: str) -> list[str]:
    return [text(f[b"data"]) for _, f in await lua.redis.xrange(lua.part.events(run_id))
            if text(f[b"type"]) == kind]


async def _executing(lua: Lua) -> tuple[str, Claimed]:
    run_id = await lua.create_one()
    return run_id, await lua.claim_one(run_id)


async def test_a_log_write_sent_again_is_stored_once(lua: Lua) -> None:
    # Given an executing run and a numbered write of a log line and a field
    run_id, c = await _executing(lua)
    args = (run_id, c.token, {"progress": '{"current":1}'}, [("log", '{"m":"one"}')])
    assert await lua.scripts.update(*args, number=1) == 1
    # When the same write is sent again (its reply was lost)
    assert await lua.scripts.update(*args, number=1) == 1
    # Then the log line is stored once
    assert await _events(lua, run_id, "log") == ['{"m":"one"}']
    # And the next write is applied, and an older number is answered without being applied
    assert await lua.scripts.update(run_id, c.token, None, [("log", '{"m":"two"}')], number=2) == 1
    assert await lua.scripts.update(run_id, c.token, None, [("log", '{"m":"late"}')], number=1) == 1
    assert await _events(lua, run_id, "log") == ['{"m":"one"}', '{"m":"two"}']
    # And a write without a number is applied every time
    for _ in range(2):
        assert await lua.scripts.update(run_id, c.token, None, [("log", '{"m":"free"}')]) == 1
    assert (await _events(lua, run_id, "log"))[2:] == ['{"m":"free"}', '{"m":"free"}']


async def test_appends_sent_again_are_stored_once_per_stream(lua: Lua) -> None:
    # Given an executing run
    run_id, c = await _executing(lua)
    for stream, key in (("rec", lua.part.records(run_id)), ("chunks", lua.part.chunks(run_id))):
        entries = [("usage", '{"t":1}'), ("output", '{"k":2}')]
        # When append 1 of the stream is sent twice
        assert await lua.scripts.append(run_id, c.token, stream, entries, number=1) == 2
        assert await lua.scripts.append(run_id, c.token, stream, entries, number=1) == 2
        # Then its entries are stored once (each stream numbers its own appends)
        assert [text(f[b"data"]) for _, f in await lua.redis.xrange(key)] == ['{"t":1}', '{"k":2}']
        assert await lua.scripts.append(run_id, c.token, stream, [("usage", '{"t":3}')], number=2) == 1
        assert len(await lua.redis.xrange(key)) == 3


async def test_a_checkpoint_sent_again_keeps_its_sequence(lua: Lua) -> None:
    # Given an executing run with one checkpoint stored
    run_id, c = await _executing(lua)
    assert await lua.scripts.checkpoint(run_id, c.token, "handler", '{"n":1}', number=1) == 1
    # When it is sent again, then a second checkpoint
    assert await lua.scripts.checkpoint(run_id, c.token, "handler", '{"n":1}', number=1) == 1
    assert await lua.scripts.checkpoint(run_id, c.token, "handler", '{"n":2}', number=2) == 2
    # Then two checkpoints are stored, with the sequences their first sends answered
    rows = await lua.redis.xrange(lua.part.checkpoints(run_id))
    assert [(text(f[b"sequence"]), text(f[b"state"])) for _, f in rows] == [("1", '{"n":1}'), ("2", '{"n":2}')]
    assert await _events(lua, run_id, "checkpoint") == ['{"sequence":1}', '{"sequence":2}']


async def test_the_next_lease_numbers_its_writes_afresh(lua: Lua) -> None:
    # Given a run whose first lease wrote logs 1 and 2, then was given back
    run_id, first = await _executing(lua)
    for n in (1, 2):
        assert await lua.scripts.update(run_id, first.token, None, [("log", f'{{"a":1,"n":{n}}}')], number=n) == 1
    assert await lua.finish(first, "released") == "queued"
    # When its next lease writes log 1 (a new token)
    second = await lua.claim_one(run_id)
    assert second.token != first.token
    assert await lua.scripts.update(run_id, second.token, None, [("log", '{"a":2,"n":1}')], number=1) == 1
    # Then it is stored: the numbers of the first lease do not hold back the second's
    assert await _events(lua, run_id, "log") == ['{"a":1,"n":1}', '{"a":1,"n":2}', '{"a":2,"n":1}']
    # And the first lease's writes stay fenced off
    assert await lua.scripts.update(run_id, first.token, None, [("log", "{}")], number=3) == -1


async def test_an_outcome_sent_again_gets_the_first_ones_status(lua: Lua) -> None:
    # Given one run completed and one failed (retried later) by their attempts
    done_id, done = await _executing(lua)
    failed_id, failed = await _executing(lua)
    assert await lua.finish(done, "completed", output_json='{"x":1}') == "completed"
    first = await lua.finish(failed, "failed", error_json='{"message":"boom"}')
    assert first in ("queued", "delayed")
    # When the same outcomes are sent again (their replies were lost)
    # Then each gets the status the first one set, and nothing changes
    before = (await lua.run(done_id), await lua.run(failed_id))
    assert await lua.finish(done, "completed", output_json='{"x":1}') == "completed"
    assert await lua.finish(failed, "failed", error_json='{"message":"boom"}') == first
    assert (await lua.run(done_id), await lua.run(failed_id)) == before
    # And another outcome, or another token, is still rejected as fenced off
    assert await lua.finish(done, "failed", error_json='{"message":"late"}') == -1
    assert await lua.finish(failed, "completed") == -1
    assert await lua.scripts.finish(lua.part, [Outcome(done_id, "other-node/1", "completed")]) == [(done_id, -1)]


async def test_an_outcome_for_a_lease_the_reapers_settled_is_rejected(lua: Lua) -> None:
    # Given an attempt whose lease expired and was reaped (recorded crashed)
    run_id, c = await _executing(lua)
    await lua.expire_lease(run_id)
    await lua.scripts.reap(lua.part)
    assert [a["status"] for a in orjson.loads((await lua.run(run_id))["attempts"])] == ["crashed"]
    # When its node's outcome arrives late: it is fenced off, not taken for a retry of a recorded one
    assert await lua.finish(c, "completed") == -1
    assert await lua.finish(c, "failed", error_json='{"message":"late"}') == -1
