"""Redis Sentinel: a worker and a producer given a redis+sentinel:// URL follow the master over a
failover, a graceful one (the old master is demoted and keeps answering, READONLY) and a crash."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from runtime import NotReplicated, Settings
from runtime.connection import connect
from tests.integration.test_failover import sentinel_failover
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, spawn_worker, stop_process
from tests.servers import SENTINEL_SERVICE, SentinelGroup


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    """A fresh master, replica and three sentinels (the tests fail the master over)."""
    group = SentinelGroup().start()
    yield group
    group.stop()


async def _all_complete(app: Any, ids: list[str]) -> None:
    for run_id in ids:
        run = await app.wait_for(run_id, 40)
        assert run.status == "completed", (run_id, run.status)


async def _submit_both_ways(app: Any, tag: str) -> list[str]:
    """Runs through the client (scripts) and through the stream (intake), as producers would."""
    ids = [await app.trigger("noop", {"tag": tag, "i": i}) for i in range(10)]
    for i in range(10):
        run_id = f"{tag}-stream-{i}"
        await app.redis.xadd(app.keys.submit_stream, {"job": "noop", "id": run_id, "input": "{}"})
        ids.append(run_id)
    return ids


@pytest.mark.parametrize("how", ["graceful", "crash"])
async def test_a_node_follows_the_master_over_a_failover(sentinel_group: SentinelGroup, tmp_path: Path,
                                                         how: str) -> None:
    # Given a worker and a producer that know only the sentinels
    settings = Settings(redis_url=sentinel_group.url(), prefix="sent", lease_ttl_ms=3000, renew_interval_ms=500,
                        reap_interval_ms=200, idle_poll_ms=500, metrics_port=0)
    app = producer(settings)
    log = tmp_path / "w.log"
    worker = spawn_worker("tests.apps:app", worker_env(settings, "S"), log)
    old_master = sentinel_group.current_master_port()
    try:
        await _all_complete(app, await _submit_both_ways(app, "before"))
        # When the master fails over: SENTINEL FAILOVER (the old master lives on, demoted to a
        # replica that answers writes with READONLY), or kill -9 of the master
        if how == "graceful":
            sentinel = aioredis.Redis(port=sentinel_group.sentinels[0].port)
            await sentinel.execute_command("SENTINEL", "FAILOVER", SENTINEL_SERVICE)
            await sentinel.aclose()
        else:
            assert sentinel_group.master is not None
            sentinel_group.master.kill()
        await eventually(lambda: sentinel_group.current_master_port() != old_master, 30, interval=0.2)
        if how == "graceful":
            # the failover is over once the old master follows the new one (writes it took before
            # that are lost by Redis's asynchronous replication: durable writes are another issue)
            assert sentinel_group.master is not None
            sentinel_group.wait_in_sync(sentinel_group.master)
        # Then runs submitted afterwards, both ways, complete on the new master with the same node
        await _all_complete(app, await _submit_both_ways(app, "after"))
        assert worker.poll() is None
        new_master = aioredis.Redis(port=sentinel_group.current_master_port())
        try:
            assert await new_master.exists(app.keys.partition_of_run("after-stream-0").run("after-stream-0")) == 1
        finally:
            await new_master.aclose()
    finally:
        code = stop_process(worker)
        await app.close()
    assert code == 0, log.read_text()[-3000:]
    assert "giving up" not in log.read_text()


def _durable(group: SentinelGroup, timeout_ms: int = 5000, **changes: Any) -> Settings:
    # a generous WAIT timeout: on a busy 2-core machine a replica's ack can take a while (WAIT
    # returns as soon as it comes); the test of a missing replica shortens it
    return Settings(redis_url=group.url(), prefix="dur", durable_replicas=1, durable_timeout_ms=timeout_ms,
                    lease_ttl_ms=3000, renew_interval_ms=500, reap_interval_ms=200, idle_poll_ms=500, metrics_port=0,
                    **changes)


async def test_an_acknowledged_trigger_is_on_the_replica_and_survives_a_failover(
        sentinel_group: SentinelGroup) -> None:
    # Given a producer with durable writes (durable_replicas=1) on a master with one replica
    app = producer(_durable(sentinel_group))
    assert sentinel_group.replica is not None and sentinel_group.master is not None
    replica = aioredis.Redis(port=sentinel_group.replica.port)
    try:
        # When triggers return (the acknowledgement) ...
        ids = [await app.trigger("noop", {"i": i}) for i in range(30)]
        # Then each run is on the replica already
        for run_id in ids:
            assert await replica.exists(app.keys.partition_of_run(run_id).run(run_id)) == 1, run_id
        # And when the master dies right after, every acknowledged run is on the new master
        old_master = sentinel_group.current_master_port()
        sentinel_group.master.kill()
        await eventually(lambda: sentinel_group.current_master_port() != old_master, 30, interval=0.2)
        for run_id in ids:
            run = await app.get_run(run_id)
            assert run is not None and run.status == "queued", run_id
    finally:
        await replica.aclose()
        await app.close()


async def test_a_write_no_replica_has_is_not_acknowledged(sentinel_group: SentinelGroup, tmp_path: Path) -> None:
    # Given durable writes, and the only replica down
    settings = _durable(sentinel_group, timeout_ms=300)
    app = producer(settings)
    assert sentinel_group.replica is not None
    sentinel_group.replica.kill()
    log = tmp_path / "w.log"
    # (worker_env carries the connection and lease settings; the durable ones are this test's own)
    # (and a small restart budget: not-replicated writes must be ridden out like an outage, not end the node)
    worker = spawn_worker("tests.apps:app", worker_env(settings, "D", BATON_DURABLE_REPLICAS=1,
                                                       BATON_DURABLE_TIMEOUT_MS=300, BATON_MAX_RESTARTS=2), log)
    try:
        # When a run is triggered, then the caller hears it was not replicated
        with pytest.raises(NotReplicated):
            await app.trigger("noop", {"direct": True}, id="dur-direct")
        # and an entry on the stream stays unacknowledged (pending) while no replica takes the write
        await app.redis.xadd(app.keys.submit_stream, {"job": "noop", "id": "dur-stream", "input": "{}"})

        async def pending() -> int:
            try:
                return int((await app.redis.xpending(app.keys.submit_stream, app.keys.intake_group))["pending"])
            except ResponseError as exc:  # NOGROUP: the worker (a process still starting) has not made it yet
                if "NOGROUP" not in str(exc):
                    raise
                return 0
        await eventually(pending, 20)
        # ... and stays so: the intake tries again and again, never acknowledging it (a window of
        # several tries; acknowledging would drop pending to 0)
        for _ in range(10):
            await asyncio.sleep(0.2)
            assert await pending() == 1
        # When the replica is back, then the entry is created, acknowledged and run
        sentinel_group.replica.start()
        sentinel_group.wait_in_sync(sentinel_group.replica)
        run = await app.wait_for("dur-stream", 40)
        assert run.status == "completed"
        await eventually(lambda: _none_pending(app), 20)
    finally:
        code = stop_process(worker)
        await app.close()
    assert code == 0, log.read_text()[-3000:]
    assert "giving up" not in log.read_text()


@pytest.mark.parametrize("stall_s", [1.5, 4.5])
async def test_a_run_handed_to_a_waiting_node_starts_only_once_a_replica_has_it(
        sentinel_group: SentinelGroup, tmp_path: Path, stall_s: float) -> None:
    # Given a node with durable writes waiting for work, and a producer without them (its trigger
    # returns before any replica has the run: the node must not take that as confirmation)
    settings = _durable(sentinel_group, timeout_ms=300)
    app = producer(dataclasses.replace(settings, durable_replicas=0))
    replica = sentinel_group.replica
    assert replica is not None and replica.proc is not None
    log = tmp_path / "w.log"
    worker = spawn_worker("tests.apps:app", worker_env(settings, "H", BATON_DURABLE_REPLICAS=1,
                                                       BATON_DURABLE_TIMEOUT_MS=300), log)
    run_id = "handed-durably"
    executions = f"{settings.prefix}:test:executions"
    try:
        await eventually(lambda: app.redis.exists(app.keys.partition_of_run(run_id).waiter("H")), 30)
        # When the only replica stalls and a run is created, which runs_create leases and hands to
        # the waiting node at once
        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            await app.trigger("noop", {}, id=run_id)
            # Then the node does not start it while no replica has it: a failover now would lose
            # the run and its lease, and another node would run it again
            for _ in range(int(stall_s * 10)):
                await asyncio.sleep(0.1)
                assert await app.redis.hget(executions, run_id) is None
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        # And once the replica has it, the run completes, executed once: started under that lease
        # (a short stall), or, when the stall outlasted the lease (3 s), by a later attempt, once
        # the lease expired unstarted and was reaped
        run = await app.wait_for(run_id, 40)
        assert run.status == "completed"
        assert await app.redis.hget(executions, run_id) == b"1"
        assert run.attempt == (1 if stall_s < 3 else 2)
    finally:
        code = stop_process(worker)
        await app.close()
    # (and the node counted the runs it did not start as received: its drain did not wait for them)
    assert code == 0, log.read_text()[-3000:]
    assert ("no replica confirmed them" in log.read_text()) == (stall_s > 3)


async def _none_pending(app: Any) -> bool:
    return int((await app.redis.xpending(app.keys.submit_stream, app.keys.intake_group))["pending"]) == 0


async def test_a_service_name_no_sentinel_knows_stops_the_node_at_start(sentinel_group: SentinelGroup,
                                                                        settings: Settings) -> None:
    from runtime import Baton
    from tests.integration.test_startup_errors import start_error

    # Given live sentinels, and a URL naming a service none of them monitors
    url = sentinel_group.url().rsplit("/", 1)[0] + "/no-such-master"
    # Then a node stops at once, saying which name and whom it asked
    error = await start_error(Baton(settings.with_changes(redis_url=url)), timeout=15)
    assert "no sentinel knows a master named 'no-such-master'" in str(error)


async def test_a_pooled_connection_to_a_demoted_master_reconnects_to_the_new_one(sentinel_group: SentinelGroup) -> None:
    # Given a Sentinel client whose pool holds an idle connection to the master
    client = connect(sentinel_group.url())
    old_master = sentinel_group.current_master_port()
    try:
        await client.set("k", "before")
        # When Sentinel fails over gracefully (the old master lives on, demoted: it answers reads,
        # and writes with READONLY) and that idle connection is the next one used
        await sentinel_failover(sentinel_group)
        await eventually(lambda: sentinel_group.current_master_port() != old_master, 30, interval=0.1)
        assert sentinel_group.master is not None
        sentinel_group.wait_in_sync(sentinel_group.master)
        # Then a write succeeds: the connection dropped on READONLY reopens to the master the
        # sentinels name now (redis-py's own connection reopened to its old host on every retry)
        await client.set("k", "after")
        new_master = aioredis.Redis(port=sentinel_group.current_master_port())
        assert await new_master.get("k") == b"after"
        await new_master.aclose()
    finally:
        await client.aclose()
