"""A node given a Redis that does not match its configuration stops at once with a clear error.

Each case once hung a node or would have corrupted a deployment quietly (issue 14):
a Cluster node addressed without the cluster flag, the flag without a cluster,
a partition count other nodes disagree with, a Sentinel service no sentinel
knows, and sentinels none of which answers.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

import runtime.topology as topology
from actors.supervisor import Supervisor
from bench.chaos.processes import free_port
from runtime import Baton, ConfigError, Settings
from runtime.metrics import Metrics
from tests.nodes import ROOT
from tests.servers import RedisClusterProcesses, RedisProcess


async def start_error(app: Baton, timeout: float = 20) -> ConfigError:
    """The ConfigError a node built on ``app`` stops with (fails if it starts or hangs)."""
    sup = Supervisor(app, Metrics())
    try:
        with pytest.raises(ConfigError) as raised:
            await asyncio.wait_for(sup.run(), timeout)
    finally:
        await app.close()
    assert not sup.started.is_set()
    return raised.value


async def test_a_cluster_node_without_the_cluster_flag(redis_cluster: RedisClusterProcesses,
                                                       settings: Settings) -> None:
    app = Baton(settings.with_changes(redis_url=redis_cluster.url, redis_cluster=False))
    error = await start_error(app)
    assert "is a Redis Cluster node" in str(error) and "BATON_REDIS_CLUSTER=true" in str(error)


async def test_a_plain_client_finds_a_cluster_node_by_its_redirect(redis_cluster: RedisClusterProcesses,
                                                                     prefix: str) -> None:
    # Given a plain client on each node of a cluster (the API's Redis user has no INFO right: a
    # redirect of the deployment record's key is how it finds out; the client maps MOVED to a class
    # of its own and strips the code from the message, which a check of the text missed)
    refused = []
    for node in redis_cluster.nodes:
        client = aioredis.from_url(node.url)
        try:
            await topology.check_deployment(client, f"{{{prefix}}}:deployment", Settings(partitions=1))
        except ConfigError as error:
            refused.append(str(error))
        finally:
            await client.aclose()
    # Then every node but the one holding the key's slot refuses, saying what to set
    assert len(refused) == len(redis_cluster.nodes) - 1 >= 1
    assert all("is a Redis Cluster node" in e and "BATON_REDIS_CLUSTER=true" in e for e in refused), refused


async def test_the_cluster_flag_without_a_cluster(settings: Settings) -> None:
    app = Baton(settings.with_changes(redis_cluster=True))
    error = await start_error(app)
    assert "not a Redis Cluster node" in str(error) and "BATON_REDIS_CLUSTER" in str(error)


async def test_a_partition_count_the_deployment_disagrees_with(make_app: Any) -> None:
    # Given a deployment whose first node started with 4 partitions
    first = make_app(partitions=4)
    sup = Supervisor(first, Metrics())
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(sup.started.wait(), 10)
    sup.request_shutdown()
    await asyncio.wait_for(task, 30)
    # When a node with 2 partitions starts on it
    error = await start_error(make_app(partitions=2))
    # Then it refuses, naming both counts and what to set
    assert "BATON_PARTITIONS=4" in str(error) and "has 2 partitions" in str(error)
    # And a node that agrees still starts
    again = Supervisor(make_app(partitions=4), Metrics())
    task = asyncio.create_task(again.run())
    await asyncio.wait_for(again.started.wait(), 10)
    again.request_shutdown()
    await asyncio.wait_for(task, 30)


def test_the_worker_command_says_it_in_one_line_and_exits_2(redis_server: RedisProcess, prefix: str,
                                                             tmp_path: Path) -> None:
    # Given a deployment recorded with 3 partitions
    import redis as sync_redis
    client = sync_redis.Redis.from_url(redis_server.url)
    client.hset(f"{{{prefix}}}:deployment", "partitions", 3)
    # When `baton worker` starts with 1
    proc = subprocess.run(
        [sys.executable, "-m", "runtime", "worker", "--app", "examples.jobs:app", "--redis-url", redis_server.url,
         "--prefix", prefix, "--partitions", "1", "--metrics-port", "0", "--log-format", "text"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    # Then it exits 2 with one line that says what to change, and no traceback
    lines = [line for line in proc.stderr.splitlines() if line.startswith("baton: ")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "BATON_PARTITIONS=3" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_password_redis_refuses_stops_the_process_in_one_line(tmp_path: Path, command: str) -> None:
    # Given a server that asks for a password the process does not have
    server = RedisProcess(args=["--requirepass", "right"], auth=("default", "right")).start()
    role = ["worker", "--app", "examples.jobs:app"] if command == "worker" else ["api", "--api-port", str(free_port())]
    try:
        # When `baton worker` (or `baton api`, which otherwise starts before its Redis) starts with another one
        proc = subprocess.run(
            [sys.executable, "-m", "runtime", *role,
             "--redis-url", f"redis://:wrong@127.0.0.1:{server.port}", "--metrics-port", "0", "--log-format", "text"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
    finally:
        server.stop()
    # Then it exits 2 at once, saying the credentials were refused (it does not wait for a Redis
    # that is there: waiting would not heal a password, and a pod reads its Secret only at start)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("baton: ")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "refused the user or password" in lines[0], proc.stderr[-2000:]
    assert "wrong" not in proc.stderr and "not reachable" not in proc.stderr


async def test_sentinels_that_never_answer(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given sentinel addresses where nothing listens (the wait before giving up shortened for the test)
    monkeypatch.setattr(topology, "SENTINEL_START_WAIT_S", 1.0)
    url = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/mymaster"
    error = await start_error(Baton(settings.with_changes(redis_url=url)))
    assert "no sentinel answers" in str(error) and "redis_url" in str(error).lower()
