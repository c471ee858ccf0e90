"""Durable writes whose replicas do not confirm them: what a claim leased is given back, and a partition is
not taken back into service before its master can acknowledge a durable write (a replica promoted with
none of its own answers reads and refuses every write)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from runtime import Baton, NotReplicated, RunContext, Settings
from runtime.partition_outages import PartitionOutages
from runtime.script_replies import RELEASED_BECAUSE
from tests.nodes import eventually, running_node
from tests.servers import RedisProcess


@pytest.fixture
def lone_master() -> Iterator[RedisProcess]:
    """A master no replica follows (as a replica just promoted without one of its own)."""
    server = RedisProcess().start()
    try:
        yield server
    finally:
        server.stop()


def _settings(settings: Settings, server: RedisProcess, replicas: int) -> Settings:
    return settings.with_changes(redis_url=f"redis://127.0.0.1:{server.port}/0", durable_replicas=replicas,
                                 durable_timeout_ms=50)


async def test_a_claim_its_replicas_do_not_confirm_gives_its_runs_back_uncharged(
        settings: Settings, lone_master: RedisProcess) -> None:
    # Given a queued run (created without durable writes) on a master no replica follows
    plain, durable = Baton(_settings(settings, lone_master, 0)), Baton(_settings(settings, lone_master, 1))
    for app in (plain, durable):
        @app.job(max_attempts=1)
        async def once(ctx: RunContext, payload: Any) -> None:
            pass
    try:
        run_id = await plain.trigger("once")
        p = durable.keys.partitions[0]
        # When a node's claim leases it there and the replicas do not confirm the write
        with pytest.raises(NotReplicated) as refused:
            await durable.scripts.claim(p, "n1", 10, ["default"], ["once"], 0)
        assert refused.value.reply is not None
        # Then the run is queued again and uncharged, its lease gone, its attempt recorded released: not
        # left leased to a node that never got it, to be charged a crash when the lease expires (with
        # max_attempts 1, dead-lettered without ever running)
        run = await plain.get_run(run_id)
        assert run is not None and run.status == "queued", run.status
        assert [a.status for a in run.attempts] == ["released"] and run.raw.get("charged", "0") == "0", run.raw
        # and the attempt says why (the run itself did nothing wrong: no error of its own)
        assert run.attempts[0].error == {"message": RELEASED_BECAUSE["unconfirmed"], "type": "Released"}, run.attempts
        assert run.error is None, run.error
        assert await plain.redis.zcard(p.leased) <= 1  # (the set's anchor member only)
        assert not [m for m in await plain.redis.zrange(p.leased, 0, -1) if run_id.encode() in m]
    finally:
        await plain.close()
        await durable.close()


async def test_a_master_without_the_replicas_durable_writes_need_is_not_writable(
        settings: Settings, lone_master: RedisProcess) -> None:
    for replicas, writable in ((1, False), (0, True)):
        app = Baton(_settings(settings, lone_master, replicas))
        try:
            key = app.keys.partitions[0].leased
            # When a partition's probe asks whether durable writes can be acknowledged there
            if writable:
                await app.scripts.lua.check_writable(key)
            else:
                # Then with one replica wanted and none attached, it is still out (a read answered)
                with pytest.raises(NotReplicated, match="reached 0 of 1 replica"):
                    await app.scripts.lua.check_writable(key)
        finally:
            await app.close()


async def test_a_partition_set_aside_for_writes_stays_aside_while_its_master_lacks_replicas(
        settings: Settings, lone_master: RedisProcess) -> None:
    # Given a partition set aside after a durable write its replicas did not confirm, by a duty that writes
    # and by one that only reads
    app = Baton(_settings(settings, lone_master, 1))
    log = logging.getLogger("test")
    writer, reader = PartitionOutages(app, log, "claims"), PartitionOutages(app, log, "gauge reads", writes=False)
    p = app.keys.partitions[0]
    try:
        for outages in (writer, reader):
            outages.failed(p, NotReplicated("runs_claim: the write reached 0 of 1 replica(s)"))
        # When their probes try the master, which answers reads (for over a second: several probes)
        await eventually(lambda: not reader.is_out(p.index), 10)
        deadline = asyncio.get_running_loop().time() + 1.5
        while asyncio.get_running_loop().time() < deadline:
            # Then the reader's partition is back at once, the writer's is not: a read answering there does
            # not mean a durable write can be acknowledged (before, its probe read, and claims went on
            # failing, each leasing runs nobody started)
            assert writer.is_out(p.index)
            await asyncio.sleep(0.1)
    finally:
        await writer.close()
        await reader.close()
        await app.close()


async def test_runs_handed_to_a_node_without_the_replicas_confirmation_are_given_back_uncharged(
        settings: Settings, lone_master: RedisProcess) -> None:
    # Given a node waiting for work on a master no replica follows, with durable writes of one replica
    node_app = Baton(_settings(settings, lone_master, 1).with_changes(lease_ttl_ms=2000, renew_interval_ms=500))
    producer = Baton(_settings(settings, lone_master, 0))
    ran: list[str] = []
    for app in (node_app, producer):
        @app.job(max_attempts=1)
        async def once(ctx: RunContext, payload: Any) -> None:
            ran.append(ctx.run_id)
    try:
        async with running_node(node_app):
            # When a run is created and handed to it (the producer writes without waiting for replicas)
            await eventually(lambda: producer.redis.scard(producer.keys.partitions[0].waiters("default")), 10)
            run_id = await producer.trigger("once")

            # Then the node starts nothing no replica confirmed, and gives the run back uncharged: not left
            # to expire into a crash charged to a node that never started it (with max_attempts 1, a dead
            # letter that never ran)
            async def given_back() -> bool:
                run = await producer.get_run(run_id)
                return run is not None and any(a.status == "released" for a in run.attempts)

            await eventually(given_back, 15)
            run = await producer.get_run(run_id)
        assert run is not None and "crashed" not in [a.status for a in run.attempts], run.attempts
        assert run.status != "dead_letter" and not ran
    finally:
        await producer.close()
        await node_app.close()


async def test_a_node_whose_durable_writes_stall_says_so_while_its_heartbeat_gets_through(
        settings: Settings, lone_master: RedisProcess) -> None:
    # Given a node with durable writes of one replica on a master no replica follows
    app = Baton(_settings(settings, lone_master, 1))

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        pass

    try:
        async with running_node(app) as node:
            registry = node.metrics.registry

            def skipped() -> float:
                return registry.get_sample_value("baton_partitions_out", {"actor": "fetcher"}) or 0.0

            def heartbeat() -> float:
                return registry.get_sample_value("baton_heartbeat_timestamp_seconds") or 0.0

            # Then its fetcher skips the partition, whose claims no replica can confirm (what
            # BatonPartitionsOut alerts on) ...
            await eventually(lambda: skipped() >= 1, 15)
            # ... while its heartbeats, plain writes, still get through: BatonRedisUnreachable, which reads
            # them, stays silent (before BatonPartitionsOut, no alert said the node did no work)
            first = heartbeat()
            assert first > 0
            await eventually(lambda: heartbeat() > first, 15)
            assert skipped() >= 1
    finally:
        await app.close()
