"""Failover under load, on real topologies: Sentinel (1 master, 2 replicas, 3 sentinels) and Redis
Cluster (3 masters, 3 replicas). Worker processes write durably (durable_replicas=1); a producer
process XADDs and counts an entry only once WAIT confirmed it. The master is killed (kill -9),
paused (CLIENT PAUSE, then demoted by Sentinel) or demoted (a manual failover). Nodes must resume
within 10 s of the promotion, and every acknowledged submission must end in exactly one terminal
state with its side effect done once per recorded attempt."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from bench.cluster import keyslot, slot_layout
from runtime import Baton, NotReplicated, RunContext
from runtime.connection import connect
from runtime.direct_calls import DirectCalls
from runtime.keys import Keys
from tests.failover.fleet import Fleet, StatusReader, fleet_settings
from tests.nodes import eventually
from tests.servers import SENTINEL_SERVICE, RedisClusterProcesses, SentinelGroup

pytestmark = pytest.mark.slow

#: entries acknowledged before the fault and after the promotion
STEADY = 40
#: partitions of the cluster tests (with the node-wide tag, spread over the three masters)
PARTITIONS = 3


def _now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    """A fresh master, two replicas and three sentinels."""
    group = SentinelGroup(replica_count=2).start()
    yield group
    group.stop()


@pytest.mark.parametrize("fault", ["kill", "pause", "failover"])
async def test_sentinel_failover_under_load_loses_and_repeats_nothing(
        sentinel_group: SentinelGroup, tmp_path: Path, fault: str) -> None:
    # Given two worker nodes and a producer under steady load, all knowing only the sentinels, with
    # durable writes to 1 replica; to both when the old master lives on (a failover): until Sentinel
    # has moved the other replica, a write the old master takes could be confirmed by that replica
    # and then lost in its resync from the new master (README, "Durable writes")
    replicas = 2 if fault == "failover" else 1
    settings = fleet_settings(sentinel_group.url(), "fo", replicas=replicas)
    app = Baton(settings)
    fleet = Fleet(settings, tmp_path).start()
    master = sentinel_group.master
    assert master is not None
    try:
        await fleet.working(app, STEADY)
        # When the master is lost: kill -9; paused (CLIENT PAUSE ALL: sentinels see it down, promote
        # a replica, and demote it to a replica once the pause ends); or demoted by a failover
        if fault == "kill":
            master.kill()
        elif fault == "pause":
            redis.Redis(port=master.port).execute_command("CLIENT", "PAUSE", 6000, "ALL")
        else:
            await sentinel_failover(sentinel_group)
        await eventually(lambda: sentinel_group.current_master_port() != master.port, 30, interval=0.1)
        if replicas == 2:
            # the new master is there for writes to 2 replicas once the old one follows it
            sentinel_group.wait_in_sync(master, timeout_s=30)
        promoted = _now_ms()
        # Then new runs complete within 10 s of the promotion, the load goes on, and every
        # acknowledged submission ends once
        counts = await fleet.recovers(app, promoted, STEADY, _status_on_master(sentinel_group, app))
    finally:
        fleet.stop_cleanly()
        await app.close()
    assert counts["acknowledged"] >= 2 * STEADY


def _status_on_master(group: SentinelGroup, app: Baton) -> StatusReader:
    """A run's status as the master the sentinels name has it."""
    async def status_of(run_id: str) -> str | None:
        client = aioredis.Redis(port=group.current_master_port())
        try:
            status = await client.hget(app.keys.partition_of_run(run_id).run(run_id), "status")
        finally:
            await client.aclose()
        return status.decode() if status else None

    return status_of


async def sentinel_failover(group: SentinelGroup) -> None:
    """SENTINEL FAILOVER, once the sentinels have a replica they find good (NOGOODSLAVE until then)."""
    sentinel = aioredis.Redis(port=group.sentinels[0].port)

    async def failed_over() -> bool:
        try:
            await sentinel.execute_command("SENTINEL", "FAILOVER", SENTINEL_SERVICE)
        except redis.exceptions.ResponseError as exc:
            if "NOGOODSLAVE" not in str(exc):
                raise
            return False
        return True

    try:
        await eventually(failed_over, 30, interval=0.2)
    finally:
        await sentinel.aclose()


async def test_durable_calls_leave_a_replaced_master_before_it_is_demoted(sentinel_group: SentinelGroup) -> None:
    # Given durable calls on a connection held to the master
    client = connect(sentinel_group.url())
    calls = DirectCalls(client)
    master = sentinel_group.master
    assert master is not None
    try:
        script = "return redis.call('SET', KEYS[1], 'x')"
        # (on both replicas: whichever Sentinel promotes must hold it)
        _, acked = await calls.execute_durably(("WAIT", 2, 5000), "EVAL", script, 1, "k")
        assert acked >= 2
        # When Sentinel promotes a replica: the old master answers on, as a master with no replica,
        # for seconds (until Sentinel demotes it), so its WAITs come back short and nothing says READONLY
        await sentinel_failover(sentinel_group)
        await eventually(lambda: sentinel_group.current_master_port() != master.port, 30, interval=0.1)
        old = redis.Redis(port=master.port)
        try:
            # (once Sentinel has moved the other replica to the new master: until then the old
            # master's WAITs succeed, and what it acknowledges is lost on its demotion; README)
            await eventually(lambda: old.info("replication")["connected_slaves"] == 0, 20, interval=0.05)
            assert old.info("replication")["role"] == "master"
        finally:
            old.close()
        # Then after a short WAIT or two (a sentinel may still name the old master for a moment), the
        # calls reach the new master, seconds before the old one is demoted
        replies = []
        while not replies or replies[-1][1] < 1:
            replies.append(await calls.execute_durably(("WAIT", 1, 1000), "EVAL", "return redis.call('GET', KEYS[1])",
                                                        1, "k"))
            assert len(replies) <= 4, replies
        assert all(reply == b"x" for reply, _ in replies)
    finally:
        await calls.release()
        await client.aclose()


@pytest.fixture
def cluster_with_replicas(request: pytest.FixtureRequest) -> Iterator[tuple[RedisClusterProcesses, str]]:
    """3 masters and 3 replicas; partition i on master i, the node-wide keys (the submission stream)
    on master 0 with partition 0."""
    prefix = "cfo"
    keys = Keys(prefix, PARTITIONS)
    tags = [p.tag for p in keys.partitions] + [keys.node_tag]
    cluster = RedisClusterProcesses().start(masters=3, replicas=3, layout=slot_layout(3, tags))
    yield cluster, prefix
    cluster.stop()


def _master_of(cluster: RedisClusterProcesses, slot: int) -> int:
    """The port of the master serving ``slot``, as a live node's CLUSTER SLOTS says."""
    for node in [*cluster.nodes, *cluster.replicas]:
        if node.proc is None or node.proc.poll() is not None:
            continue
        client = redis.Redis(port=node.port)
        try:
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(master[1])
        except redis.exceptions.RedisError:
            continue
        finally:
            client.close()
    raise AssertionError("no live node answers CLUSTER SLOTS")


@pytest.mark.cluster
@pytest.mark.parametrize("fault", ["kill", "failover"])
async def test_cluster_failover_under_load_loses_and_repeats_nothing(
        cluster_with_replicas: tuple[RedisClusterProcesses, str], tmp_path: Path, fault: str) -> None:
    # Given two worker nodes and a producer under steady load on a cluster of 3 masters + 3 replicas
    cluster, prefix = cluster_with_replicas
    settings = fleet_settings(cluster.url, prefix, cluster=True, partitions=PARTITIONS)
    app = Baton(settings)
    stream_slot = keyslot(app.keys.submit_stream)
    victim = cluster.nodes[0]
    assert _master_of(cluster, stream_slot) == victim.port
    fleet = Fleet(settings, tmp_path).start()
    try:
        await fleet.working(app, STEADY)
        # When the master of the submission stream and of partition 0 is killed (kill -9), or demoted
        # by a manual failover (CLUSTER FAILOVER on its replica: it answers MOVED from then on)
        if fault == "kill":
            victim.kill()
        else:
            replica = cluster.replicas[0]
            redis.Redis(port=replica.port).execute_command("CLUSTER", "FAILOVER")
        await eventually(lambda: _master_of(cluster, stream_slot) != victim.port, 30, interval=0.1)
        promoted = _now_ms()
        if fault == "kill":
            # the promoted replica has no replica of its own: durable writes to its slots wait
            # until the dead node is back (restarted, as Kubernetes would), now as its replica
            victim.start()
        # Then new runs complete within 10 s of the promotion, the load goes on, and every
        # acknowledged submission ends once
        counts = await fleet.recovers(app, promoted, STEADY)
    finally:
        fleet.stop_cleanly()
        await app.close()
    assert counts["acknowledged"] >= 2 * STEADY


async def test_the_demoted_master_answers_readonly(sentinel_group: SentinelGroup) -> None:
    # (the premise of the "failover" fault above: the old master lives on as a replica)
    master = sentinel_group.master
    assert master is not None
    await sentinel_failover(sentinel_group)
    await eventually(lambda: sentinel_group.current_master_port() != master.port, 30, interval=0.1)
    sentinel_group.wait_in_sync(master)
    old = aioredis.Redis(port=master.port)
    try:
        with pytest.raises(redis.exceptions.ReadOnlyError):
            await old.set("x", 1)
    finally:
        await old.aclose()


@pytest.mark.cluster
async def test_durable_writes_on_a_cluster_wait_where_they_wrote(tmp_path: Path) -> None:
    # Given a cluster of 3 masters + 3 replicas, partitions on every master, and every replica stopped
    prefix = "cdw"
    tags = [p.tag for p in Keys(prefix, PARTITIONS).partitions]
    cluster = RedisClusterProcesses().start(masters=3, replicas=3, layout=slot_layout(3, tags))
    app = Baton(fleet_settings(cluster.url, prefix, cluster=True, partitions=PARTITIONS).with_changes(
        durable_timeout_ms=300))

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        """Never runs: no node serves this app."""
    try:
        for replica in cluster.replicas:
            assert replica.proc is not None
            os.kill(replica.proc.pid, signal.SIGSTOP)
        # When runs are triggered in every partition, then none is acknowledged: no replica has it
        # (a WAIT sent to another node, on another connection, would answer at once that one has)
        for i in range(6):
            with pytest.raises(NotReplicated):
                await app.trigger("noop", id=f"run-{i}")
    finally:
        for replica in cluster.replicas:
            if replica.proc is not None:
                os.kill(replica.proc.pid, signal.SIGCONT)
        await app.close()
        cluster.stop()
