"""Hand-off: runs_claim registers an idle node, runs_create leases new runs to it.

A node with room left after a claim registers as waiting; runs_create then
leases runs to it inside the creating call and pushes them to the node's
hand-off list, publishing no wake-up when nothing is left for other nodes.
Runs pushed but not yet received count against the node's next claims.
"""

from __future__ import annotations

import orjson
import pytest

from runtime.scripts import Claimed, handed_off_runs
from runtime.timeline import read_timeline
from tests.lua.support import Listener, Lua, wait_until

REGISTER_MS = 3000


async def register(lua: Lua, node: str = "node-a", want: int = 5, received: int = 0,
                   jobs: tuple[str, ...] = ("work",), queues: tuple[str, ...] = ("default",)) -> list[Claimed]:
    """A claim by a node that takes hand-offs (it registers when room is left)."""
    claimed, _ = await lua.scripts.claim(lua.part, node, want, list(queues), list(jobs), 0,
                                         received=received, register_ms=REGISTER_MS)
    return claimed


async def pushed(lua: Lua, node: str = "node-a") -> list[Claimed]:
    """Every run pushed to the node's hand-off list (popping them, as the receiver does)."""
    out: list[Claimed] = []
    while (raw := await lua.redis.lpop(lua.part.handoff(node))) is not None:
        out.extend(handed_off_runs(raw, lua.part.index))
    return out


async def test_a_new_run_is_leased_to_a_waiting_node_and_pushed_to_it(lua: Lua) -> None:
    # Given a node whose claim found nothing (it registers as waiting)
    assert await register(lua) == []
    assert await lua.redis.exists(lua.part.waiter("node-a")) == 1
    # When a run is created, with a subscriber on the wake channel
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        run_id = await lua.create_one(input={"n": 1}, metadata={"m": 1}, tags=["t"])
        # Then the run is executing under a lease of that node, without a wake-up
        run = await lua.run(run_id)
        assert run["status"] == "executing" and run["lease_node"] == "node-a"
        assert await lua.zscore(lua.part.leased, run_id) is not None
        assert await lua.zmembers(lua.part.ready("default")) == []
        assert await wake.messages() == []
    # And the node's hand-off list carries the same fields a claim returns
    [c] = await pushed(lua)
    assert (c.run_id, c.token, c.attempt, c.job) == (run_id, "node-a/1", 1, "work")
    assert orjson.loads(c.input_json) == {"n": 1}
    assert c.metadata_json is not None and orjson.loads(c.metadata_json) == {"m": 1}
    assert c.tags_json is not None and orjson.loads(c.tags_json) == ["t"]
    assert c.step_count == 0 and c.timeout_ms > 0
    # And the hand-off is counted; the registration stays, its room counted down (it asked for 5)
    assert await lua.redis.hget(lua.part.handed, "node-a") == b"1"
    assert await lua.redis.exists(lua.part.waiter("node-a")) == 1
    # And the leased run's timeline says so, as after a claim (derived from its record)
    events = await read_timeline(lua.redis, lua.part, run_id)
    assert [e["data"] for e in events] == [{"status": "executing", "attempt": 1, "node": "node-a"}]


async def test_a_handed_off_run_finishes_like_a_claimed_one(lua: Lua) -> None:
    # Given a run handed to a waiting node
    await register(lua)
    run_id = await lua.create_one(input=7)
    [c] = await pushed(lua)
    # When the node reports it completed, with the token it was handed
    status = await lua.finish(c, "completed", output_json="8")
    # Then the outcome is accepted (the lease was real)
    assert status == "completed"
    run = await lua.run(run_id)
    assert run["status"] == "completed" and run["output"] == "8"


async def test_without_registration_runs_stay_queued_and_nodes_are_woken(lua: Lua) -> None:
    # Given a node that claims without taking hand-offs (register_ms 0)
    claimed, _ = await lua.scripts.claim(lua.part, "node-a", 5, ["default"], ["work"], 0)
    assert claimed == [] and await lua.redis.exists(lua.part.waiter("node-a")) == 0
    # When a run is created
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        run_id = await lua.create_one()
        # Then it is queued and the wake channel is published
        assert (await lua.run(run_id))["status"] == "queued"
        assert await wake.messages() == [lua.part.prefix]


async def test_runs_in_transit_count_against_the_nodes_room(lua: Lua) -> None:
    # Given a node that registered with room for 2 runs
    await register(lua, want=2)
    # When 3 runs are created in one call
    async with Listener(lua.redis, lua.keys.wake_channel) as wake:
        ids = [i for i, _ in await lua.create(*(lua.spec(input=n) for n in range(3)))]
        # Then 2 are handed to it and the third stays queued, with a wake-up for the others
        assert await wake.messages() == [lua.part.prefix]
    statuses = [(await lua.run(i))["status"] for i in ids]
    assert sorted(statuses) == ["executing", "executing", "queued"]
    # When the node claims with room for 5 before receiving the 2 pushed runs
    claimed = await register(lua, want=5, received=0)
    # Then only 3 more may be leased (2 are on their way): it gets the queued one
    assert [c.run_id for c in claimed] == [ids[statuses.index("queued")]]
    # And it stays registered for the room that is left (5 - 2 in transit - 1 claimed)
    waiter = orjson.loads(await lua.redis.get(lua.part.waiter("node-a")))
    assert waiter[0] == 2
    # And once it has received them, they no longer count
    assert len(await pushed(lua)) == 2
    await register(lua, want=5, received=2)
    assert orjson.loads(await lua.redis.get(lua.part.waiter("node-a")))[0] == 5


async def test_a_hand_off_count_lost_with_redis_data_goes_on_from_what_the_node_received(lua: Lua) -> None:
    # Given a node that has received 7 runs by hand-off, and a Redis that lost the count (restarted without
    # its data): the script sees fewer handed than received
    await register(lua, want=5, received=7)
    # Then the count goes on from what the node received
    assert await lua.redis.hget(lua.part.handed, "node-a") == b"7"
    # And a run handed to it afterwards counts as in transit until it is received, as before the loss
    await lua.create_one(input={"n": 1})
    await register(lua, want=5, received=7)
    assert orjson.loads(await lua.redis.get(lua.part.waiter("node-a")))[0] == 4
    assert len(await pushed(lua)) == 1
    await register(lua, want=5, received=8)
    assert orjson.loads(await lua.redis.get(lua.part.waiter("node-a")))[0] == 5


async def test_the_registration_holds_the_claims_arguments_as_json_numbers_and_strings(lua: Lua) -> None:
    # Given a node that registers for two queues and for jobs with versions (nodes and clients of
    # other versions decode the registration: it must stay this array)
    claimed, _ = await lua.scripts.claim(lua.part, "node-a", 7, ["default", "other"], ["work", "v@1|2"], 0,
                                         scan=40, register_ms=REGISTER_MS)
    assert claimed == []
    raw = await lua.redis.get(lua.part.waiter("node-a"))
    s = lua.scripts.settings
    # Then it is the JSON array of the claim's arguments, integers as JSON numbers and texts as
    # strings, then the runs handed to the node so far (which makes it kept across hand-offs)
    assert orjson.loads(raw) == [7, 40, "default,other", "work,v@1|2", s.lease_ttl_ms,
                                 lua.scripts._ttl_ms, s.finished_cap, s.label_text, int(s.priority_aging_s * 1000),
                                 0]


async def test_a_node_with_its_room_in_transit_unregisters(lua: Lua) -> None:
    # Given a node registered with room for 1, which was handed 1 run
    await register(lua, want=1)
    await lua.create_one()
    # When it claims with room for 1 before receiving that run
    claimed = await register(lua, want=1, received=0)
    # Then it gets nothing and is not registered (it has no room)
    assert claimed == []
    assert await lua.redis.exists(lua.part.waiter("node-a")) == 0
    # And a new run stays queued
    run_id = await lua.create_one()
    assert (await lua.run(run_id))["status"] == "queued"


async def test_a_busy_node_unregisters(lua: Lua) -> None:
    # Given a registered node
    await register(lua, want=2)
    assert await lua.redis.exists(lua.part.waiter("node-a")) == 1
    # And (while it was away) runs queued beyond what its registration covers
    await lua.redis.delete(lua.part.waiter("node-a"))
    ids = [i for i, _ in await lua.create(*(lua.spec(input=n) for n in range(3)))]
    # When its claim takes all the room it asked for
    claimed = await register(lua, want=2)
    # Then it is not registered any more
    assert len(claimed) == 2 and await lua.redis.exists(lua.part.waiter("node-a")) == 0
    assert (await lua.run(ids[2]))["status"] == "queued"


async def test_an_expired_registration_is_ignored_and_cleaned(lua: Lua) -> None:
    # Given a node that registered for a short time and went away
    await lua.scripts.claim(lua.part, "node-a", 5, ["default"], ["work"], 0, register_ms=100)
    await wait_until(lambda: _gone(lua, lua.part.waiter("node-a")), timeout=5)
    # When a run is created
    run_id = await lua.create_one()
    # Then it stays queued, and the stale entry is removed from the queue's waiters
    assert (await lua.run(run_id))["status"] == "queued"
    assert await lua.members(lua.part.waiters("default")) == set()
    assert await lua.redis.exists(lua.part.handoff("node-a")) == 0


async def test_hand_offs_follow_the_claim_rules(lua: Lua) -> None:
    # Given a node waiting for job "other" only, and one waiting on a paused queue
    await register(lua, node="node-other", jobs=("other",))
    await register(lua, node="node-paused", queues=("slow",))
    await lua.redis.sadd(lua.part.paused_queues, "slow")
    # When runs of job "work" in queue default, and of queue slow, are created
    work_id = await lua.create_one()
    slow_id = await lua.create_one(queue="slow")
    # Then neither node is handed a run it would not claim
    assert (await lua.run(work_id))["status"] == "queued"
    assert (await lua.run(slow_id))["status"] == "queued"
    assert await pushed(lua, "node-other") == [] and await pushed(lua, "node-paused") == []


async def test_a_delayed_run_is_not_handed_off(lua: Lua) -> None:
    # Given a waiting node
    await register(lua)
    # When a delayed run is created
    run_id = await lua.create_one(delay_s=60)
    # Then it waits in the delayed set and the node stays registered
    assert (await lua.run(run_id))["status"] == "delayed"
    assert await lua.redis.exists(lua.part.waiter("node-a")) == 1


async def _gone(lua: Lua, key: str) -> bool:
    return bool(await lua.redis.exists(key) == 0)


async def test_a_plain_run_is_leased_without_entering_the_ready_set(lua: Lua) -> None:
    # Given a waiting node and an empty queue
    await register(lua)
    # When a run without a concurrency key, of a job without limits, is created
    run_id = await lua.create_one()
    # Then it is leased directly: no ready set or group was ever written for the
    # queue (entering and leaving them would also have turned the groups' counter)
    assert (await lua.run(run_id))["status"] == "executing"
    assert await lua.redis.exists(lua.part.ready("default"), lua.part.groups("default")) == 0
    assert await lua.redis.exists(f"{lua.part.prefix}grr:default") == 0
    assert await lua.redis.smembers(lua.part.queues) == {b"default"}  # the queue is still known
    # (a job without limits has no lease set to keep: the leased index is the lease)
    assert await lua.redis.zscore(lua.part.leased, run_id) is not None
    assert await lua.redis.exists(lua.part.job_leases("work")) == 0
    [c] = await pushed(lua)
    assert c.run_id == run_id and c.attempt == 1


async def test_keyed_and_limited_runs_are_handed_off_through_the_claim_rules(lua: Lua) -> None:
    # Given job "work" limited to 1 at once, and a node waiting with room for 5
    await lua.redis.hset(lua.part.jobs, "work", "1,")
    await register(lua, want=5)
    # When two runs of it and one keyed run of another job are created in one call
    keyed = lua.spec("keyed", concurrency_key="k1")
    ids = [i for i, _ in await lua.create(lua.spec(input=1), lua.spec(input=2), keyed)]
    # Then the node is handed one "work" run (its limit) and the keyed run; the other waits
    statuses = [(await lua.run(i))["status"] for i in ids]
    assert sorted(statuses[:2]) == ["executing", "queued"] and statuses[2] == "queued"
    assert {c.run_id for c in await pushed(lua)} == {ids[statuses.index("executing")]}
    assert await lua.redis.scard(lua.part.job_leases("work")) == 1


async def test_a_node_waiting_on_two_queues_gets_no_more_than_its_room(lua: Lua) -> None:
    # Given a node waiting on two queues with room for one run
    await register(lua, want=1, queues=("default", "q2"))
    # When a run is created in each queue in one call
    ids = [i for i, _ in await lua.create(lua.spec(), lua.spec(queue="q2"))]
    # Then exactly one of them is leased to it
    statuses = sorted([(await lua.run(i))["status"] for i in ids])
    assert statuses == ["executing", "queued"]
    assert len(await pushed(lua)) == 1


async def test_runs_waiting_in_the_queue_are_not_overtaken_by_direct_leases(lua: Lua) -> None:
    # Given a queued run of a job the waiting node does not serve
    other = await lua.create_one("other")
    await register(lua, want=5)
    # When a run of a served job is created
    run_id = await lua.create_one()
    # Then it went through the ready set and the claim rules (which skip the
    # unserved run) and was handed off; the other run still waits
    assert (await lua.run(run_id))["status"] == "executing"
    assert (await lua.run(other))["status"] == "queued"
    assert [c.run_id for c in await pushed(lua)] == [run_id]


async def test_a_run_of_a_version_the_node_does_not_serve_waits(lua: Lua) -> None:
    # Given a node serving job "work" in version v1 only
    await register(lua, jobs=("work@v1",))
    # When runs of version v2 and v1 are created
    v2 = await lua.create_one(version="v2")
    v1 = await lua.create_one(version="v1")
    # Then only the v1 run is handed to it
    assert (await lua.run(v2))["status"] == "queued"
    assert (await lua.run(v1))["status"] == "executing"


async def test_a_run_its_node_never_took_is_released_uncharged_when_the_lease_expires(lua: Lua) -> None:
    # Given a run handed to a waiting node that died before popping it
    await register(lua)
    run_id = await lua.create_one()
    # When its lease expires and the reaper runs
    await lua.redis.zadd(lua.part.leased, {run_id: 0})
    await lua.scripts.reap(lua.part)
    # Then it is queued again without charging the attempt, the attempt recorded as released
    run = await lua.run(run_id)
    assert run["status"] == "queued" and run["charged"] == "0"
    assert [a["status"] for a in orjson.loads(run["attempts"])] == ["released"]


async def test_a_run_its_node_took_is_charged_when_the_lease_expires(lua: Lua) -> None:
    # Given a run handed to a waiting node that popped it and then died
    await register(lua)
    run_id = await lua.create_one()
    assert [c.run_id for c in await pushed(lua)] == [run_id]
    # When its lease expires and the reaper runs
    await lua.redis.zadd(lua.part.leased, {run_id: 0})
    await lua.scripts.reap(lua.part)
    # Then the attempt counts as crashed, as for any lease
    run = await lua.run(run_id)
    assert run["status"] == "delayed" and run["charged"] == "1"
    assert [a["status"] for a in orjson.loads(run["attempts"])] == ["crashed"]


async def test_a_node_claiming_in_pieces_registers_only_when_a_piece_comes_back_short(lua: Lua) -> None:
    # Given five queued runs and a node with ten free slots that claims three at a time
    for n in range(5):
        await lua.create_one(input=n)
    # When its first piece comes back full
    first, _ = await lua.scripts.claim(lua.part, "node-a", 10, ["default"], ["work"], 0,
                                       register_ms=REGISTER_MS, piece=3)
    # Then it leased three and is not registered (more runs are likely queued)
    assert len(first) == 3
    assert await lua.redis.exists(lua.part.waiter("node-a")) == 0
    # When its next piece comes back short (the queue ran dry)
    second, _ = await lua.scripts.claim(lua.part, "node-a", 7, ["default"], ["work"], 0,
                                        register_ms=REGISTER_MS, piece=3)
    # Then it leased the last two and registered for the rest of its room, not of the piece
    assert len(second) == 2
    registration = orjson.loads(await lua.redis.get(lua.part.waiter("node-a")))
    assert registration[0] == 5
    # And a new run is handed to it at once
    run_id = await lua.create_one(input=9)
    assert [c.run_id for c in await pushed(lua)] == [run_id]


async def test_a_claim_that_keeps_the_registration_neither_registers_nor_removes_it(lua: Lua) -> None:
    # Given a node that was handed 2 runs (not received yet), 4 queued runs, and the node
    # registered as waiting for another queue
    await register(lua, want=2)
    handed = [i for i, _ in await lua.create(lua.spec(), lua.spec())]
    queued = [i for i, _ in await lua.create(*(lua.spec() for _ in range(4)))]
    assert [(await lua.run(i))["status"] for i in handed + queued] == ["executing"] * 2 + ["queued"] * 4
    assert await register(lua, want=3, queues=("elsewhere",)) == []
    before = await lua.redis.get(lua.part.waiter("node-a"))
    assert before is not None

    async def keeping(want: int, piece: int) -> list[Claimed]:
        claimed, _ = await lua.scripts.claim(lua.part, "node-a", want, ["default"], ["work"], 0, received=0,
                                             register_ms=REGISTER_MS, piece=piece, keep_registration=True)
        return claimed

    # When claims sent as a pair (keep_registration) come back full and then short
    full = await keeping(want=4, piece=2)  # room 4, 2 in transit: 2
    short = await keeping(want=10, piece=5)  # room 8: the 2 queued runs left
    # Then the runs in transit still counted against their room, and the registration is as it was
    assert len(full) == 2 and len(short) == 2
    assert {c.run_id for c in full + short} == set(queued)
    assert await lua.redis.get(lua.part.waiter("node-a")) == before


#: served lists whose names overlap the job "work" (a prefix, a suffix, a longer name) around its
#: own entry, and what each accepts of "work" in version v3 and unversioned
SERVED_LISTS = [
    (("network", "work2", "workers@v3"), False, False),  # only other jobs, one of them in v3
    (("network", "work", "work2"), True, True),
    (("work2@v3", "work@v1|v3", "worked"), True, True),  # versioned: v3, and unversioned runs
    (("work@v1|v2", "work3@v3"), False, True),
    (("a", "b", "work@*"), True, True),
]


@pytest.mark.parametrize(("jobs", "takes_v3", "takes_plain"), SERVED_LISTS)
async def test_a_node_is_handed_exactly_the_jobs_and_versions_it_serves(
        lua: Lua, jobs: tuple[str, ...], takes_v3: bool, takes_plain: bool) -> None:
    # Given a waiting node whose served list names jobs that overlap "work" by name
    for version, taken in (("v3", takes_v3), ("", takes_plain)):
        await lua.redis.delete(lua.part.ready("default"), lua.part.groups("default"))  # (the last one's run)
        await register(lua, jobs=jobs)
        # When a run of "work" in that version is created
        run_id = await lua.create_one(version=version)
        # Then it is handed to the node exactly when its list serves that job and version
        assert (await lua.run(run_id))["status"] == ("executing" if taken else "queued"), version


@pytest.mark.parametrize(("jobs", "takes_v3", "takes_plain"), SERVED_LISTS)
async def test_a_claim_takes_exactly_the_jobs_and_versions_it_serves(
        lua: Lua, jobs: tuple[str, ...], takes_v3: bool, takes_plain: bool) -> None:
    # Given queued runs of "work" in version v3 and unversioned
    v3 = await lua.create_one(version="v3")
    plain = await lua.create_one()
    # When a node claims with a served list that names jobs overlapping "work"
    claimed = {c.run_id for c in await lua.claim(jobs=jobs)}
    # Then it leases exactly the runs of the job and versions the list serves
    assert claimed == {run_id for run_id, taken in ((v3, takes_v3), (plain, takes_plain)) if taken}


async def entries(lua: Lua, node: str = "node-a") -> list[list[object]]:
    """The node's hand-off entries, popped, each the JSON array it was pushed as."""
    out: list[list[object]] = []
    while (raw := await lua.redis.lpop(lua.part.handoff(node))) is not None:
        out.append(orjson.loads(raw))
    return out


async def test_a_registration_counts_its_room_down_with_each_push_and_goes_with_the_last(lua: Lua) -> None:
    # Given a node registered as waiting with room for 2 runs
    reply = await lua.scripts.claim_detailed(lua.part, "node-a", 2, ["default"], ["work"], 0,
                                             register_ms=REGISTER_MS)
    assert reply.runs == [] and reply.registered_room == 2
    # When a run is created, then another
    first = await lua.create_one()
    [entry] = await entries(lua)
    # Then each is pushed with the room left, and the registration stays while it has room
    assert entry[2] == 1 and await lua.redis.exists(lua.part.waiter("node-a")) == 1
    second = await lua.create_one()
    [entry] = await entries(lua)
    assert entry[2] == 0 and await lua.redis.exists(lua.part.waiter("node-a")) == 0
    assert {(await lua.run(r))["status"] for r in (first, second)} == {"executing"}
    # And a third run, with no room left, waits in its queue
    third = await lua.create_one()
    assert (await lua.run(third))["status"] == "queued" and await entries(lua) == []


async def test_a_registration_of_an_earlier_version_is_used_up_by_one_push(lua: Lua) -> None:
    # Given a node registered as a node of an earlier version does: no handed count at its end
    await register(lua, want=5)
    key = lua.part.waiter("node-a")
    old = orjson.loads(await lua.redis.get(key))[:9]
    await lua.redis.set(key, orjson.dumps(old), px=REGISTER_MS)
    # When a run is created
    run_id = await lua.create_one()
    # Then it is pushed as such a node reads it (time and runs, no room) and the registration is used up
    [entry] = await entries(lua)
    assert len(entry) == 2 and [c.run_id for c in handed_off_runs(orjson.dumps(entry), lua.part.index)] == [run_id]
    assert await lua.redis.exists(key) == 0
    assert (await lua.run(await lua.create_one()))["status"] == "queued"


async def test_a_claim_says_what_it_registered_for(lua: Lua) -> None:
    # Given an idle node: its claim registers for its room
    reply = await lua.scripts.claim_detailed(lua.part, "node-a", 5, ["default"], ["work"], 0,
                                             register_ms=REGISTER_MS)
    assert reply.registered_room == 5
    # When a claim leaves the registration as it is, or takes no hand-offs, or has no room
    kept = await lua.scripts.claim_detailed(lua.part, "node-a", 5, ["default"], ["work"], 0,
                                            register_ms=REGISTER_MS, keep_registration=True)
    unregistered = await lua.scripts.claim_detailed(lua.part, "node-a", 5, ["default"], ["work"], 0)
    # Then it says so (-1 left as it was, 0 none)
    assert (kept.registered_room, unregistered.registered_room) == (-1, -1)
    # And a claim whose room the runs handed to it since fill says 0, and removes the registration
    await lua.create_one()
    await lua.create_one()
    full = await lua.scripts.claim_detailed(lua.part, "node-a", 2, ["default"], ["work"], 0,
                                            register_ms=REGISTER_MS)
    assert full.runs == [] and full.registered_room == 0
    assert await lua.redis.exists(lua.part.waiter("node-a")) == 0


async def test_runs_leased_to_the_calling_node_count_its_registration_down_too(lua: Lua) -> None:
    # Given a node registered as waiting with room for 2 runs, whose own intake creates runs
    await register(lua, want=2)
    # When it creates a run, then another
    first = await lua.scripts.create_leasing(lua.part, [lua.spec("work").script_args()], "node-a")
    # Then each comes back in the reply with the room left, and no hand-off list is written
    assert len(first.claimed) == 1 and first.registration_room == 1
    assert await lua.redis.exists(lua.part.waiter("node-a")) == 1
    second = await lua.scripts.create_leasing(lua.part, [lua.spec("work").script_args()], "node-a")
    assert len(second.claimed) == 1 and second.registration_room == 0
    assert await lua.redis.exists(lua.part.waiter("node-a")) == 0
    assert await entries(lua) == []
    # And a registration of an earlier version is used up by its first run (no room: None)
    await register(lua, want=5, received=2)
    key = lua.part.waiter("node-a")
    await lua.redis.set(key, orjson.dumps(orjson.loads(await lua.redis.get(key))[:9]), px=REGISTER_MS)
    third = await lua.scripts.create_leasing(lua.part, [lua.spec("work").script_args()], "node-a")
    assert len(third.claimed) == 1 and third.registration_room is None
    assert await lua.redis.exists(key) == 0


async def test_a_handed_off_run_stores_its_token_for_an_older_node_and_loses_it_with_the_lease(lua: Lua) -> None:
    # Given a waiting node, which may be of an earlier version (its scripts fence its writes by the
    # token stored on the record, not by lease_node and attempt)
    assert await register(lua) == []
    # When new runs are handed to it: one leased by the create itself, one (with a concurrency key)
    # through the ready set (hand_off)
    direct = await lua.create_one()
    keyed = await lua.create_one(concurrency_key="k")
    c, k = await pushed(lua)
    # Then each record stores the token it was handed
    assert (c.run_id, k.run_id) == (direct, keyed)
    assert (await lua.run(direct))["lease_token"] == c.token == "node-a/1"
    assert (await lua.run(keyed))["lease_token"] == k.token == "node-a/1"
    # When its attempt fails and the run, queued again, is claimed by another node (runs_claim)
    assert await lua.finish(c, "failed", error_json='{"message":"x","type":"E"}') == "delayed"
    await lua.redis.zadd(lua.part.delayed, {direct: 0})
    await lua.scripts.promote(lua.part)
    [again] = await lua.claim(1, node="node-b")
    # Then the stored token went with the first lease: an older node's zombie write under it is
    # refused (its check, the stored token and the status, no longer matches), as is this version's
    run = await lua.run(direct)
    assert again.run_id == direct and run["status"] == "executing" and "lease_token" not in run
    assert await lua.finish(c, "completed") == -1
    assert await lua.finish(again, "completed") == "completed"
