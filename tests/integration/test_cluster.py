"""The engine unchanged on a 3-master Redis Cluster started by the fixture."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from actors.base import Mailbox
from actors.listener import Listener
from runtime import Baton, RunContext, Settings
from runtime.messages import DueSoon, Wake
from tests.nodes import eventually, running_node
from tests.servers import RedisClusterProcesses, free_port

pytestmark = pytest.mark.cluster


async def test_stream_end_to_end_on_cluster(redis_cluster: RedisClusterProcesses, settings: Settings) -> None:
    # Given a node on the cluster with 4 partitions (spread over the masters)
    cs = settings.with_changes(redis_url=redis_cluster.url, redis_cluster=True, partitions=4, concurrency=50)
    app = Baton(cs)
    peak = 0
    running = 0

    @app.job(max_attempts=2)
    async def square(ctx: RunContext, payload: Any) -> int:
        return int(payload) ** 2

    @app.job(max_concurrency=2)
    async def limited(ctx: RunContext, payload: Any) -> None:
        nonlocal peak, running
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    raw = RedisCluster.from_url(redis_cluster.url)
    try:
        await raw.initialize()
        # the partitions really live on different masters
        slots = {raw.keyslot(p.leased) for p in app.keys.partitions}
        owners = {raw.nodes_manager.get_node_from_slot(s).port for s in slots}
        assert len(owners) >= 2
        async with running_node(app):
            # When runs arrive through the stream, the Python client and with routing constraints
            entry_ids = []
            for i in range(300):
                entry_ids.append((await raw.xadd(app.keys.submit_stream, {"job": "square", "input": str(i)})).decode())
            # and through each partition's own stream (in its own slot), one bad entry among them
            for part in app.keys.partitions:
                for i in range(25):
                    entry = await raw.xadd(part.submit_stream, {"job": "square", "input": str(1000 + i)})
                    entry_ids.append(part.entry_ref(entry.decode()))
            await raw.xadd(app.keys.partitions[1].submit_stream, {"job": "square", "input": "{not json"})
            limited_ids = await app.trigger_batch([{"job": "limited"} for _ in range(20)])
            delayed_id = await app.trigger("square", 7, delay=0.3)
            idem = [await app.trigger("square", 3, idempotency_key="k") for _ in range(2)]
            runs = [await app.wait_for(rid, 30) for rid in [*entry_ids, *limited_ids, delayed_id, idem[0]]]

            async def nothing_pending() -> bool:
                for stream in [app.keys.submit_stream, *(part.submit_stream for part in app.keys.partitions)]:
                    if (await raw.xpending(stream, app.keys.intake_group))["pending"]:
                        return False
                return True
            await eventually(nothing_pending, 10)
            rejected = await eventually(lambda: raw.xrange(app.keys.rejected_stream), 10)
        # Then all completed, results are right, limits held and idempotency worked across partitions
        assert all(r.status == "completed" for r in runs)
        assert [r.output for r in runs[:300]] == [i * i for i in range(300)]
        assert [r.output for r in runs[300:400]] == [(1000 + i) ** 2 for _ in range(4) for i in range(25)]
        assert peak <= 2 and idem[0] == idem[1]
        assert [f[b"reason"] for _, f in rejected] == [b"bad_json"]
        assert rejected[0][1][b"entry_id"].decode().endswith(".p1")
        counts = await app.count_by_status()
        assert counts["completed"] == 300 + 100 + 20 + 1 + 1
    finally:
        await raw.aclose()
        await app.close()


async def test_lua_calls_and_stream_reads_go_straight_to_the_masters_of_their_slots(
        redis_cluster: RedisClusterProcesses, settings: Settings) -> None:
    # Given an app on the cluster with runs to claim, and the masters' command counts from zero
    cs = settings.with_changes(redis_url=redis_cluster.url, redis_cluster=True, partitions=4)
    app = Baton(cs)

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        return None

    raw = RedisCluster.from_url(redis_cluster.url)
    try:
        await raw.initialize()
        await app.register_jobs()
        # (the first calls load the libraries: a run created and claimed in every partition, so each
        # master has both, whatever ran before on the session's cluster; else a master's first
        # create here is a miss, loaded and called again: an FCALL too many)
        first = {}
        for i in range(1000):
            first.setdefault(app.keys.partition_of_run(f"warm-{i}").index, f"warm-{i}")
            if len(first) == len(app.keys.partitions):
                break
        for run_id in first.values():
            await app.trigger("noop", -1, id=run_id)
        for part in app.keys.partitions:
            await app.scripts.claim(part, "n1", 1, ["default"], ["noop"], 0)
        for node in raw.get_primaries():
            await node.execute_command("CONFIG", "RESETSTAT")
        # When runs are created and claimed in every partition (each a Redis Function call)
        ids = [await app.trigger("noop", i) for i in range(20)]
        claimed = []
        for part in app.keys.partitions:
            runs, _ = await app.scripts.claim(part, "n1", 20, ["default"], ["noop"], 0)
            claimed += [c.run_id for c in runs]
        assert sorted(claimed) == sorted(ids)
        stats = [await node.execute_command("INFO", "commandstats") for node in raw.get_primaries()]
        # Then each went as one FCALL to the master of its slot: none redirected or failed, and the
        # client never asked a server where an FCALL's keys are (COMMAND GETKEYS, a round trip a call)
        calls = {name: sum(int(s.get(f"cmdstat_{name}", {}).get("calls", 0)) for s in stats)
                 for name in ("fcall", "command|getkeys", "evalsha")}
        assert calls == {"fcall": 20 + len(app.keys.partitions), "command|getkeys": 0, "evalsha": 0}, calls
        assert all(int(s.get("cmdstat_fcall", {}).get("failed_calls", 0)) == 0 for s in stats)
        # And a node taking runs from the streams (blocking XREADGROUP on each) and a client
        # waiting for them (XREAD of their timelines) never ask either
        async with running_node(app):
            entries = [(await raw.xadd(app.keys.submit_stream, {"job": "noop", "input": str(i)})).decode()
                       for i in range(10)]
            done = [await app.wait_for(entry_id, 30) for entry_id in entries]
        assert all(r.status == "completed" for r in done)
        stats = [await node.execute_command("INFO", "commandstats") for node in raw.get_primaries()]
        assert sum(int(s.get("cmdstat_xreadgroup", {}).get("calls", 0)) for s in stats) > 0
        assert sum(int(s.get("cmdstat_command|getkeys", {}).get("calls", 0)) for s in stats) == 0
    finally:
        await raw.aclose()
        await app.close()


async def test_the_listener_subscribes_on_a_cluster(redis_cluster: RedisClusterProcesses, settings: Settings) -> None:
    # Given the listener of a node on the cluster
    app = Baton(settings.with_changes(redis_url=redis_cluster.url, redis_cluster=True, partitions=4))
    fetcher: Mailbox[Wake] = Mailbox()
    leaser: Mailbox[DueSoon] = Mailbox()
    listener = Listener(app, fetcher, Mailbox(), leaser)
    task = asyncio.create_task(listener.run())
    try:
        # When it has subscribed (its first act is a wake-up of its own) and a wake-up is published
        await eventually(lambda: not fetcher.empty() or task.done(), 10)
        assert not task.done(), task.exception()
        assert fetcher.get_nowait() == Wake("")
        await app.redis.publish(app.keys.wake_channel, "p1")
        # Then it reaches the fetcher (it connected to a cluster node by itself)
        await eventually(lambda: not fetcher.empty(), 10)
        assert fetcher.get_nowait() == Wake("p1")
        # and a notice of a run due in 250 ms reaches the leaser, not the fetcher
        due = f"due 250 {app.keys.partitions[2].prefix}"
        await app.redis.publish(app.keys.wake_channel, due)
        await eventually(lambda: not leaser.empty(), 10)
        assert leaser.get_nowait() == DueSoon(250, app.keys.partitions[2].prefix) and fetcher.empty()
    finally:
        listener.stopping.set()
        await asyncio.wait_for(task, 10)
        await app.close()


async def test_dependencies_and_admission_on_cluster(redis_cluster: RedisClusterProcesses, settings: Settings) -> None:
    # Given 4 partitions over the masters: each script (a dependent's creation, its parents' ends, a cap)
    # stays in one slot
    app = Baton(settings.with_changes(redis_url=redis_cluster.url, redis_cluster=True, partitions=4))

    @app.job(max_queued=50)
    async def step(ctx: RunContext, payload: Any) -> Any:
        return sum((await ctx.parent_outputs()).values()) + payload

    wf = app.workflow("chain")
    a = wf.task("step", name="a", input=1)
    b = wf.task("step", name="b", input=2)
    wf.task("step", name="c", parents=[a, b], input=3)
    try:
        async with running_node(app):
            results = await (await app.run_workflow(wf)).wait(20)
            dependent = await app.trigger("step", 10, depends_on=[results["c"].id])
            assert (await app.wait_for(dependent, 20)).output == 16
        assert results["c"].output == 6
    finally:
        await app.close()


async def test_a_url_listing_several_entry_points_survives_a_dead_one(
        redis_cluster: RedisClusterProcesses, settings: Settings) -> None:
    # Given a URL whose first entry point has no server behind it (a node down when a pod starts),
    # then two of the cluster's nodes
    hosts = ",".join(f"127.0.0.1:{port}" for port in (free_port(), redis_cluster.nodes[1].port,
                                                      redis_cluster.nodes[2].port))
    cs = settings.with_changes(redis_url=f"redis://{hosts}", redis_cluster=True, partitions=3)
    app = Baton(cs)

    @app.job()
    async def double(ctx: RunContext, payload: Any) -> int:
        return int(payload) * 2

    # When a node starts on it and runs are submitted (3 partitions: spread over the masters)
    async with running_node(app):
        run_ids = [await app.trigger("double", i) for i in range(12)]
        # Then every run completes: the client found the cluster through the live entry points
        for i, run_id in enumerate(run_ids):
            run = await app.wait_for(run_id, 20)
            assert (run.status, run.output) == ("completed", i * 2)


async def test_a_node_start_loads_the_missing_libraries_on_every_master(
        redis_cluster: RedisClusterProcesses, settings: Settings) -> None:
    # Given a cluster whose masters have none of Baton's libraries (flushed: as after a restart
    # without persistence; the calls of the tests after this one load them again as they miss)
    app = Baton(settings.with_changes(redis_url=redis_cluster.url, redis_cluster=True, partitions=4))
    raw = RedisCluster.from_url(redis_cluster.url)
    try:
        await raw.initialize()
        primaries = raw.get_primaries()
        for node in primaries:
            await raw.execute_command("FUNCTION FLUSH", target_nodes=node)
        # When a node loads what is missing, as it does at start
        loaded = await app.scripts.lua.load_missing()
        # Then every master holds every library of this version, each loaded there once
        ours = {lib.name for lib in app.scripts.lua.libraries.values()}
        assert sorted(loaded) == sorted(list(ours) * len(primaries))
        for node in primaries:
            listed = await raw.execute_command("FUNCTION LIST", "LIBRARYNAME", "baton_*", target_nodes=node)
            names = {(e[b"library_name"] if isinstance(e, dict) else e[1]).decode() for e in listed}
            assert names == ours, node.name
        # And a second node starting loads nothing
        assert await app.scripts.lua.load_missing() == []
    finally:
        await raw.aclose()
        await app.close()


async def test_runs_triggered_back_to_back_are_handed_off_on_a_cluster(
    redis_cluster: RedisClusterProcesses, settings: Settings,
) -> None:
    # Given an idle node on the cluster, its partitions on different masters
    app = Baton(settings.with_changes(redis_url=redis_cluster.url, redis_cluster=True, partitions=3, concurrency=20))

    @app.job()
    async def echo(ctx: RunContext, payload: Any) -> Any:
        return payload

    try:
        async with running_node(app) as node:
            await eventually(lambda: _waiting_everywhere(app), 10)
            # When 200 runs are triggered back to back (several entries wait in a hand-off list at once)
            ids = [await app.trigger("echo", n) for n in range(200)]
            runs = [await app.wait_for(run_id, 20) for run_id in ids]
            handed = node.metrics.registry.get_sample_value("baton_leases_handed_off_total")
            restarts = node.metrics.registry.get_sample_value("baton_actor_restarts_total", {"actor": "receiver"})
    finally:
        await app.close()
    # Then every run completed, most of them handed to the node (each pop, sent to its partition's
    # master, took what waited there), and the receiver never failed
    assert [r.output for r in runs] == list(range(200))
    assert handed is not None and handed > 100
    assert not restarts


async def _waiting_everywhere(app: Baton) -> bool:
    """Whether the node is registered as waiting in every partition."""
    node = app.settings.node_id
    return all([await app.redis.exists(p.waiter(node)) for p in app.keys.partitions])
