"""leases_reap on its own: only expired leases, crashed attempts, retry, dead letter, cancel."""

from __future__ import annotations

import orjson

from runtime.jobs import Backoff, JobOptions
from runtime.messages import DueSoon, wake_notice
from runtime.scripts import Scripts, grant_margin_ms
from tests.lua.support import Listener, Lua, wait_until


async def test_only_expired_leases_are_reaped_and_retried(lua: Lua) -> None:
    # Given two runs leased by node-a with a fixed 2 s backoff, one lease forced into the past
    lua.jobs["work"] = JobOptions(backoff=Backoff(kind="fixed", initial_s=2, max_s=60, jitter=0), max_attempts=3)
    dead, alive = await lua.create_one(), await lua.create_one()
    claimed = {c.run_id: c for c in await lua.claim(2, node="node-a")}
    alive_before = await lua.run(alive)
    alive_score = await lua.zscore(lua.part.leased, alive)
    await lua.expire_lease(dead)
    # When the reaper runs
    reaped = (await lua.scripts.reap(lua.part)).runs
    # Then only the expired one is reaped, named with its former node, and retried after its backoff
    assert reaped == [(dead, "node-a", "delayed")]
    run = await lua.run(dead)
    assert run["status"] == "delayed"
    assert int(run["next_retry_at"]) - int(run["updated_at"]) == 2000
    assert await lua.zscore(lua.part.delayed, dead) == int(run["next_retry_at"])
    assert not {"lease_token", "lease_node", "lease_expires_at"} & set(run)
    assert await lua.leases() == [alive]
    # And the attempt is recorded as crashed with a LeaseExpired error naming the node
    [attempt] = orjson.loads(run["attempts"])
    assert (attempt["number"], attempt["status"], attempt["worker_id"]) == (1, "crashed", "node-a")
    assert attempt["started_at"] == claimed[dead].claimed_at_ms
    assert attempt["error"]["type"] == "LeaseExpired" and "node-a" in attempt["error"]["message"]
    assert orjson.loads(run["error"])["type"] == "LeaseExpired"
    # And the live lease is untouched
    assert await lua.run(alive) == alive_before
    assert await lua.zscore(lua.part.leased, alive) == alive_score
    # And a second pass finds nothing
    assert (await lua.scripts.reap(lua.part)).runs == []


async def test_expired_last_attempt_is_dead_lettered(lua: Lua) -> None:
    # Given a run with a single attempt, leased and expired
    run_id = await lua.create_one(max_attempts=1)
    await lua.claim_one(run_id, node="node-x")
    await lua.expire_lease(run_id)
    # When the reaper runs
    reaped = (await lua.scripts.reap(lua.part)).runs
    # Then the run is dead-lettered and indexed
    assert reaped == [(run_id, "node-x", "dead_letter")]
    run = await lua.run(run_id)
    assert run["status"] == "dead_letter"
    assert await lua.zscore(lua.part.status("dead_letter"), run_id) == int(run["finished_at"])
    assert await lua.zscore(lua.part.leased, run_id) is None
    assert await lua.redis.pttl(lua.part.run(run_id)) > 0


async def test_expired_lease_with_cancel_requested_ends_canceled(lua: Lua) -> None:
    # Given an executing run with cancellation requested whose node died
    run_id = await lua.create_one(max_attempts=5)
    await lua.claim_one(run_id)
    assert await lua.scripts.cancel(run_id) == 2
    await lua.expire_lease(run_id)
    # When the reaper runs
    reaped = (await lua.scripts.reap(lua.part)).runs
    # Then the run is canceled rather than retried
    assert reaped == [(run_id, "node-a", "canceled")]
    run = await lua.run(run_id)
    assert run["status"] == "canceled"
    assert await lua.zscore(lua.part.status("canceled"), run_id) is not None
    assert await lua.zscore(lua.part.delayed, run_id) is None
    assert orjson.loads(run["attempts"])[0]["status"] == "canceled"


async def test_lease_expires_by_the_server_clock(lua: Lua) -> None:
    # Given scripts with a 150 ms lease TTL and a freshly leased run
    short = lua.settings.with_changes(lease_ttl_ms=150, renew_interval_ms=50)
    scripts = Scripts(lua.redis, lua.keys, short)
    run_id = await lua.create_one()
    [c], _ = await scripts.claim(lua.part, "node-a", 1, ["default"], ["work"], 0)
    # When the reaper runs right away
    early = (await scripts.reap(lua.part)).runs
    # Then nothing is reaped yet
    assert early == [] and (await lua.run(run_id))["status"] == "executing"

    # When it runs again until the lease has expired
    async def reaped() -> list[tuple[str, str, str]]:
        return (await scripts.reap(lua.part)).runs

    result = await wait_until(reaped, timeout=5.0, interval=0.02)
    # Then the run is reaped, not before its expiry
    assert result == [(run_id, "node-a", "delayed")]
    assert int((await lua.run(run_id))["updated_at"]) >= c.claimed_at_ms + 150


async def test_limit_bounds_one_pass_and_missing_records_are_dropped(lua: Lua) -> None:
    # Given three expired leases and, behind them, a leased-set entry whose record is gone
    ids = [await lua.create_one() for _ in range(3)]
    await lua.claim(3)
    for run_id in ids:
        await lua.expire_lease(run_id)
    await lua.redis.zadd(lua.part.leased, {"ghost": 5})
    # When the reaper runs with a limit of 2, then again
    first = (await lua.scripts.reap(lua.part, limit=2)).runs
    second = (await lua.scripts.reap(lua.part, limit=10)).runs
    # Then the ghost entry is removed unreported and each real run is reaped exactly once
    assert "ghost" not in [r[0] for r in first + second]
    assert sorted(r[0] for r in first + second) == sorted(ids)
    assert (len(first), len(second)) == (2, 1)
    assert await lua.leases() == []


async def test_wake_is_published_only_when_something_was_reaped(lua: Lua) -> None:
    # Given one leased run
    run_id = await lua.create_one()
    await lua.claim_one(run_id)
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        # When the reaper finds nothing expired
        assert (await lua.scripts.reap(lua.part)).runs == []
        # Then nothing is published
        assert await wake.messages() == []
        # When the lease has expired and is reaped
        await lua.expire_lease(run_id)
        assert len((await lua.scripts.reap(lua.part)).runs) == 1
        # Then the partition prefix is published, and then when its retry is due (its backoff)
        woken, due = await wake.messages()
        assert woken == lua.part.prefix
        notice = wake_notice(due)
        assert isinstance(notice, DueSoon) and notice.partition == lua.part.prefix
        record = await lua.redis.hgetall(lua.part.run(run_id))
        assert record[b"status"] == b"delayed"
        assert 0 <= notice.in_ms <= int(record[b"next_retry_at"]) - int(record[b"updated_at"])


async def test_a_gap_longer_than_a_lease_begins_one_grace_without_reaping(lua: Lua) -> None:
    # Given a lease that expired in a gap of 10 s in which no reaper reached the partition (Redis
    # was out meanwhile; settings: lease TTL 2000 ms, reap interval 200 ms), and one that had
    # expired before the gap began (its holder stopped renewing while Redis could be reached)
    run_id, dead_id = await lua.create_one(), await lua.create_one()
    await lua.claim_one(run_id)
    await lua.claim_one(dead_id)
    assert (await lua.scripts.reap(lua.part)).runs == []  # (a reaper's call: the partition is seen)
    seen = int(await lua.redis.hget(lua.part.reaper, "seen"))
    await lua.redis.zadd(lua.part.leased, {run_id: seen - 5000, dead_id: seen - 10_500})
    await lua.redis.hset(lua.part.reaper, "seen", seen - 10_000)
    # When a reaper calls
    first = await lua.scripts.reap(lua.part)
    # Then it is told of the gap, a grace of one TTL begins, and only the lease that had expired
    # before the gap is reaped
    assert first.gap_ms >= 10_000 and 1900 <= first.grace_ms <= 2000
    assert [r[0] for r in first.runs] == [dead_id]
    # And the next call within the grace reaps nothing either, without a gap of its own
    second = await lua.scripts.reap(lua.part)
    assert second.runs == [] and second.gap_ms == 0 and 0 < second.grace_ms <= first.grace_ms
    assert (await lua.run(run_id))["status"] == "executing"
    # When the grace is over (as if it ended a moment ago), Then the expired lease is reaped as ever
    await lua.redis.hset(lua.part.reaper, "grace_until", 1)
    after = await lua.scripts.reap(lua.part)
    assert [r[0] for r in after.runs] == [run_id] and (after.gap_ms, after.grace_ms) == (0, 0)


async def test_a_gap_inside_a_grace_extends_it_and_keeps_its_cut_off(lua: Lua) -> None:
    # Given a grace begun by a gap (settings: lease TTL 2000 ms): a lease that expired in that gap,
    # its holder not yet renewed, and one that had expired before the gap began
    run_id, dead_id = await lua.create_one(), await lua.create_one()
    await lua.claim_one(run_id)
    await lua.claim_one(dead_id)
    assert (await lua.scripts.reap(lua.part)).runs == []
    now = int(await lua.redis.hget(lua.part.reaper, "seen"))
    first_gap_from = now - 14_000
    await lua.redis.zadd(lua.part.leased, {run_id: first_gap_from + 1000, dead_id: first_gap_from - 500})
    # ... and Redis out again 3.5 s ago, 0.5 s into that grace (the last reap was then): its
    # holder did not get the grace it was given
    await lua.redis.hset(lua.part.reaper, mapping={
        "seen": now - 3500, "grace_until": now - 3500 + 1500, "gap_from": first_gap_from})
    # When a reaper calls after this second gap
    reaped = await lua.scripts.reap(lua.part)
    # Then a new grace begins whose cut-off is still the first gap's: only the lease that had
    # expired before Redis first went out is reaped
    assert reaped.gap_ms >= 3500 and 1900 <= reaped.grace_ms <= 2000
    assert [r[0] for r in reaped.runs] == [dead_id]
    assert (await lua.run(run_id))["status"] == "executing"
    assert int(await lua.redis.hget(lua.part.reaper, "gap_from")) == first_gap_from


async def test_a_gap_after_a_whole_grace_reaps_the_leases_it_let_lapse(lua: Lua) -> None:
    # Given a lease that expired in a first gap and was not renewed in the whole grace after it
    # (its holder died in the outage), and Redis out again since, 1 s after that grace ended
    run_id = await lua.create_one()
    await lua.claim_one(run_id)
    assert (await lua.scripts.reap(lua.part)).runs == []
    now = int(await lua.redis.hget(lua.part.reaper, "seen"))
    first_gap_from = now - 20_000
    await lua.redis.zadd(lua.part.leased, {run_id: first_gap_from + 1000})
    await lua.redis.hset(lua.part.reaper, mapping={
        "seen": now - 4000, "grace_until": now - 5000, "gap_from": first_gap_from})
    # When a reaper calls after the second gap
    reaped = await lua.scripts.reap(lua.part)
    # Then the grace it begins does not cover that lease: it is reaped at once
    assert reaped.gap_ms >= 4000 and reaped.grace_ms > 0
    assert [r[0] for r in reaped.runs] == [run_id]
    assert int(await lua.redis.hget(lua.part.reaper, "gap_from")) == now - 4000


async def test_a_gap_shorter_than_a_lease_is_no_outage(lua: Lua) -> None:
    # Given an expired lease in a partition last reaped 1.5 s ago (under the 2 s TTL)
    run_id = await lua.create_one()
    await lua.claim_one(run_id)
    await lua.scripts.reap(lua.part)
    await lua.redis.zadd(lua.part.leased, {run_id: 1})
    seen = int(await lua.redis.hget(lua.part.reaper, "seen"))
    await lua.redis.hset(lua.part.reaper, "seen", seen - 1500)
    # Then the lease is reaped at once
    reaped = await lua.scripts.reap(lua.part)
    assert [r[0] for r in reaped.runs] == [run_id] and reaped.gap_ms == 0
    assert 0 < await lua.redis.pttl(lua.part.reaper) <= 86_400_000


async def test_reapers_ticking_more_slowly_than_the_lease_are_no_outage(lua: Lua) -> None:
    # Given reapers that tick every 5 s against a 2 s lease, the partition last reaped 4 s ago
    lua.scripts.settings = lua.scripts.settings.with_changes(reap_interval_ms=5000)
    await lua.scripts.reap(lua.part)
    seen = int(await lua.redis.hget(lua.part.reaper, "seen"))
    await lua.redis.hset(lua.part.reaper, "seen", seen - 4000)
    # Then the gap is their pace, not an outage
    assert (await lua.scripts.reap(lua.part)).gap_ms == 0


async def _lost_grant(lua: Lua, node: str = "node-a", ago_ms: int = 20_000) -> tuple[str, Scripts, int]:
    """A one-attempt run leased to ``node`` ``ago_ms`` ago (its lease expired since) and never renewed,
    as when the claim's reply was lost; the node's renewals began before the grant, and its last one
    was then too. Returns the run, the scripts of that node, and the grant's time."""
    run_id = await lua.create_one(max_attempts=1)
    await lua.claim_one(run_id, node=node)
    granted = await lua.now_ms() - ago_ms
    expires = granted + lua.settings.lease_ttl_ms
    await lua.redis.hset(lua.part.run(run_id), mapping={"attempt_started_at": granted, "lease_expires_at": expires})
    await lua.redis.zadd(lua.part.leased, {run_id: expires}, xx=True)
    scripts = Scripts(lua.redis, lua.keys, lua.settings.with_changes(node_id=node))
    await lua.redis.hset(lua.part.renewers, node, f"first|{granted - 1000}|{granted - 1000}|7000")
    return run_id, scripts, granted


async def test_a_lease_its_node_never_got_is_given_back_uncharged_when_a_renewal_past_its_margin_left_it_out(
        lua: Lua) -> None:
    # Given a one-attempt run leased to node-a, whose reply node-a never got
    run_id, node_a, _ = await _lost_grant(lua)
    # When the same process of node-a renews now, more than its margin after the grant, without it
    assert await node_a.renew(lua.part, [], "first") == ([], [])
    # Then the reaper gives the run back, uncharged: the node never had it
    assert (await lua.scripts.reap(lua.part)).runs == [(run_id, "node-a", "queued")]
    run = await lua.run(run_id)
    assert (run["status"], run["charged"]) == ("queued", "0")
    [attempt] = orjson.loads(run["attempts"])
    assert attempt["status"] == "released" and "never got the lease" in attempt["error"]["message"]


async def test_a_lease_whose_node_stopped_renewing_is_charged_as_a_crash(lua: Lua) -> None:
    # Given the same run, and node-a silent since before the grant (longer than its interval and margin)
    run_id, _, _ = await _lost_grant(lua)
    # When the reaper runs
    reaped = (await lua.scripts.reap(lua.part)).runs
    # Then the node is taken for dead: the attempt crashed, and was the run's last
    assert reaped == [(run_id, "node-a", "dead_letter")]
    assert orjson.loads((await lua.run(run_id))["attempts"])[0]["status"] == "crashed"


async def test_a_renewal_within_its_margin_of_the_grant_says_nothing(lua: Lua) -> None:
    # Given the same run, whose node renewed last 6 s after the grant, inside its margin of 7 s (the
    # grant's reply may have been on its way)
    run_id, _, granted = await _lost_grant(lua)
    await lua.redis.hset(lua.part.renewers, "node-a", f"first|{granted - 1000}|{granted + 6000}|7000")
    # When the reaper runs
    reaped = (await lua.scripts.reap(lua.part)).runs
    # Then nothing tells that the node never had it: the attempt crashed
    assert reaped == [(run_id, "node-a", "dead_letter")]


async def test_a_lease_granted_to_an_earlier_process_of_the_node_is_charged_as_a_crash(lua: Lua) -> None:
    # Given the same run, and a new process with node-a's id that began renewing after the grant
    run_id, node_a, _ = await _lost_grant(lua)
    assert await node_a.renew(lua.part, [], "second") == ([], [])
    # When the reaper runs
    reaped = (await lua.scripts.reap(lua.part)).runs
    # Then the lease was the earlier process's, which may have started the run: the attempt crashed
    assert reaped == [(run_id, "node-a", "dead_letter")]


async def test_a_lease_its_node_renewed_once_is_charged_as_a_crash(lua: Lua) -> None:
    # Given the same run, renewed once in this attempt by its node (it had it), then left out
    run_id, node_a, _ = await _lost_grant(lua)
    await lua.redis.hset(lua.part.run(run_id), "heartbeat_at", await lua.now_ms() - 100)
    assert await node_a.renew(lua.part, [], "first") == ([], [])
    # When the reaper runs
    reaped = (await lua.scripts.reap(lua.part)).runs
    # Then the node had the run: the attempt crashed
    assert reaped == [(run_id, "node-a", "dead_letter")]


async def test_the_node_process_a_lease_was_granted_to_never_reaps_it_as_its_own_crash(lua: Lua) -> None:
    # Given a run leased to node-a's process "first" (renewing since before the grant), renewed by it once,
    # whose lease lapsed half a second ago while that process's own loop was held (a handler blocking it)
    run_id, node_a, granted = await _lost_grant(lua, ago_ms=lua.settings.lease_ttl_ms + 500)
    await lua.redis.hset(lua.part.run(run_id), "heartbeat_at", granted + 100)
    await lua.redis.hset(lua.part.renewers, "node-a", f"first|{granted - 1000}|{granted + 100}|7000")
    # When that process reaps (its leaser's call names it)
    reaped = (await node_a.reap(lua.part, incarnation="first")).runs
    # Then the lease is left to it, alive as it reaps: its renewal takes the lapsed lease back (the token
    # still matches) or its executor settles the run (before, its own reaper charged the attempt a crash
    # of the very node running it, and the one-attempt run was dead-lettered)
    assert reaped == [] and (await lua.run(run_id))["status"] == "executing"
    assert await lua.leases() == [run_id]
    # And a later process with node-a's id reaps it as a crash, as any other node does: the process it was
    # granted to may be dead
    assert (await node_a.reap(lua.part, incarnation="second")).runs == [(run_id, "node-a", "dead_letter")]


async def test_the_node_process_a_lease_was_granted_to_reaps_it_once_lapsed_for_longer_than_a_lease(
        lua: Lua) -> None:
    # Given a run leased to node-a's process "first" and renewed by it once, whose lease expired 18 s ago
    # (2 s leases): more than a stall of the process's own loop explains (a long pause, or a lease the
    # process lost track of)
    run_id, node_a, granted = await _lost_grant(lua)
    await lua.redis.hset(lua.part.run(run_id), "heartbeat_at", granted + 100)
    await lua.redis.hset(lua.part.renewers, "node-a", f"first|{granted - 1000}|{granted + 100}|7000")
    # When that process reaps, Then it reaps it as a crash, as any reaper does: no lease is left for ever
    assert (await node_a.reap(lua.part, incarnation="first")).runs == [(run_id, "node-a", "dead_letter")]


async def test_the_node_process_a_lease_was_granted_to_gives_back_one_it_never_got(lua: Lua) -> None:
    # Given a run leased to node-a's process "first", whose reply it never got, and its renewal since, past
    # the grant's margin, without it
    run_id, node_a, _ = await _lost_grant(lua)
    assert await node_a.renew(lua.part, [], "first") == ([], [])
    # When that process reaps
    reaped = (await node_a.reap(lua.part, incarnation="first")).runs
    # Then the run is given back uncharged, as any reaper gives it back
    assert reaped == [(run_id, "node-a", "queued")]
    assert orjson.loads((await lua.run(run_id))["attempts"])[0]["status"] == "released"


async def test_a_partial_renewal_notes_nothing(lua: Lua) -> None:
    # Given a run leased to node-a, whose handler confirms its own lease (no incarnation: a partial call)
    run_id = await lua.create_one()
    c = await lua.claim_one(run_id, node="node-a")
    node_a = Scripts(lua.redis, lua.keys, lua.settings.with_changes(node_id="node-a"))
    assert await node_a.renew(lua.part, [(run_id, c.token)]) == ([], [])
    # Then no renewal of node-a is noted (it did not list every lease it holds)
    assert not await lua.redis.hexists(lua.part.renewers, "node-a")
    # And a full renewal notes its incarnation, when its renewals began and when this one ran
    assert await node_a.renew(lua.part, [(run_id, c.token)], "first") == ([], [])
    incarnation, first, at, margin = (await lua.redis.hget(lua.part.renewers, "node-a")).decode().split("|")
    assert (incarnation, first == at) == ("first", True)
    assert int(margin) == grant_margin_ms(lua.settings)


async def test_a_process_that_begins_renewing_drops_the_entries_of_those_silent_past_any_lease(lua: Lua) -> None:
    # Given the entries of a node process silent for two days and one that renewed a minute ago
    now = await lua.now_ms()
    day = 86_400_000
    await lua.redis.hset(lua.part.renewers, mapping={"gone": f"x|{now - 3 * day}|{now - 2 * day}|7000",
                                                     "recent": f"y|{now - day}|{now - 60_000}|7000"})
    node_b = Scripts(lua.redis, lua.keys, lua.settings.with_changes(node_id="node-b"))
    # When node-b's process renews the first time, and again
    for _ in range(2):
        assert await node_b.renew(lua.part, [], "third") == ([], [])
    # Then only the silent one's entry is gone
    assert sorted(await lua.redis.hkeys(lua.part.renewers)) == [b"node-b", b"recent"]
