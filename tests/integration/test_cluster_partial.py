"""One master of a Redis Cluster down (no replica promoted yet, or none): a worker process goes on
serving the partitions the other masters hold, and resumes the lost master's partitions when it
comes back (runtime/partition_outages.py). Before, the fetcher, receiver and reporter failed on the
first partition that did not answer, so runs on healthy masters stopped too."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster

from actors.base import Mailbox
from actors.listener import Listener
from bench.chaos.proxy import FaultProxy
from runtime import Baton, RunContext, Settings
from runtime.cancelling import cancel_and_wait
from runtime.cron import CronSchedule
from runtime.ids import new_run_id
from runtime.messages import Wake
from runtime.redis_faults import is_outage
from runtime.statuses import RunStatus
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, running_node, spawn_worker, tear_down
from tests.observability.support import scrape
from tests.servers import RedisClusterProcesses, free_port

pytestmark = pytest.mark.cluster

PARTITIONS = 6


def _started_cluster() -> tuple[RedisClusterProcesses, str]:
    """A 3-master cluster that serves the slots it has while one master is down, and the URL naming
    every master (as a deployment's would)."""
    cluster = RedisClusterProcesses().start()
    cluster.allow_partial_coverage()
    return cluster, "redis://" + ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)


async def _run_in(app: Baton, partition: int, steps: int = 1, delay: float | None = None) -> str:
    run_id = new_run_id()
    while app.keys.partition_of_run(run_id).index != partition:
        run_id = new_run_id()
    timing = {"delay": delay} if delay is not None else {}
    return await app.trigger("steady_steps", {"steps": steps, "sleep": 0.05}, id=run_id, **timing)


async def _keep_stream_busy(raw: RedisCluster, stream: str, stop: asyncio.Event) -> None:
    """XADD no-op entries, five at a time every 10 ms, until ``stop`` is set. (In a transaction: a
    blocked read is answered after the whole EXEC, so each read takes several entries, as on a busy
    stream.) On a plain client of the stream's master, not through the cluster client: a cluster
    pipeline caught retrying while a master rejoins once kept running through its cancel (redis-py
    8.1), and the test waited on it until its timeout. Ended by an event, not a cancel: a plain
    client's transaction swallowed the cancel the same way once (fresh-clone CI at 282d74a)."""
    node = raw.get_node_from_key(stream)
    direct = redis.asyncio.Redis(host=node.host, port=node.port)
    entry = {"job": "steady_steps", "input": '{"steps": 1, "sleep": 0}'}
    try:
        while not stop.is_set():
            pipe = direct.pipeline(transaction=True)
            for _ in range(5):
                pipe.xadd(stream, entry)
            await pipe.execute()
            await asyncio.sleep(0.01)
    finally:
        await direct.aclose()


async def _waiting(app: Baton, run_id: str) -> None:
    """Until the run waits (for its event)."""
    deadline = asyncio.get_running_loop().time() + 20
    while (run := await app.get_run(run_id)) is None or run.status != RunStatus.WAITING:
        assert asyncio.get_running_loop().time() < deadline, f"run {run_id} not waiting: {run}"
        await asyncio.sleep(0.05)


async def _served_again(app: Baton, partitions: set[int], log: Path) -> None:
    """A run in each of ``partitions`` completes, once their master is back."""
    for partition in sorted(partitions):
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # (the producer's own calls may meet the master still rejoining)
            try:
                run_id = await _run_in(app, partition)
                break
            except (redis.RedisError, OSError):
                assert asyncio.get_running_loop().time() < deadline, "the master did not come back"
                await asyncio.sleep(0.2)
        run = await app.wait_for(run_id, 20)
        assert run.status == "completed", (partition, run.status, log.read_text()[-3000:])


async def _named_entries(app: Baton, raw: RedisCluster, healthy: list[int],
                         lost: set[int]) -> tuple[list[str], list[str]]:
    """Entries XADDed to the node-wide stream, each naming its run (an ``id`` in a healthy partition), under
    stream ids chosen so that the entry's alias lands on a lost partition (their runs: the first list) or on
    a healthy one (the second)."""
    held: list[str] = []
    flowing: list[str] = []
    ms = int(time.time() * 1000) + 1000  # (ids after any the stream has)
    while len(held) < 3 or len(flowing) < 3:
        ms += 1
        entry_id = f"{ms}-0"
        on_lost = app.keys.partition_of_run(entry_id).index in lost
        if len(held if on_lost else flowing) == 3:
            continue
        run_id = new_run_id()
        while app.keys.partition_of_run(run_id).index not in healthy:
            run_id = new_run_id()
        await raw.xadd(app.keys.submit_stream, {"job": "steady_steps", "input": '{"steps": 1, "sleep": 0}',
                                                "id": run_id}, id=entry_id)
        (held if on_lost else flowing).append(run_id)
    return held, flowing


def _alive(worker: subprocess.Popen[bytes], log: Path) -> None:
    assert worker.poll() is None, f"worker exited with {worker.returncode}:\n{log.read_text()[-3000:]}"


@pytest.mark.parametrize("lost_holds", ["partitions", "node-wide keys"])
async def test_a_dead_master_stops_only_its_own_partitions(tmp_path: Path, lost_holds: str) -> None:
    # Given a 3-master cluster and a worker process serving 6 partitions (spread over the masters)
    cluster, url = _started_cluster()
    settings = Settings(redis_url=url, redis_cluster=True, prefix="bt", partitions=PARTITIONS, metrics_port=0)
    app = producer(settings)
    log = tmp_path / "w.log"
    metrics_port = free_port()
    worker = spawn_worker("tests.apps:app", worker_env(settings, "W", BATON_REDIS_CLUSTER="true",
                                                       BATON_PARTITIONS=PARTITIONS, BATON_CONCURRENCY=20,
                                                       BATON_METRICS_PORT=metrics_port, BATON_METRICS_HOST="127.0.0.1",
                                                       BATON_OBSERVE_INTERVAL_MS=200), log)
    raw = RedisCluster.from_url(cluster.url)
    try:
        await raw.initialize()
        # the master to kill: one holding partitions only, or the one holding the node-wide keys
        # (registry, heartbeats, webhooks: a producer's submissions read those, too)
        wide = raw.nodes_manager.get_node_from_slot(raw.keyslot(app.keys.deployment)).port
        lost = next(n for n in cluster.nodes if (n.port == wide) == (lost_holds == "node-wide keys"))
        on_lost = {p.index for p in app.keys.partitions
                   if raw.nodes_manager.get_node_from_slot(raw.keyslot(p.leased)).port == lost.port}
        healthy = sorted(set(range(PARTITIONS)) - on_lost)
        assert healthy
        for partition in range(PARTITIONS):  # every partition works
            run = await app.wait_for(await _run_in(app, partition), 20)
            assert run.status == "completed", (partition, run.status)
        # and runs are under way in every partition (those on the lost master cannot finish now)
        under_way = [await _run_in(app, partition, steps=20) for partition in range(PARTITIONS)]
        # and one run waits for an event in a partition of a healthy master
        waiter = new_run_id()
        while app.keys.partition_of_run(waiter).index not in healthy:
            waiter = new_run_id()
        await app.trigger("awaits_event", {"event": "go"}, id=waiter)
        await _waiting(app, waiter)

        # When one master is killed
        lost.kill()

        # Then runs submitted to the other masters' partitions complete, each at once: no call to the
        # lost master holds them up (its calls once spent ~1.5 s of the cluster client's retries before
        # they failed: the node's claims in every partition, and a producer's read of the webhooks on
        # the node-wide keys' master, waited as long; runs took up to 1.6 s)
        loop = asyncio.get_running_loop()
        for round_ in range(3):
            for partition in healthy:
                sent = loop.time()
                run = await app.wait_for(await _run_in(app, partition), 15)
                took = loop.time() - sent
                assert run.status == "completed", (round_, partition, run.status, log.read_text()[-3000:])
                assert took < 1.0, (round_, partition, took, log.read_text()[-3000:])
        for run_id in under_way:
            if app.keys.partition_of_run(run_id).index in healthy:
                assert (await app.wait_for(run_id, 15)).status == "completed"
        # And runs due later on the other masters start on time: the leaser's duties (reaping, promotion,
        # renewal) once each waited on the lost master's partitions first, about 2.5 s a tick, while a
        # run due elsewhere waited for them
        late = []
        for partition in healthy * 2:
            run = await app.wait_for(await _run_in(app, partition, delay=0.5), 15)
            assert run.status == "completed" and run.attempts, (partition, run.status)
            late.append(run.attempts[0].started_at_ms - (run.created_at_ms + 500))
        assert max(late) < 1000, (late, log.read_text()[-3000:])
        # And entries XADDed to the node-wide stream (the mission's own path) become runs on the
        # other masters' partitions; those for the lost master's wait, pending, for it (when the
        # stream's own master is the lost one, producers get its error, as they should)
        # (an event entry first: it goes to every partition, and the lost master's must not
        # stop the entries after it, nor keep the event from the healthy partitions' waiters)
        entries: list[str] = []
        held_runs: list[str] = []
        if lost_holds == "partitions":
            # (first, before any entry shows the intake that the lost master is gone:) an entry naming its run
            # (an id on a healthy master) whose alias (the entry id's partition) is on the lost master waits
            # for it, while the entries beside it go on: only the alias's partition is out (before, the run's
            # healthy partition was taken for out too, logged as not answering, and its entries held)
            held_runs, flowing = await _named_entries(app, raw, healthy, on_lost)
            for run_id in flowing:
                assert (await app.wait_for(run_id, 15)).status == "completed", log.read_text()[-3000:]
            assert [await app.get_run(run_id) for run_id in held_runs] == [None] * len(held_runs)
            said_out = {int(index) for found in re.findall(r"partitions? ([\d,]+) did not answer", log.read_text())
                        for index in found.split(",")}
            assert said_out <= on_lost, (said_out, on_lost, log.read_text()[-3000:])
            await raw.xadd(app.keys.submit_stream, {"event": "go", "data": '{"by": "stream"}'})
            entry = {"job": "steady_steps", "input": '{"steps": 1, "sleep": 0}'}
            for _ in range(24):
                entries.append((await raw.xadd(app.keys.submit_stream, entry)).decode())
            for entry in entries:
                if app.keys.partition_of_run(entry).index in healthy:
                    assert (await app.wait_for(entry, 15)).status == "completed", log.read_text()[-3000:]
            # And the cluster gauges of every healthy partition are read on (before, the first
            # partition that did not answer ended each round: those after it froze on the wall)
            for partition in healthy:
                for _ in range(2):
                    await _run_in(app, partition, delay=600)

                def delayed_counted(index: int = partition) -> bool:
                    sample = f'baton_partition_runs{{partition="{index}",state="delayed"}} 2.0'
                    return sample in scrape(metrics_port)

                try:
                    await eventually(delayed_counted, timeout=10, interval=0.1)
                except AssertionError:
                    lines = [x for x in scrape(metrics_port).splitlines() if "delayed" in x and "partition_runs" in x]
                    raise AssertionError(f"partition {partition}: {lines}\n{log.read_text()[-2000:]}") from None
            run = await app.wait_for(waiter, 15)
            assert (run.status, run.output) == ("completed", {"by": "stream"}), log.read_text()[-3000:]
        _alive(worker, log)
        if on_lost:
            # (each part of the node finds the master gone when it next calls there: the fetcher at its
            # next claim in those partitions, which a node still registered as waiting there may not
            # make for up to a second; the test's runs elsewhere can all be done sooner)
            await eventually(lambda: "claims paused there" in log.read_text(), 10)
            # and the node's metrics say how many partitions its fetcher skips
            skipped = f'baton_partitions_out{{actor="fetcher"}} {float(len(on_lost))}'
            await eventually(lambda: skipped in scrape(metrics_port), 10)
            # and the lost partitions' own streams' intakes wait for their master instead of crashing
            # every second (which counted as actor restarts, and fired BatonActorRestarting)
            await eventually(lambda: "its stream's intake waits for it" in log.read_text(), 10)
            assert "actor intake.p" not in log.read_text(), log.read_text()[-3000:]
        if lost_holds == "partitions":
            # and no actor of the node had to start over for it: each goes on without those partitions
            # (the notifier's outbox gauge, a sum over every partition, once restarted it at each reading)
            assert " waits for Redis" not in log.read_text(), log.read_text()[-3000:]

        # When it comes back (empty: no persistence), the node serves its partitions again
        # (while the stream is busy: the intake then always has a read under way, and the held
        # entries once waited for the idle claim, intake_claim_idle_ms = 30 s)
        stop_busy = asyncio.Event()
        busy = asyncio.ensure_future(_keep_stream_busy(raw, app.keys.submit_stream, stop_busy)) if entries else None
        lost.start()
        back_at = asyncio.get_running_loop().time()
        cluster.allow_partial_coverage()
        if busy is not None:
            for entry in entries:  # the held entries, soon after their partitions answer again
                left = back_at + 15 - asyncio.get_running_loop().time()
                assert (await app.wait_for(entry, max(left, 0.1))).status == "completed", log.read_text()[-3000:]
            stop_busy.set()
            await asyncio.wait_for(busy, 30)  # (its round under way ends: the master is back)
        await _served_again(app, on_lost, log)
        if on_lost:
            # (the fetcher says so at its first claim there, which runs handed to the node need not wait for)
            await eventually(lambda: "answers again: claims resumed there" in log.read_text(), 10)
            await eventually(lambda: 'baton_partitions_out{actor="fetcher"} 0.0' in scrape(metrics_port), 10)
            for entry in entries:  # the held entries too, once their partitions answer again
                assert (await app.wait_for(entry, 30)).status == "completed", log.read_text()[-3000:]
            for run_id in held_runs:
                assert (await app.wait_for(run_id, 30)).status == "completed", log.read_text()[-3000:]
            # and the jobs' limits are back in the partitions that came back empty (before, those
            # partitions took every job as unlimited until a node restarted)
            for partition in sorted(on_lost):
                limits = await raw.hget(app.keys.partitions[partition].jobs, "cc_limited")
                assert limits is not None and limits.decode().startswith("3,1"), (partition, limits)
        else:  # the node-wide keys came back empty: the node publishes its jobs again, and serves on
            for partition in healthy:
                assert (await app.wait_for(await _run_in(app, partition), 20)).status == "completed"
        _alive(worker, log)
    finally:
        code = await tear_down(worker, (raw.aclose, app.close), cluster.stop)
    assert code == 0, log.read_text()[-3000:]


async def test_schedules_fire_on_while_a_master_is_down() -> None:
    # Given a node on a 3-master cluster firing a schedule every second, whose ticks' runs spread over
    # 6 partitions (a tick's run id, cron.<schedule>.<tick ms>, picks its partition)
    cluster, url = _started_cluster()
    app = Baton(Settings(redis_url=url, redis_cluster=True, prefix="bt", partitions=PARTITIONS, metrics_port=0))
    ran: list[str] = []

    @app.job(cron=CronSchedule(name="pulse", job="", expression="* * * * * *", overlap="allow"))
    async def pulse(ctx: RunContext, payload: Any) -> None:
        ran.append(ctx.run_id)

    raw = RedisCluster.from_url(cluster.url)
    try:
        await raw.initialize()
        async with running_node(app) as node:
            await eventually(lambda: len(ran) >= 2, timeout=20, interval=0.1)
            wide = raw.nodes_manager.get_node_from_slot(raw.keyslot(app.keys.deployment)).port
            lost = next(n for n in cluster.nodes if n.port != wide)
            on_lost = {p.index for p in app.keys.partitions
                       if raw.nodes_manager.get_node_from_slot(raw.keyslot(p.leased)).port == lost.port}

            # When a master holding partitions only is killed
            lost.kill()
            before = len(ran)

            # Then the ticks whose runs land on the other masters' partitions keep running, every second
            # (before, a tick on the lost master crashed the scheduler, which met the same tick again
            # after each restart until its grace ran out: 5 s with no schedule fired)
            def fired_on_healthy() -> bool:
                healthy = [r for r in ran[before:] if app.keys.partition_of_run(r).index not in on_lost]
                return len(healthy) >= 4

            # (about half the ticks land on the lost master's partitions: 4 on the others take ~8 s;
            # a fresh-clone CI run on a loaded machine once needed more than 15)
            await eventually(fired_on_healthy, timeout=30, interval=0.1)
            assert node.metrics.actor_restarts.labels(actor="scheduler")._value.get() == 0
    finally:
        await raw.aclose()
        await app.close()
        await asyncio.to_thread(cluster.stop)


async def test_repairs_and_pauses_reach_every_partition_a_master_answers_for() -> None:
    # Given a 3-master cluster, 6 partitions, and a stray entry in every partition's leased index
    # (a run leased there that has no record: the drift reconciliation repairs)
    cluster, url = _started_cluster()
    app = Baton(Settings(redis_url=url, redis_cluster=True, prefix="bt", partitions=PARTITIONS, metrics_port=0))
    raw = RedisCluster.from_url(cluster.url)
    try:
        await raw.initialize()
        assert (await app.reconcile())["total"] == 0  # (the node's client knows the cluster)
        for p in app.keys.partitions:
            await raw.zadd(p.leased, {"stray": 1})
        master_of = {p.index: raw.nodes_manager.get_node_from_slot(raw.keyslot(p.leased)).port
                     for p in app.keys.partitions}
        # the first partition's master is lost, so every call meets it before the others
        lost = next(n for n in cluster.nodes if n.port == master_of[0])
        healthy = [p for p in app.keys.partitions if master_of[p.index] != lost.port]
        lost.kill()

        # When the node's periodic repair runs, and an operator pauses a queue
        # Then each reports the outage, but only once every healthy partition had its call: before, both
        # stopped at the lost partition, so the others were neither repaired nor paused
        with pytest.raises(redis.RedisError) as repair:
            await app.reconcile()
        assert is_outage(repair.value), repr(repair.value)
        for p in healthy:
            assert await raw.zscore(p.leased, "stray") is None, p.index
        with pytest.raises(redis.RedisError):
            await app.pause_queue("mail")
        for p in healthy:
            assert await raw.sismember(p.paused_queues, "mail"), p.index
        with pytest.raises(redis.RedisError):
            await app.resume_queue("mail")
        for p in healthy:
            assert not await raw.sismember(p.paused_queues, "mail"), p.index
    finally:
        await raw.aclose()
        await app.close()
        await asyncio.to_thread(cluster.stop)


async def test_a_node_starts_while_a_master_is_down(tmp_path: Path) -> None:
    # Given a new deployment on a 3-master cluster (nothing of Baton's there yet: no libraries, no
    # records) whose master holding partitions only is down
    cluster, url = _started_cluster()
    settings = Settings(redis_url=url, redis_cluster=True, prefix="bt", partitions=PARTITIONS, metrics_port=0)
    app = producer(settings)
    log = tmp_path / "w.log"
    raw = RedisCluster.from_url(cluster.url)
    worker: subprocess.Popen[bytes] | None = None
    try:
        await raw.initialize()
        wide = raw.nodes_manager.get_node_from_slot(raw.keyslot(app.keys.deployment)).port
        lost = next(n for n in cluster.nodes if n.port != wide)
        on_lost = {p.index for p in app.keys.partitions
                   if raw.nodes_manager.get_node_from_slot(raw.keyslot(p.leased)).port == lost.port}
        healthy = sorted(set(range(PARTITIONS)) - on_lost)
        assert on_lost and healthy
        lost.kill()

        # When a worker process starts (a pod rescheduled during the outage, a scale-up, a rollout)
        worker = spawn_worker("tests.apps:app", worker_env(settings, "W", BATON_REDIS_CLUSTER="true",
                                                           BATON_PARTITIONS=PARTITIONS, BATON_CONCURRENCY=20), log)

        # Then it serves the partitions of the masters that answer, within seconds (before, it retried
        # its start-up checks until the master came back, and served nothing meanwhile)
        for partition in healthy:
            run = await app.wait_for(await _run_in(app, partition), 20)
            assert run.status == "completed", (partition, run.status, log.read_text()[-3000:])
        entry = {"job": "steady_steps", "input": '{"steps": 1, "sleep": 0}'}
        for _ in range(12):
            entry_id = (await raw.xadd(app.keys.submit_stream, entry)).decode()
            if app.keys.partition_of_run(entry_id).index in healthy:
                assert (await app.wait_for(entry_id, 15)).status == "completed", log.read_text()[-3000:]
        _alive(worker, log)

        # When the master comes back, the node serves its partitions too
        lost.start()
        cluster.allow_partial_coverage()
        await _served_again(app, on_lost, log)
        _alive(worker, log)
        assert "crashed" not in log.read_text(), log.read_text()[-3000:]
    finally:
        code = await tear_down(worker, (raw.aclose, app.close), cluster.stop) if worker else 0
        if not worker:
            await raw.aclose()
            await app.close()
            await asyncio.to_thread(cluster.stop)
    assert code == 0, log.read_text()[-3000:]


async def test_producers_draw_new_runs_away_from_a_dead_master() -> None:
    # Given a node and a producer (another client) on a 3-master cluster of 6 partitions
    cluster, url = _started_cluster()
    settings = Settings(redis_url=url, redis_cluster=True, prefix="bt", partitions=PARTITIONS, metrics_port=0)
    node_app, app = Baton(settings), Baton(settings)
    for each in (node_app, app):
        @each.job(name="noop")
        async def noop(ctx: RunContext, payload: Any) -> None:
            return None

    raw = RedisCluster.from_url(cluster.url)
    try:
        await raw.initialize()
        async with running_node(node_app):
            for _ in range(6):
                assert (await app.wait_for(await app.trigger("noop"), 20)).status == "completed"
            wide = raw.nodes_manager.get_node_from_slot(raw.keyslot(app.keys.deployment)).port
            lost = next(n for n in cluster.nodes if n.port != wide)
            on_lost = {p.index for p in app.keys.partitions
                       if raw.nodes_manager.get_node_from_slot(raw.keyslot(p.leased)).port == lost.port}
            assert on_lost

            # When a master holding partitions only is killed
            lost.kill()

            # Then the producer's runs without ids of their own are created on the masters that answer:
            # only the call that finds the master down fails (before, every third one failed after the
            # client's retries, ~1.6 s each, for as long as the master was down)
            drawn, failed = [], 0
            for _ in range(20):
                try:
                    drawn.append(await app.trigger("noop"))
                except redis.RedisError as exc:
                    assert is_outage(exc), repr(exc)
                    failed += 1
            assert failed <= 1, failed
            assert not {app.keys.partition_of_run(r).index for r in drawn} & on_lost
            for run_id in drawn:
                assert (await app.wait_for(run_id, 15)).status == "completed"

            # When it comes back, the producer draws ids there again (its probe found it answering)
            lost.start()
            cluster.allow_partial_coverage()

            async def drawn_there() -> bool:
                try:
                    run_id = await app.trigger("noop")
                except redis.RedisError:
                    return False  # (the master still rejoining)
                return app.keys.partition_of_run(run_id).index in on_lost

            await eventually(drawn_there, timeout=30, interval=0.05)
    finally:
        await raw.aclose()
        await app.close()
        await node_app.close()
        await asyncio.to_thread(cluster.stop)


async def test_a_listener_whose_master_goes_down_listens_on_another_within_a_second() -> None:
    # Given a node's listener subscribed on one master of a 3-master cluster
    cluster, url = _started_cluster()
    app = Baton(Settings(redis_url=url, redis_cluster=True, prefix="ls", partitions=PARTITIONS, metrics_port=0))
    fetcher: Mailbox[Wake] = Mailbox(100)
    listener = Listener(app, fetcher, Mailbox(100), Mailbox(100))
    task = asyncio.create_task(listener.run())
    clients = {node.port: redis.asyncio.Redis(port=node.port) for node in cluster.nodes}

    async def listened_on() -> set[int]:
        ports = set()
        for port, client in clients.items():
            with contextlib.suppress(redis.RedisError, OSError):
                [(_, subscribers)] = await client.pubsub_numsub(app.keys.wake_channel)
                if subscribers:
                    ports.add(port)
        return ports

    try:
        await eventually(listened_on, 10)
        [first] = await listened_on()
        # When that master goes down
        next(node for node in cluster.nodes if node.port == first).kill()
        await clients.pop(first).aclose()
        lost_at = asyncio.get_running_loop().time()
        # Then it listens on another within a second (its own client does not retry: with the default
        # reconnect policy 1.7 s went by here, every wake-up lost), and says so to the fetcher, which
        # claims what was announced meanwhile
        await eventually(listened_on, 5, interval=0.02)
        assert asyncio.get_running_loop().time() - lost_at < 1.0
        assert not task.done()
        assert Wake("") in [fetcher.get_nowait() for _ in range(fetcher.qsize())]
    finally:
        listener.stopping.set()
        await cancel_and_wait([task])
        for client in clients.values():
            await client.aclose()
        await app.close()
        cluster.stop()


async def test_a_master_that_answers_nothing_does_not_hold_up_the_others_partitions(tmp_path: Path) -> None:
    # Given a 3-master cluster whose clients reach one master, not the node-wide keys', only through a
    # proxy (it announces the proxy's port), and a worker process with a 3 s reply timeout (1 s of
    # blocking reads and redis_timeout_ms 2000) serving 6 partitions
    cluster, _ = _started_cluster()
    raw = RedisCluster.from_url(cluster.url)
    await raw.initialize()
    keys = Baton(Settings(prefix="bh", partitions=PARTITIONS, metrics_port=0)).keys
    wide = raw.nodes_manager.get_node_from_slot(raw.keyslot(keys.deployment)).port
    lost = next(node for node in cluster.nodes if node.port != wide)
    proxy = await FaultProxy(lost.port, free_port()).start()
    redis.Redis(port=lost.port).config_set("cluster-announce-port", proxy.port)

    def announced() -> bool:
        return all(f":{proxy.port}@" in str(redis.Redis(port=n.port).execute_command("CLUSTER", "NODES"))
                   for n in cluster.nodes)

    await eventually(announced, 10)
    await raw.aclose()
    url = "redis://" + ",".join(f"127.0.0.1:{proxy.port if n is lost else n.port}" for n in cluster.nodes)
    settings = Settings(redis_url=url, redis_cluster=True, prefix="bh", partitions=PARTITIONS, metrics_port=0)
    app = producer(settings)
    log = tmp_path / "w.log"
    worker = spawn_worker("tests.apps:app", worker_env(settings, "W", BATON_REDIS_CLUSTER="true",
                                                       BATON_PARTITIONS=PARTITIONS, BATON_CONCURRENCY=20,
                                                       BATON_REDIS_TIMEOUT_MS=2000), log)
    raw = RedisCluster.from_url(cluster.url)
    try:
        await raw.initialize()
        on_lost = {p.index for p in app.keys.partitions
                   if raw.nodes_manager.get_node_from_slot(raw.keyslot(p.leased)).port in (lost.port, proxy.port)}
        healthy = sorted(set(range(PARTITIONS)) - on_lost)
        assert on_lost and healthy
        for partition in range(PARTITIONS):
            assert (await app.wait_for(await _run_in(app, partition), 20)).status == "completed"
        # When that master answers nothing from now on (a hung host: nothing refused, nothing closed)
        proxy.blackhole()
        # Then runs submitted to the other masters' partitions meanwhile go on completing at once:
        # the node's claims once went partition after partition, and waited twice the reply timeout
        # on the silent master's (every run took 5-6 s here, up to 20 s with the default timeout)
        loop = asyncio.get_running_loop()

        async def timed(partition: int) -> float:
            sent = loop.time()
            run = await app.wait_for(await _run_in(app, partition), 20)
            assert run.status == "completed", (partition, run.status)
            return loop.time() - sent

        probes = []
        for _ in range(40):
            probes += [asyncio.ensure_future(timed(p)) for p in healthy]
            await asyncio.sleep(0.1)
        took = sorted(await asyncio.gather(*probes))
        slow = [t for t in took if t > 1.0]
        assert len(slow) <= len(took) // 10, (slow, log.read_text()[-3000:])
        _alive(worker, log)
    finally:
        proxy.heal()
        code = await tear_down(worker, (raw.aclose, app.close, proxy.stop), cluster.stop)
    assert code == 0, log.read_text()[-3000:]
