"""Hand-off end to end: an idle node is given new runs by the call that creates them."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from actors.base import Mailbox
from actors.delivery import Delivery
from actors.receiver import Receiver
from runtime import Baton, RunContext, Settings
from runtime.fencing import lease_margin_s
from runtime.messages import LeaseGranted
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, kill_process, running_node, spawn_worker, stop_process


def echo_app(make_app: Any, node_id: str, **settings: Any) -> Baton:
    """An app whose one job returns its input, for a node named ``node_id``."""
    app: Baton = make_app(node_id=node_id, **settings)

    @app.job()
    async def echo(ctx: RunContext, payload: Any) -> Any:
        return payload

    return app


class AtOnce:
    """How many handlers run at once, and the most that ever did."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0


def counted_echo(app: Baton, delay_s: float) -> AtOnce:
    """Define job ``echo`` on ``app``: it returns its input after ``delay_s``, counted while it runs."""
    at_once = AtOnce()

    @app.job()
    async def echo(ctx: RunContext, payload: Any) -> Any:
        at_once.running += 1
        at_once.peak = max(at_once.peak, at_once.running)
        try:
            await asyncio.sleep(delay_s)
        finally:
            at_once.running -= 1
        return payload

    return at_once


async def test_an_idle_node_is_handed_new_runs(make_app: Any, redis: Any) -> None:
    # Given an idle node that takes hand-offs
    app = echo_app(make_app, "idle-node")
    p = app.keys.partitions[0]
    async with running_node(app) as node:
        await eventually(lambda: redis.exists(p.waiter("idle-node")), 10)
        # When runs are triggered one at a time
        ids = [await app.trigger("echo", {"n": n}) for n in range(5)]
        runs = [await app.wait_for(run_id, 10) for run_id in ids]
        handed = int(await redis.hget(p.handed, "idle-node") or 0)
        counted = node.metrics.registry.get_sample_value("baton_leases_handed_off_total")
    # Then they completed on that node, and were handed to it rather than claimed
    assert [(r.status, r.output) for r in runs] == [("completed", {"n": n}) for n in range(5)]
    assert {r.attempts[0].worker_id for r in runs} == {"idle-node"}
    assert handed >= 1 and counted == handed


async def test_with_handoff_off_the_node_claims_on_wake_ups(make_app: Any, redis: Any) -> None:
    # Given a node with hand-offs turned off
    app = echo_app(make_app, "claims-only", handoff=False)
    p = app.keys.partitions[0]
    async with running_node(app) as node:
        # When a run is triggered
        run = await app.wait_for(await app.trigger("echo", 1), 10)
        # Then it completes, without any registration or hand-off
        assert run.status == "completed"
        assert node.receiver is None
        assert await redis.exists(p.waiter("claims-only"), p.handoff("claims-only")) == 0
        assert await redis.hget(p.handed, "claims-only") is None


async def test_a_draining_node_stops_waiting(make_app: Any, redis: Any) -> None:
    # Given an idle node registered as waiting
    app = echo_app(make_app, "leaving")
    p = app.keys.partitions[0]
    async with running_node(app):
        await eventually(lambda: redis.exists(p.waiter("leaving")), 10)
    # When it has drained and stopped, then it is no longer registered
    assert await redis.exists(p.waiter("leaving")) == 0
    # And a run created afterwards waits in its queue for the next node
    run_id = await app.trigger("echo", 1)
    run = await app.get_run(run_id)
    assert run is not None and run.status == "queued"


async def test_a_run_handed_to_a_node_killed_while_waiting_is_reclaimed(
    settings: Settings, redis: Any, tmp_path: Path,
) -> None:
    # Given worker A waiting for work (a long idle poll keeps its registration alive)
    app = producer(settings)
    p = app.keys.partitions[0]
    a = spawn_worker("tests.apps:app", worker_env(settings, "A", BATON_IDLE_POLL_MS=5000), tmp_path / "a.log")
    b = None
    try:
        await eventually(lambda: redis.exists(p.waiter("A")), 20)
        # When A is killed with SIGKILL and a run is created
        kill_process(a)
        run_id = await app.trigger("noop", {"x": 1})
        # Then the run was leased to A (handed off, never received)
        record = await app.get_run(run_id)
        assert record is not None and (record.status, record.lease_node) == ("executing", "A")
        # And once A's lease expires, worker B runs it
        b = spawn_worker("tests.apps:app", worker_env(settings, "B"), tmp_path / "b.log")
        run = await app.wait_for(run_id, 30)
    finally:
        if b is not None:
            assert stop_process(b) == 0
        stop_process(a)
    assert run.status == "completed" and run.output == {"x": 1}
    # and A's lease, never taken from its hand-off list, was released without charging an attempt
    assert [(x.status, x.worker_id) for x in run.attempts] == [("released", "A"), ("completed", "B")]
    assert run.attempts_charged == 1
    await app.close()


async def test_a_restarted_node_clears_what_its_previous_process_left(make_app: Any, redis: Any) -> None:
    # Given hand-off state left by an earlier process with the same node id:
    # an unreadable entry in its list, runs counted as in transit, a registration
    app = echo_app(make_app, "reborn")
    p = app.keys.partitions[0]
    await redis.rpush(p.handoff("reborn"), b"left by the previous process")
    await redis.hset(p.handed, "reborn", 5)
    await redis.set(p.waiter("reborn"), b"[1,64,\"default\",\"echo\",2000,600000,1000]")
    async with running_node(app) as node:
        # When the node starts and runs work
        run = await app.wait_for(await app.trigger("echo", 3), 10)
        restarts = node.metrics.registry.get_sample_value("baton_actor_restarts_total", {"actor": "receiver"})
        in_transit = await redis.hget(p.handed, "reborn")
    # Then the old state was cleared (or the entry skipped, when the receiver popped it first) before
    # the node's first claim there, and the count of runs in transit started again from zero
    assert run.status == "completed" and run.output == 3
    assert not restarts
    assert in_transit in (None, b"0", b"1")


async def test_an_unreadable_hand_off_entry_is_skipped(make_app: Any, redis: Any) -> None:
    # Given a running node waiting for work
    app = echo_app(make_app, "sturdy")
    p = app.keys.partitions[0]
    async with running_node(app) as node:
        await eventually(lambda: redis.exists(p.waiter("sturdy")), 10)
        # When something other than runs_create pushes garbage to its hand-off list
        await redis.rpush(p.handoff("sturdy"), b"not a hand-off")
        await eventually(lambda: _absent(redis, p.handoff("sturdy")), 10)
        # Then the node keeps taking work, without restarting its receiver
        run = await app.wait_for(await app.trigger("echo", 4), 10)
        restarts = node.metrics.registry.get_sample_value("baton_actor_restarts_total", {"actor": "receiver"})
    assert run.status == "completed" and run.output == 4
    assert not restarts


async def _absent(redis: Any, key: str) -> bool:
    return bool(await redis.exists(key) == 0)


async def test_a_renewal_that_races_a_finished_run_is_not_a_lost_lease(make_app: Any) -> None:
    # Given a node whose run has completed
    app = echo_app(make_app, "quick")
    async with running_node(app) as node:
        run_id = await app.trigger("echo", 5)
        assert (await app.wait_for(run_id, 10)).status == "completed"
        # When a renewal that started before the finish still lists its lease
        # (the leaser learns of the finish a moment later) and finds it gone
        node.leaser.held[run_id] = ("quick/1", app.keys.partition_of_run(run_id).index)
        await node.leaser.renew()
        await eventually(lambda: node.executor.inbox.empty(), 5)
        await app.wait_for(await app.trigger("echo", 6), 10)  # the executor has moved past the message
        lost = node.metrics.registry.get_sample_value("baton_leases_lost_total", {"stage": "renew"})
    # Then nothing is counted as lost: the run was simply finished first
    assert not lost


async def test_waiting_in_many_partitions_never_promises_more_runs_than_slots(make_app: Any, redis: Any) -> None:
    # Given an idle node with 20 slots over 6 partitions, whose handlers count how many run at once
    slots = 20
    app: Baton = make_app(node_id="wide", concurrency=slots, partitions=6)
    at_once = counted_echo(app, 0.05)

    async with running_node(app) as node:
        # Then its registrations, all partitions together, ask for no more runs than it has slots
        async def registered() -> list[int] | None:
            raw = [await redis.get(p.waiter("wide")) for p in app.keys.partitions]
            return [orjson.loads(r)[0] for r in raw] if all(raw) else None

        wants = await eventually(registered, 10)
        assert sum(wants) <= slots and min(wants) >= 1, wants
        # When runs land in every partition at once (6x its slots), then all complete and the
        # hand-off receiver never fails (it overflowed the executor's mailbox and crashed before)
        ids = await app.trigger_batch([{"job": "echo", "input": n} for n in range(6 * slots)])
        runs = [await app.wait_for(run_id, 30) for run_id in ids]
        restarts = node.metrics.registry.get_sample_value("baton_actor_restarts_total", {"actor": "receiver"})
    assert [r.output for r in runs] == list(range(6 * slots))
    # (claims fill the free slots and registrations promise at most the slots again, while runs
    # handed off in one partition are in transit to a claim in another: at most twice the slots)
    assert at_once.peak <= 2 * slots, at_once.peak
    assert not restarts


async def test_a_backlog_is_claimed_in_pieces_at_once_within_the_slots_and_then_the_node_waits(
    make_app: Any, redis: Any,
) -> None:
    # Given a node with 8 slots (claims of 2) whose handlers count how many run at once,
    # and whose claims are recorded
    slots = 8
    app: Baton = make_app(node_id="busy", concurrency=slots)
    p = app.keys.partitions[0]
    at_once = counted_echo(app, 0.002)

    kept: list[bool] = []
    claim = app.scripts.claim_detailed  # (Scripts.claim goes through it too)

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        kept.append(bool(kwargs.get("keep_registration")))
        return await claim(*args, **kwargs)

    app.scripts.claim_detailed = recorded  # type: ignore[method-assign]
    # (queued before the node starts: a backlog from its first claim)
    ids = await app.trigger_batch([{"job": "echo", "input": n} for n in range(300)])
    async with running_node(app):
        runs = [await app.wait_for(run_id, 30) for run_id in ids]
        # Then every run completed, never more at once than the slots
        assert [r.output for r in runs] == list(range(300))
        assert at_once.peak <= slots, at_once.peak
        # And the backlog was claimed in pieces at once (which leave the registration alone) when slots were
        # free for two or more pieces
        assert any(kept) and not all(kept), (sum(kept), len(kept))
        # And once it is gone the node registers as waiting, and a new run is handed to it
        await eventually(lambda: redis.exists(p.waiter("busy")), 10)
        run = await app.wait_for(await app.trigger("echo", "new"), 10)
        assert run.status == "completed"
        assert int(await redis.hget(p.handed, "busy") or 0) >= 1


async def test_a_run_that_waited_in_the_handoff_list_is_judged_by_its_grant_time(make_app: Any, redis: Any) -> None:
    # Given a node registered as waiting and handed a run while its receiver was not popping (the
    # node was busy or the actor restarting: the chaos suite's Redis restart found this) ...
    ttl_ms = 1000
    app = echo_app(make_app, "late-node", lease_ttl_ms=ttl_ms, renew_interval_ms=400)
    p = app.keys.partitions[0]
    claimed, _ = await app.scripts.claim(p, "late-node", 10, ["default"], ["echo"], 0, register_ms=60_000)
    assert claimed == []
    run_id = await app.trigger("echo", 1)
    (entry,) = await redis.lrange(p.handoff("late-node"), 0, -1)
    granted_ms = int(orjson.loads(entry)[0])  # (the grant time, as text)
    # ... and left there until its lease ran out by the Redis clock
    await eventually(lambda: _past(redis, granted_ms + ttl_ms), 10)
    # When the receiver takes it
    to_executor: Mailbox[LeaseGranted] = Mailbox()
    receiver = Receiver(app, Delivery(to_executor, Mailbox(), Mailbox()))
    task = asyncio.create_task(receiver.live())
    try:
        got = await eventually(lambda: None if to_executor.empty() else to_executor.get_nowait(), 10)
        taken = time.monotonic()
    finally:
        receiver.stop()
        await asyncio.wait_for(task, 10)
    # Then the run's lease is known to be over: nothing fenced starts without asking Redis first
    # (a receiver that dated the lease from its own pop believed it had the whole TTL left)
    assert got.claimed.run_id == run_id
    assert got.deadline <= taken
    assert got.deadline < taken + lease_margin_s(ttl_ms)  # (what needs_confirmation() checks)


async def _redis_ms(redis: Any) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _past(redis: Any, ms: int) -> bool:
    return await _redis_ms(redis) > ms


async def test_a_backlog_in_many_partitions_is_claimed_while_registrations_hold_the_slots(make_app: Any) -> None:
    # Given a node with 20 slots over 6 partitions (claims of 5) and a backlog in each partition,
    # with more runs arriving while it works: some partitions' claims fill their pieces while the
    # node's registrations in others have promised every free slot
    slots = 20
    app: Baton = make_app(node_id="wide", concurrency=slots, partitions=6)
    counted_echo(app, 0.001)
    ids = await app.trigger_batch([{"job": "echo", "input": n} for n in range(1200)])
    async with running_node(app) as node:
        for k in range(10):  # (batches that land while the backlog drains and nodes register)
            ids += await app.trigger_batch([{"job": "echo", "input": 1200 + 60 * k + n} for n in range(60)])
            await asyncio.sleep(0.05)
        runs = [await app.wait_for(run_id, 60) for run_id in ids]
        restarts = node.metrics.registry.get_sample_value("baton_actor_restarts_total", {"actor": "fetcher"})
    # Then every run completed and the fetcher never crashed (a claim with no unpromised slot
    # divided by a piece of 0 and crash-looped it until the node gave up)
    assert [r.output for r in runs] == list(range(1800))
    assert not restarts


async def test_an_entry_popped_again_does_not_start_the_same_attempt_twice(make_app: Any, redis: Any) -> None:
    # Given a run handed to a waiting node whose receiver took it ...
    app = echo_app(make_app, "twice-node")
    p = app.keys.partitions[0]
    claimed, _ = await app.scripts.claim(p, "twice-node", 10, ["default"], ["echo"], 0, register_ms=60_000)
    assert claimed == []
    run_id = await app.trigger("echo", 1)
    (entry,) = await redis.lrange(p.handoff("twice-node"), 0, -1)
    to_executor: Mailbox[LeaseGranted] = Mailbox()
    to_leaser: Mailbox[Any] = Mailbox()
    to_fetcher: Mailbox[Any] = Mailbox()
    receiver = Receiver(app, Delivery(to_executor, to_leaser, to_fetcher))
    task = asyncio.create_task(receiver.live())
    try:
        got = await eventually(lambda: None if to_executor.empty() else to_executor.get_nowait(), 10)
        assert got.claimed.run_id == run_id
        # When the receiver restarts (as after a lost connection) and the same entry is in the list
        # again (a master that died before its replica saw the pop: the promoted replica lists it)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        receiver.start_afresh()
        task = asyncio.create_task(receiver.live())
        await redis.rpush(p.handoff("twice-node"), entry)
        await eventually(lambda: _empty(redis, p.handoff("twice-node")), 10)
        await asyncio.sleep(0.1)  # (a delivery would be queued by now: the pop and the delivery are one step)
    finally:
        receiver.stop()
        await asyncio.wait_for(task, 10)
    # Then it was delivered once: one start, one lease to renew, one slot taken
    assert to_executor.empty()
    assert to_leaser.qsize() == 1 and to_fetcher.qsize() == 1


async def test_a_run_created_again_under_its_id_is_delivered_again(make_app: Any, redis: Any) -> None:
    # Given a hand-off the receiver delivered
    app = echo_app(make_app, "again-node")
    p = app.keys.partitions[0]
    await app.scripts.claim(p, "again-node", 10, ["default"], ["echo"], 0, register_ms=60_000)
    await app.trigger("echo", 1, id="fixed-id")
    (entry,) = await redis.lrange(p.handoff("again-node"), 0, -1)
    to_executor: Mailbox[LeaseGranted] = Mailbox()
    receiver = Receiver(app, Delivery(to_executor, Mailbox(), Mailbox()))
    task = asyncio.create_task(receiver.live())
    try:
        await eventually(lambda: None if to_executor.empty() else to_executor.get_nowait(), 10)
        # When the run is deleted and created again under its id, and handed to the same node with
        # the same lease token (attempt 1) at a later grant time
        granted, runs, *_room = orjson.loads(entry)
        await redis.rpush(p.handoff("again-node"), orjson.dumps([str(int(granted) + 1), runs]))
        # Then it is delivered: it is not the entry delivered before
        got = await eventually(lambda: None if to_executor.empty() else to_executor.get_nowait(), 10)
        assert got.claimed.run_id == "fixed-id" and got.claimed.claimed_at_ms == int(granted) + 1
    finally:
        receiver.stop()
        await asyncio.wait_for(task, 10)


async def _empty(redis: Any, key: str) -> bool:
    return int(await redis.llen(key)) == 0


def counted_calls(app: Baton) -> dict[str, int]:
    """Script calls the app makes from now on, by script name."""
    calls: dict[str, int] = {}
    call = app.scripts._call

    async def counted(name: str, keys: Any, args: Any) -> Any:
        calls[name] = calls.get(name, 0) + 1
        return await call(name, keys, args)

    app.scripts._call = counted  # type: ignore[method-assign]
    return calls


async def by_trigger(app: Baton, redis: Any, n: int) -> str:
    """Submit run ``n`` with app.trigger; its id."""
    return await app.trigger("echo", n)


async def by_stream(app: Baton, redis: Any, n: int) -> str:
    """Submit run ``n`` as a stream entry (the node's own intake creates it); its id."""
    return (await redis.xadd(app.keys.submit_stream, {"job": "echo", "input": str(n)})).decode()


@pytest.mark.parametrize("submit", [by_trigger, by_stream])
async def test_a_waiting_node_does_not_register_again_after_each_run_it_is_given(
    make_app: Any, redis: Any, submit: Any,
) -> None:
    # Given an idle node (registered as waiting) whose script calls are counted
    app = echo_app(make_app, "steady")
    p = app.keys.partitions[0]
    calls = counted_calls(app)
    async with running_node(app):
        await eventually(lambda: redis.exists(p.waiter("steady")), 10)
        claims_before = calls.get("runs_claim", 0)
        # When 20 runs are submitted one at a time (with app.trigger: pushed to it; through the
        # stream: leased to it by its own intake), each once the last one completed
        for n in range(20):
            assert (await app.wait_for(await submit(app, redis, n), 10)).output == n
        # Then each was leased to it, and it did not claim (register again) after each: its
        # registration counted its room down instead (only idle polls, wakes and a room fallen under
        # half the free slots claim)
        assert int(await redis.hget(p.handed, "steady") or 0) >= 20
        assert calls.get("runs_claim", 0) - claims_before < 10, calls
        assert await redis.exists(p.waiter("steady")) == 1


async def test_a_node_fed_runs_back_to_back_is_handed_every_one(make_app: Any, redis: Any) -> None:
    # Given an idle node of 40 slots (registered as waiting)
    app = echo_app(make_app, "fed", concurrency=40)
    p = app.keys.partitions[0]
    async with running_node(app):
        await eventually(lambda: redis.exists(p.waiter("fed")), 10)
        handed_before = int(await redis.hget(p.handed, "fed") or 0)
        # When runs are triggered back to back, six times its slots: each trigger awaited and the next
        # sent at once (a web application triggering a run per request)
        ids = [await app.trigger("echo", n) for n in range(240)]
        runs = [await app.wait_for(run_id, 10) for run_id in ids]
        handed = int(await redis.hget(p.handed, "fed") or 0) - handed_before
    # Then every one was handed to it: its registration was renewed while it still had room. (Used
    # up, it leaves the next runs to the ready set, to wait there for a claim: under a steady stream
    # of triggers the node then kept alternating between the two, and runs waited milliseconds)
    assert [r.output for r in runs] == list(range(240))
    assert handed == 240


async def _pops(redis: Any) -> dict[str, int]:
    """Calls of each blocking list pop the server has run so far."""
    stats = await redis.info("commandstats")
    return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("blmpop", "blpop")}


async def _received(receiver: Receiver, to_executor: Mailbox[LeaseGranted], n: int) -> list[LeaseGranted]:
    """Run ``receiver`` until ``n`` runs reached the executor's mailbox; those runs."""
    task = asyncio.create_task(receiver.live())
    got: list[LeaseGranted] = []
    try:
        async def all_in() -> bool:
            while not to_executor.empty():
                got.append(to_executor.get_nowait())
            return len(got) >= n

        await eventually(all_in, 10)
    finally:
        receiver.stop()
        await asyncio.wait_for(task, 10)
    return got


async def test_every_entry_waiting_in_the_handoff_list_is_taken_in_one_pop(make_app: Any, redis: Any) -> None:
    # Given a node registered as waiting and handed runs one at a time, each a push of its own,
    # while its receiver was not popping (runs submitted faster than one pop per run: one entry
    # per pop made the list grow, and each run wait tens of ms, behind the others)
    app = echo_app(make_app, "many-node")
    p = app.keys.partitions[0]
    claimed, _ = await app.scripts.claim(p, "many-node", 10, ["default"], ["echo"], 0, register_ms=60_000)
    assert claimed == []
    ids = []
    for n in range(8):
        ids.append(await app.trigger("echo", n))
        await asyncio.sleep(0.002)  # (grant times a few ms apart)
    assert await redis.llen(p.handoff("many-node")) == 8
    # When the receiver takes them
    before = await _pops(redis)
    to_executor: Mailbox[LeaseGranted] = Mailbox()
    to_fetcher: Mailbox[Any] = Mailbox()
    got = await _received(Receiver(app, Delivery(to_executor, Mailbox(), to_fetcher)), to_executor, 8)
    after = await _pops(redis)
    # Then one pop took all of them, in the order they were pushed, and the fetcher heard of them at once
    assert [g.claimed.run_id for g in got] == ids
    assert 1 <= after["blmpop"] - before["blmpop"] <= 2  # (the one that took them, perhaps one more begun)
    assert after["blpop"] == before["blpop"]
    handed = to_fetcher.get_nowait()
    assert [c.run_id for c in handed.runs] == ids and handed.registration_room == 2
    # and each lease is dated by its own push: the grant times stand apart as the pushes did
    # (the first push's times for all would date later leases too early, and their runs' clock ahead)
    for g in got:
        assert g.granted_at is not None
        assert abs((g.granted_at - got[0].granted_at) * 1000
                   - (g.claimed.claimed_at_ms - got[0].claimed.claimed_at_ms)) < 1.0
    assert got[-1].claimed.claimed_at_ms - got[0].claimed.claimed_at_ms >= 10
    assert got[-1].deadline > got[0].deadline


async def test_a_server_that_refuses_blmpop_is_popped_one_entry_at_a_time(
    make_app: Any, redis: Any, redis_server: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a Redis user whose ACL predates BLMPOP (as Redis 6 has no BLMPOP at all) ...
    user = f"old-acl-{uuid.uuid4().hex[:8]}"
    await redis.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-blmpop")
    try:
        url = f"redis://{user}:pw@127.0.0.1:{redis_server.port}"
        app = echo_app(make_app, "single-node", redis_url=url)
        p = app.keys.partitions[0]
        # ... and a node registered as waiting under it, handed three runs
        await app.scripts.claim(p, "single-node", 10, ["default"], ["echo"], 0, register_ms=60_000)
        ids = [await app.trigger("echo", n) for n in range(3)]
        # When its receiver takes them
        to_executor: Mailbox[LeaseGranted] = Mailbox()
        receiver = Receiver(app, Delivery(to_executor, Mailbox(), Mailbox()))
        with caplog.at_level(logging.WARNING, logger="baton"):
            got = await _received(receiver, to_executor, 3)
    finally:
        await redis.execute_command("ACL", "DELUSER", user)
    # Then it fell back to BLPOP, said so once, and delivered every run, in order
    assert [g.claimed.run_id for g in got] == ids
    assert not receiver.take_many
    assert len([r for r in caplog.records if "refuses BLMPOP" in r.getMessage()]) == 1
