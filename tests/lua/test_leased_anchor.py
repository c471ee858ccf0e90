"""The leased set's anchor: every way a run is leased keeps the set skiplist-encoded, and no reader
takes the anchor for a run."""

from __future__ import annotations

from runtime.keys import LEASED_ANCHOR
from tests.lua.support import Lua
from tests.lua.test_handoff import pushed, register


async def encoding(lua: Lua) -> str:
    raw = await lua.redis.object("encoding", lua.part.leased)
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def test_a_claim_keeps_the_leased_set_a_skiplist_and_readers_skip_the_anchor(lua: Lua) -> None:
    # Given three queued runs
    ids = [await lua.create_one() for _ in range(3)]
    # When a node claims them
    claimed = await lua.claim(3)
    # Then the leased set is a skiplist (a listpack would be scanned by every ZADD and ZREM)
    assert await encoding(lua) == "skiplist"
    assert await lua.redis.zscore(lua.part.leased, LEASED_ANCHOR) == float("inf")
    assert sorted(await lua.leases()) == sorted(ids)
    # And reconcile finds no drift: the anchor is not a dangling lease
    drift = await lua.scripts.reconcile(lua.part)
    assert drift["total"] == 0 and drift["leased"] == 0
    # And the reaper never takes it for an expired lease
    assert (await lua.scripts.reap(lua.part)).runs == []
    # When every run finishes
    for c in claimed:
        assert await lua.finish(c, "completed") == "completed"
    # Then no lease is left, and the set keeps its anchor and its encoding for the next leases
    assert await lua.leases() == []
    assert await encoding(lua) == "skiplist"
    assert (await lua.scripts.reconcile(lua.part))["total"] == 0


async def test_a_hand_off_keeps_the_leased_set_a_skiplist(lua: Lua) -> None:
    # Given a waiting node and no leased set yet
    assert await register(lua) == []
    assert await lua.redis.exists(lua.part.leased) == 0
    # When a run is created and handed straight to the node
    run_id = await lua.create_one()
    [c] = await pushed(lua)
    # Then the lease is in a skiplist-encoded set, beside the anchor
    assert c.run_id == run_id and await lua.leases() == [run_id]
    assert await encoding(lua) == "skiplist"


async def test_a_set_left_as_a_listpack_by_an_older_node_is_converted_by_the_next_claim(lua: Lua) -> None:
    # Given a leased set of plain leases (as a node of an earlier version left it): a listpack
    run_id = await lua.create_one()
    await lua.redis.zadd(lua.part.leased, {"older-lease": 10**13})
    assert await encoding(lua) != "skiplist"
    # When a node claims a run
    [c] = await lua.claim(1)
    # Then the set is a skiplist and holds both leases
    assert c.run_id == run_id
    assert await encoding(lua) == "skiplist"
    assert sorted(await lua.leases()) == sorted([run_id, "older-lease"])
