"""runs_claim on its own: order, served jobs, concurrency limits, lease bookkeeping."""

from __future__ import annotations

import orjson

from runtime.records import Run
from tests.lua.support import Lua, ready_score


async def test_higher_priority_is_claimed_first(lua: Lua) -> None:
    # Given runs of priorities 0, 10, -5 and 5 created in one call
    specs = {p: lua.spec(priority=p) for p in (0, 10, -5, 5)}
    await lua.create(*specs.values())
    # When one run is claimed, then the rest
    [first] = await lua.claim(1)
    rest = await lua.claim(10)
    # Then they come out highest priority first
    assert first.run_id == specs[10].id
    assert [c.run_id for c in rest] == [specs[5].id, specs[0].id, specs[-5].id]


async def test_fifo_within_one_priority(lua: Lua) -> None:
    # Given two runs of one priority created in different milliseconds,
    # with ids whose lexical order is the reverse of their creation order
    await lua.create(lua.spec(run_id="zz-first"))
    await lua.next_ms(await lua.ready_since("zz-first"))
    await lua.create(lua.spec(run_id="aa-second"))
    # When both are claimed
    claimed = await lua.claim(10)
    # Then the earlier one comes first
    assert [c.run_id for c in claimed] == ["zz-first", "aa-second"]
    assert claimed[0].ready_at_ms < claimed[1].ready_at_ms


async def test_fifo_within_one_millisecond(lua: Lua) -> None:
    # Given 30 runs of one priority created in one call (so in one millisecond),
    # with ids whose lexical order is unrelated to their creation order
    specs = [lua.spec(run_id=f"r{(i * 7919) % 1000:03d}-{i}") for i in range(30)]
    await lua.create(*specs)
    # When all are claimed
    claimed = await lua.claim(30)
    # Then they come out exactly in submission order
    assert [c.run_id for c in claimed] == [s.id for s in specs]


async def test_unserved_job_is_skipped_and_left_queued(lua: Lua) -> None:
    # Given a high-priority run of a job this node does not serve, and a served one
    other = lua.spec("other", priority=100)
    mine = lua.spec("work")
    await lua.create(other, mine)
    before = await lua.run(other.id)
    score = await lua.zscore(lua.part.ready("default"), other.id)
    # When the node claims for job "work" only
    claimed = await lua.claim(10, jobs=["work"])
    # Then only the served run is leased; the other is untouched in the ready set
    assert [c.run_id for c in claimed] == [mine.id]
    assert await lua.run(other.id) == before and before["status"] == "queued"
    assert await lua.zscore(lua.part.ready("default"), other.id) == score
    assert await lua.zscore(lua.part.leased, other.id) is None


async def test_per_job_max_concurrency_is_never_exceeded(lua: Lua) -> None:
    # Given job "work" limited to 2 at once ("max,per_key" = "2,") and 5 queued runs
    await lua.redis.hset(lua.part.jobs, "work", "2,")
    ids = [await lua.create_one() for _ in range(5)]
    # When one node asks for 5 and another for 5 more
    a = await lua.claim(5, node="node-a")
    b = await lua.claim(5, node="node-b")
    # Then only 2 are leased in total, and the job's lease set holds exactly them
    assert len(a) == 2 and b == []
    assert await lua.members(lua.part.job_leases("work")) == {c.run_id for c in a}
    assert await lua.redis.zcard(lua.part.ready("default")) == 3
    # When one of them finishes
    assert await lua.finish(a[0], "completed") == "completed"
    # Then exactly one more can be claimed
    c = await lua.claim(5, node="node-b")
    assert len(c) == 1 and c[0].run_id in ids
    assert await lua.redis.scard(lua.part.job_leases("work")) == 2


async def test_per_key_limit_is_never_exceeded(lua: Lua) -> None:
    # Given job "work" limited to 1 per concurrency key (",1")
    await lua.redis.hset(lua.part.jobs, "work", ",1")
    a1, a2 = lua.spec(concurrency_key="a"), lua.spec(concurrency_key="a")
    b1 = lua.spec(concurrency_key="b")
    free = lua.spec()
    await lua.create(a1, a2, b1, free)
    # When a node asks for all of them
    claimed = await lua.claim(10)
    # Then one run per key is leased, plus the run without a key
    got = {c.run_id for c in claimed}
    assert len(claimed) == 3 and {b1.id, free.id} < got and len(got & {a1.id, a2.id}) == 1
    leased_a = got & {a1.id, a2.id}
    waiting_a = ({a1.id, a2.id} - leased_a).pop()
    assert await lua.members(lua.part.key_leases("work", "a")) == leased_a
    assert await lua.members(lua.part.key_leases("work", "b")) == {b1.id}
    assert (await lua.run(waiting_a))["status"] == "queued"
    # And nothing more comes until key "a" is free
    assert await lua.claim(10) == []
    assert await lua.finish(next(c for c in claimed if c.run_id in leased_a), "completed") == "completed"
    assert [c.run_id for c in await lua.claim(10)] == [waiting_a]


async def test_job_and_key_limits_together(lua: Lua) -> None:
    # Given "work" limited to 3 at once and 2 per key, and 3 runs for each of keys a, b
    await lua.redis.hset(lua.part.jobs, "work", "3,2")
    await lua.create(*(lua.spec(concurrency_key=k) for k in "aaabbb"))
    # When a node asks for 10
    claimed = await lua.claim(10)
    # Then 3 are leased in all and no key has more than 2
    assert len(claimed) == 3
    keys = [(await lua.run(c.run_id))["concurrency_key"] for c in claimed]
    assert max(keys.count("a"), keys.count("b")) == 2
    assert await lua.redis.scard(lua.part.job_leases("work")) == 3


async def test_lease_token_attempt_charged_and_expiry(lua: Lua) -> None:
    # Given one queued run
    run_id = await lua.create_one(input={"x": 1}, timeout_s=7)
    queued = await lua.run(run_id)
    # When node-7 claims it
    [c] = await lua.claim(1, node="node-7")
    # Then the claim carries token node/attempt and the run's data
    assert (c.run_id, c.token, c.attempt, c.job) == (run_id, "node-7/1", 1, "work")
    assert orjson.loads(c.input_json) == {"x": 1}
    assert c.timeout_ms == 7000 and c.ready_at_ms == int(queued["created_at"]) and "ready_at" not in queued
    # And the record is executing, attempt and charged incremented, lease fields set
    run = await lua.run(run_id)
    expires = c.claimed_at_ms + lua.settings.lease_ttl_ms
    assert run["status"] == "executing"
    assert (run["attempt"], run["charged"]) == ("1", "1")
    # (the token is not stored: the node and the attempt give it)
    assert run["lease_node"] == "node-7" and "lease_token" not in run
    assert int(run["lease_expires_at"]) == expires
    assert int(run["attempt_started_at"]) == c.claimed_at_ms
    # And readers see it started, beating and updated at the claim, leased by node-7 until expiry
    view = Run.from_hash(run, run_id=run_id)
    assert view.started_at_ms == view.heartbeat_at_ms == view.updated_at_ms == c.claimed_at_ms
    assert (view.lease_node, view.lease_expires_at_ms) == ("node-7", expires)
    # And the leased set scores it by its expiry; it left the ready set; a job without limits
    # keeps no lease set (the record says so: cc is empty)
    assert await lua.zscore(lua.part.leased, run_id) == expires
    assert await lua.redis.exists(lua.part.ready("default")) == 0
    assert await lua.redis.exists(lua.part.job_leases("work")) == 0 and run["cc"] == ""


async def test_reclaim_after_release_increments_attempt_not_charged(lua: Lua) -> None:
    # Given a run claimed once and released (handed back uncharged)
    run_id = await lua.create_one()
    first = await lua.claim_one(run_id, node="node-a")
    assert await lua.finish(first, "released") == "queued"
    started = Run.from_hash(await lua.run(run_id), run_id=run_id).started_at_ms
    assert started == first.claimed_at_ms
    await lua.next_ms(first.claimed_at_ms)
    # When another node claims it, later
    second = await lua.claim_one(run_id, node="node-b")
    # Then it is attempt 2 with a new token, charged once, first start time kept
    assert (second.attempt, second.token) == (2, "node-b/2")
    run = await lua.run(run_id)
    assert (run["attempt"], run["charged"]) == ("2", "1")
    assert Run.from_hash(run, run_id=run_id).started_at_ms == started < second.claimed_at_ms


async def test_want_and_scan_bound_the_claim(lua: Lua) -> None:
    # Given 4 queued runs
    ids = [await lua.create_one() for _ in range(4)]
    # When claiming 2, then claiming with a scan window of 1 candidate
    two = await lua.claim(2)
    one, _ = await lua.scripts.claim(lua.part, "node-a", 10, ["default"], ["work"], 0, scan=1)
    # Then exactly 2 and then 1 are leased
    assert len(two) == 2 and len(one) == 1
    assert {c.run_id for c in two + one} < set(ids)
    assert await lua.redis.zcard(lua.part.ready("default")) == 1


async def test_queues_rotate_from_the_offset(lua: Lua) -> None:
    # Given one run in each of two queues
    q1 = await lua.create_one(queue="q1")
    q2 = await lua.create_one(queue="q2")
    # When claiming one at offset 1, then one at offset 0
    [at1] = await lua.claim(1, queues=["q1", "q2"], offset=1)
    [at0] = await lua.claim(1, queues=["q1", "q2"], offset=0)
    # Then offset 1 starts at the second queue
    assert (at1.run_id, at0.run_id) == (q2, q1)


async def test_dangling_ready_entry_is_dropped(lua: Lua) -> None:
    # Given a ready entry whose run record no longer exists, ahead of a real run
    run_id = await lua.create_one()
    await lua.redis.zadd(lua.part.ready("default"), {"ghost": ready_score(1000, 0)})
    await lua.redis.zadd(lua.part.ready("default"), {"ghost": ready_score(1000, 0)})
    # When claiming
    claimed = await lua.claim(10)
    # Then the real run is leased and the dangling entry removed
    assert [c.run_id for c in claimed] == [run_id]
    assert await lua.redis.exists(lua.part.ready("default")) == 0
    assert await lua.zscore(lua.part.leased, "ghost") is None


async def test_runs_behind_skipped_heads_are_found_within_the_scan_depth(lua: Lua) -> None:
    # Given a lone ready set whose head is 2 dangling entries and 9 runs of a job this node does
    # not serve (more than a claim of 3 reads first), then 3 served runs
    ready = lua.part.ready("default")
    for i in range(2):
        await lua.redis.zadd(ready, {f"ghost-{i}": ready_score(1000, i)})
    others = [lua.spec("other", priority=100) for _ in range(9)]
    mine = [lua.spec("work") for _ in range(3)]
    await lua.create(*others, *mine)
    # When the node claims 3 for job "work"
    claimed = await lua.claim(3, jobs=["work"])
    # Then the runs behind the skipped heads are leased, in order (the deeper read starts where
    # the first one ended, counting the dangling entries it removed), and the others stay queued
    assert [c.run_id for c in claimed] == [s.id for s in mine]
    assert await lua.redis.zcard(ready) == 9
    assert [(await lua.run(s.id))["status"] for s in others] == ["queued"] * 9


async def test_runs_past_the_scan_depth_wait_for_a_later_claim(lua: Lua) -> None:
    # Given 70 unserved runs ahead of a served one in a lone ready set (a claim of 1 scans 64)
    await lua.create(*(lua.spec("other", priority=100) for _ in range(70)))
    mine = await lua.create_one()
    # When the node claims 1 for job "work"
    claimed = await lua.claim(1, jobs=["work"])
    # Then nothing is leased this time: the scan depth bounds the claim's work
    assert claimed == []
    assert (await lua.run(mine))["status"] == "queued"
