"""Half-open connections: the server's side gone (a proxy, sidecar or NAT that lost its state), the
client's side open and silent. A command on one waits out the reply timeout and goes again on a new
connection; the first such timeout replaces every older connection to that server as it is next
used, so a node is not stalled again by each dead connection its pools still hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from bench.chaos.proxy import FaultProxy
from runtime import Baton, Settings
from runtime.connection import connect
from runtime.direct_calls import DirectCalls
from runtime.stale_connections import stale
from tests.apps import HANDLERS_REDIS_URL
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, spawn_worker, tear_down
from tests.servers import RedisClusterProcesses, RedisProcess, free_port

#: the reply timeout of the clients these tests make (s)
TIMEOUT_S = 0.5


async def _closed(app: Baton, addresses: set[str]) -> bool:
    """Whether Redis lists none of these client addresses any more."""
    return not addresses & {c["addr"] for c in await app.redis.client_list()}


async def _subscribed(app: Baton, channel: str) -> bool:
    [(_, subscribers)] = await app.redis.pubsub_numsub(channel)
    return bool(subscribers)


async def _status_is(app: Baton, run_id: str, status: str) -> bool:
    run = await app.get_run(run_id)
    return run is not None and run.status == status


async def _timed(call: Awaitable[Any]) -> float:
    started = time.monotonic()
    await call
    return time.monotonic() - started


async def test_a_reply_timeout_replaces_every_pooled_connection_opened_before_it(proxy: FaultProxy) -> None:
    # Given a client with five idle connections in its pool, all through a proxy
    client = connect(proxy.url, socket_timeout=TIMEOUT_S)
    try:
        await asyncio.gather(*(client.blpop(["nothing"], 0.1) for _ in range(5)))
        assert len(client.connection_pool._available_connections) == 5
        # When they all go half-open
        assert proxy.half_open() == 5
        # Then the first command waits out its reply timeout once, and goes again on a new connection
        first = await _timed(client.ping())
        assert TIMEOUT_S <= first < TIMEOUT_S + 1.5, first
        # And five commands at once, which take the four other dead connections from the pool, do not
        # wait: each was replaced as it was taken
        took = await asyncio.gather(*(_timed(client.ping()) for _ in range(5)))
        assert max(took) < TIMEOUT_S / 2, took
    finally:
        await client.aclose()


async def test_a_reply_timeout_replaces_the_connections_direct_calls_hold(proxy: FaultProxy) -> None:
    # Given direct calls holding three connections out of the pool, through a proxy
    client = connect(proxy.url, socket_timeout=TIMEOUT_S)
    direct = DirectCalls(client)
    try:
        await asyncio.gather(*(direct.execute("BLPOP", "nothing", 0.1) for _ in range(3)))
        # When they all go half-open, and one call times out
        assert proxy.half_open() == 3
        assert await _timed(direct.execute("PING")) >= TIMEOUT_S
        # Then three calls at once take the held connections, each replaced, and none waits
        took = await asyncio.gather(*(_timed(direct.execute("PING")) for _ in range(3)))
        assert max(took) < TIMEOUT_S / 2, took
    finally:
        await direct.release()
        await client.aclose()


async def test_a_reply_timeout_replaces_a_cluster_nodes_older_connections(tmp_path: Path) -> None:
    # Given a one-master Redis Cluster that announces a proxy's address (clients reach it only
    # through the proxy), and Baton's cluster client with five idle connections to it
    cluster = RedisClusterProcesses().start(masters=1)
    proxy = await FaultProxy(cluster.nodes[0].port, free_port()).start()
    client = None
    try:
        direct = connect(cluster.nodes[0].url)
        await direct.config_set("cluster-announce-port", proxy.port)
        await direct.aclose()
        client = connect(proxy.url, cluster=True, socket_timeout=TIMEOUT_S)
        await asyncio.gather(*(client.blpop(["{k}nothing"], 0.1) for _ in range(5)))
        [node] = client.get_nodes()
        assert node.port == proxy.port and len(node._free) == 5
        # When they all go half-open
        assert proxy.half_open() >= 5
        # Then a command waits out one reply timeout and succeeds on a new connection (a cluster node
        # hands out its connections without connect(): it took dead one after dead one, and raised
        # "cluster unreachable" after three timeouts)
        assert TIMEOUT_S <= await _timed(client.get("{k}a")) < TIMEOUT_S + 1.5
        # And five commands at once take the four other dead connections, each replaced, and none waits
        took = await asyncio.gather(*(_timed(client.get("{k}a")) for _ in range(5)))
        assert max(took) < TIMEOUT_S / 2, took
    finally:
        if client is not None:
            await client.aclose()
        await proxy.stop()
        cluster.stop()


async def test_a_connection_that_answers_after_a_reply_timeout_is_kept(redis_server: RedisProcess) -> None:
    # Given three connections of one client to a server: one will time out (it blocks for longer
    # than its reply timeout), one is idle, one answers a blocking read after the timeout
    client = connect(redis_server.url, socket_timeout=TIMEOUT_S)
    pool = client.connection_pool
    times_out, idle, answers = [await pool.get_connection() for _ in range(3)]
    try:
        for conn in (times_out, idle, answers):
            await conn.send_command("PING")
            assert await conn.read_response() == b"PONG"
        await times_out.send_command("BLPOP", "{k}nothing", TIMEOUT_S * 4)
        await asyncio.sleep(TIMEOUT_S / 2)
        await answers.send_command("BLPOP", "{k}nothing", TIMEOUT_S)
        # When the first one's reply times out, and the last one answers after that
        with pytest.raises(RedisTimeoutError):
            await times_out.read_response()
        assert await answers.read_response() is None
        # Then the idle connection is stale (replaced when next taken), and the one that answered after
        # the timeout is not: it has shown it works
        assert stale(idle) and idle.should_reconnect()
        assert not stale(answers) and not answers.should_reconnect() and answers.is_connected
    finally:
        for conn in (times_out, idle, answers):
            await pool.release(conn)
        await client.aclose()


def test_a_reply_waits_the_longest_wait_its_command_may_ask_for_plus_redis_timeout_ms() -> None:
    def timeout_of(url: str = "redis://127.0.0.1:1", **settings: Any) -> float:
        # (the client is made, not connected)
        value: float = Baton(Settings(redis_url=url, **settings)).redis.connection_pool.connection_kwargs[
            "socket_timeout"]
        return value

    # A blocking read waits up to 1 s, so by default a reply may come up to 10 s after its command
    assert timeout_of() == 10.0
    assert timeout_of(redis_timeout_ms=500) == 1.5
    # A durable write's WAIT may wait longer than a blocking read
    assert timeout_of(durable_replicas=1, durable_timeout_ms=5000) == 14.0
    # And a URL's own socket_timeout wins
    assert timeout_of("redis://127.0.0.1:1/0?socket_timeout=9") == 9.0


@pytest.mark.timeout(120)
async def test_a_node_whose_connections_went_half_open_is_back_within_its_reply_timeout(tmp_path: Path) -> None:
    # Given a worker process reaching its own redis-server through a proxy, with 1 s of reply
    # timeout past any blocking wait (2 s in all), that has run a few runs at once (its pools hold
    # several connections)
    server = RedisProcess().start()
    proxy = await FaultProxy(server.port, free_port()).start()
    app = producer(Settings(redis_url=server.url, prefix="ho", metrics_port=0))
    log = tmp_path / "w.log"
    # (the handlers' own client, the test's and not the node's, reaches the server directly: a handler
    # cancelled in a call of it on a half-open connection may take the 5 s cancel grace to end, which
    # says nothing of the node's own connections)
    env = worker_env(app.settings.with_changes(redis_url=proxy.url), "W", BATON_REDIS_TIMEOUT_MS=1000,
                     **{HANDLERS_REDIS_URL: server.url})
    worker = spawn_worker("tests.apps:app", env, log)
    loop = asyncio.get_running_loop()
    try:
        warm = await app.trigger_batch([{"job": "noop", "input": {"i": i}} for i in range(20)])
        for run_id in warm:
            assert (await app.wait_for(run_id, 30)).status == "completed"
        # When every connection it has goes half-open (its blocking reads among them), and Redis has
        # closed its side of them (a pop still blocked there would take the next run and lose it)
        upstreams = proxy.upstreams()
        assert proxy.half_open() >= 3
        started = loop.time()
        await eventually(lambda: _closed(app, upstreams), 10)
        first = await app.trigger("noop", {"after": "the fault"})
        # Then a run submitted then completes once the calls in flight have timed out (2 s here, 10 s
        # by default)
        assert (await app.wait_for(first, 30)).status == "completed"
        assert loop.time() - started < 4.5, log.read_text()[-3000:]
        # And it is not stalled again by the dead connections its pools still held: runs one after
        # another complete at once
        took = []
        for i in range(10):
            sent = loop.time()
            assert (await app.wait_for(await app.trigger("noop", {"i": i}), 30)).status == "completed"
            took.append(loop.time() - sent)
        assert max(took) < 1.0, (took, log.read_text()[-3000:])
        # And it subscribes again (its subscription went with the dead connection, and nothing would
        # ever tell it): a run cancelled while it runs ends at once, by the notice (its renewal, which
        # would also say so, is 10 s away)
        await eventually(lambda: _subscribed(app, app.keys.cancel_channel), 10)
        running = await app.trigger("long", {"seconds": 60})
        await eventually(lambda: _status_is(app, running, "executing"), 10)
        sent = loop.time()
        await app.cancel(running)
        assert (await app.wait_for(running, 30)).status == "canceled"
        assert loop.time() - sent < 2.0, log.read_text()[-3000:]
        assert "the connection counts as lost" in log.read_text()
        assert "subscribing again" in log.read_text()
        assert worker.poll() is None
    finally:
        code = await tear_down(worker, (proxy.stop, app.close), server.stop)
    assert code == 0, log.read_text()[-3000:]
