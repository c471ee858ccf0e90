"""A project's run index is a stream (runtime/keys.py project_index): runs_create adds an entry per run
whose id starts with the run's created_at, the record locates it (ps, pi), and every way a finished
run leaves its project (deleted, trimmed by the cap or by age) removes that entry."""

from __future__ import annotations

from typing import Any

from runtime.scripts import Outcome, Scripts
from tests.lua.support import Lua, text


async def _finished(lua: Lua, n: int, scripts: Scripts | None = None, **options: Any) -> list[str]:
    """n runs created in one call (one millisecond), claimed and completed one at a time."""
    ids = [run_id for run_id, code in await lua.create(*(lua.spec(**options) for _ in range(n))) if code == 1]
    assert len(ids) == n
    for c in await lua.claim(n):
        [(_, status)] = await (scripts or lua.scripts).finish(lua.part, [Outcome(c.run_id, c.token, "completed")])
        assert status == "completed"
    return ids


async def _entries(lua: Lua, project: str = "default") -> list[tuple[str, str]]:
    """(entry id, run id) of every entry of a project's stream index, oldest first."""
    return [(text(eid), text(f[b"r"])) for eid, f in await lua.redis.xrange(lua.part.project_index(project))]


async def test_runs_created_in_one_millisecond_are_located_by_their_seq(lua: Lua) -> None:
    # When four runs are created in one call
    ids = [run_id for run_id, _ in await lua.create(*(lua.spec() for _ in range(4)))]
    # Then each has an entry <created_at>-<n>, in order, and only the records of entries after the
    # millisecond's first hold their seq (ps); none holds a whole id (pi)
    records = [await lua.run(run_id) for run_id in ids]
    created = records[0]["created_at"]
    assert await _entries(lua) == [(f"{created}-{i}", run_id) for i, run_id in enumerate(ids)]
    assert [r.get("ps") for r in records] == [None, "1", "2", "3"]
    assert all(r["created_at"] == created and "pi" not in r for r in records)
    # And the sorted set that held the index before gets nothing
    assert await lua.redis.exists(lua.part.project_runs()) == 0


async def test_a_run_created_behind_the_streams_last_id_holds_its_entry_id(lua: Lua) -> None:
    # Given a stream index whose last entry is ahead of the server's clock
    key = lua.part.project_index("p2")
    await lua.redis.xadd(key, {"r": "ahead"}, id="99999999999999-5")
    # When a run of that project is created, and finishes
    [run_id] = await _finished(lua, 1, extra={"project": "p2"})
    # Then its entry follows that one, and its record holds the entry's id
    assert await _entries(lua, "p2") == [("99999999999999-5", "ahead"), ("99999999999999-6", run_id)]
    assert (await lua.run(run_id))["pi"] == "99999999999999-6"
    # When it is deleted
    assert await lua.scripts.delete(run_id) == 1
    # Then exactly its entry is gone
    assert await _entries(lua, "p2") == [("99999999999999-5", "ahead")]


async def test_deleting_runs_removes_their_entries(lua: Lua) -> None:
    # Given three finished runs created in one millisecond
    ids = await _finished(lua, 3)
    assert [r for _, r in await _entries(lua)] == ids
    # When the middle one is deleted, then its entry alone is gone
    assert await lua.scripts.delete(ids[1]) == 1
    assert [r for _, r in await _entries(lua)] == [ids[0], ids[2]]
    # When the others are, the stream is empty
    for run_id in (ids[0], ids[2]):
        assert await lua.scripts.delete(run_id) == 1
    assert await lua.redis.xlen(lua.part.project_index()) == 0


async def test_the_status_index_cap_removes_the_entries_of_the_runs_it_drops(lua: Lua) -> None:
    # Given a cap of 2 finished runs per status, when 5 runs created in one millisecond complete
    scripts = Scripts(lua.redis, lua.keys, lua.settings.with_changes(finished_cap=2))
    ids = await _finished(lua, 5, scripts)
    # Then the 3 dropped are deleted and out of the stream; the 2 kept stay in it
    kept = set(await lua.zmembers(lua.part.status("completed")))
    assert len(kept) == 2 and kept < set(ids)
    assert [await lua.redis.exists(lua.part.run(run_id)) for run_id in ids] == [int(r in kept) for r in ids]
    assert [r for _, r in await _entries(lua)] == [r for r in ids if r in kept]


async def test_runs_past_their_retention_leave_the_stream_and_the_former_sorted_set(lua: Lua) -> None:
    # Given three completed runs created in one millisecond, one of which is also in the sorted set
    # that held the index before, and a queued run
    ids = await _finished(lua, 3)
    created = int((await lua.run(ids[0]))["created_at"])
    await lua.redis.zadd(lua.part.project_runs(), {ids[0]: created})
    live = await lua.create_one()
    # When their retention has ended (their status index entries are older than the finished TTL)
    await lua.redis.zadd(lua.part.status("completed"), {run_id: 1 for run_id in ids})
    assert await lua.scripts.trim_indices(lua.part) == 3
    # Then only the queued run is left in the project's index, of either kind
    assert [r for _, r in await _entries(lua)] == [live]
    assert await lua.redis.zcard(lua.part.project_runs()) == 0


async def test_the_project_index_costs_under_60_bytes_a_queued_run(make_app: Any, redis: Any) -> None:
    # Given 2,000 queued runs with a 100-byte input, created in batches (runs share milliseconds)
    app = make_app()

    @app.job()
    async def echo(ctx: Any, payload: Any) -> Any:
        return payload

    n = 2000
    await app.trigger_batch([{"job": "echo", "input": {"pad": "x" * 80, "n": i}} for i in range(n)])
    # When the memory of the project's index is measured (every entry: SAMPLES 0)
    p = app.keys.partitions[0]
    used = [await redis.memory_usage(key, samples=0) or 0 for key in (p.project_index(), p.project_runs())]
    # Then it is well under the ~130 bytes a run a sorted set took
    assert await redis.xlen(p.project_index()) == n
    assert sum(used) / n < 60, used


async def test_replayed_and_restarted_runs_enter_the_stream_and_leave_it_when_deleted(lua: Lua) -> None:
    # Given a finished run of project p2
    [source] = await _finished(lua, 1, extra={"project": "p2"})
    # When it is replayed and restarted, and a clock-ahead entry is added between the two
    assert await lua.scripts.replay(source, "replayed-1") == 1
    await lua.redis.xadd(lua.part.project_index("p2"), {"r": "ahead"}, id="99999999999999-0")
    assert await lua.scripts.restart(source, "restarted-1") == 1
    # Then each copy has its entry in its source's project: the replay's at its created_at, the
    # restart's after the entry ahead of the clock (its record holds the id)
    replayed, restarted = await lua.run("replayed-1"), await lua.run("restarted-1")
    first = await _entries(lua, "p2")
    assert first[1] == (project_entry(replayed), "replayed-1") and "pi" not in replayed
    assert first[3] == (restarted["pi"], "restarted-1") == ("99999999999999-1", "restarted-1")
    # When both finish and are deleted, their entries go with them
    done = [c.run_id for c in await lua.claim(2) if await lua.finish(c, "completed") == "completed"]
    assert sorted(done) == ["replayed-1", "restarted-1"]
    assert await lua.scripts.delete("replayed-1") == 1 and await lua.scripts.delete("restarted-1") == 1
    assert [r for _, r in await _entries(lua, "p2")] == [source, "ahead"]


def project_entry(record: dict[str, str]) -> str:
    """The stream entry id a record locates (includes/common.lua project_entry_id)."""
    return record.get("pi") or f"{record['created_at']}-{record.get('ps', '0')}"
