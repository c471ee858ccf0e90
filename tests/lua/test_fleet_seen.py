"""fleet_seen on its own: a gap in which no node reached Redis for longer than a lease begins a
grace of one TTL (settings: lease TTL 2000 ms, reap interval 200 ms)."""

from __future__ import annotations

from tests.lua.support import Lua


async def test_a_fleet_that_keeps_calling_gets_no_grace(lua: Lua) -> None:
    # Given a first call, and a second soon after
    first = await lua.scripts.fleet_seen()
    second = await lua.scripts.fleet_seen()
    # Then neither begins a grace, and the record says when a node last called
    assert first[0] == 0 and first[2] == 0
    assert second[0] == 0 and second[2] == 0
    assert int(await lua.redis.hget(lua.keys.fleet, "seen")) == second[1]
    assert 0 < await lua.redis.pttl(lua.keys.fleet) <= 86_400_000


async def test_a_gap_longer_than_a_lease_begins_one_grace(lua: Lua) -> None:
    # Given a fleet whose last call was 10 s ago (Redis was out meanwhile)
    _, now, _ = await lua.scripts.fleet_seen()
    await lua.redis.hset(lua.keys.fleet, "seen", now - 10_000)
    # When a node calls
    grace_until, now2, gap = await lua.scripts.fleet_seen()
    # Then it is told of the gap, and a grace of one TTL begins
    assert gap >= 10_000 and grace_until == now2 + 2000
    # And the next call sees the same grace, without a gap of its own
    again, _, gap2 = await lua.scripts.fleet_seen()
    assert (again, gap2) == (grace_until, 0)


async def test_a_gap_shorter_than_a_lease_is_no_outage(lua: Lua) -> None:
    # Given a fleet whose last call was 1.5 s ago (under the 2 s TTL)
    _, now, _ = await lua.scripts.fleet_seen()
    await lua.redis.hset(lua.keys.fleet, "seen", now - 1500)
    # Then a call begins no grace
    assert (await lua.scripts.fleet_seen())[0::2] == (0, 0)


async def test_reapers_ticking_more_slowly_than_the_lease_are_no_outage(lua: Lua) -> None:
    # Given reapers that tick every 5 s against a 2 s lease, last seen 4 s ago
    slow = lua.scripts.settings.with_changes(reap_interval_ms=5000)
    lua.scripts.settings = slow
    _, now, _ = await lua.scripts.fleet_seen()
    await lua.redis.hset(lua.keys.fleet, "seen", now - 4000)
    # Then the gap is their pace, not an outage
    assert (await lua.scripts.fleet_seen())[0::2] == (0, 0)
