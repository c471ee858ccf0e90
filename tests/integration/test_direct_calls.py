"""DirectCalls (commands on held connections) and the client's reconnect retries, on real servers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ResponseError

from runtime.connection import connect
from runtime.direct_calls import DirectCalls
from tests.servers import RedisProcess


async def test_direct_calls_reuse_one_connection_for_sequential_commands(redis_server: RedisProcess) -> None:
    # Given a client and its direct calls
    client = connect(redis_server.url)
    direct = DirectCalls(client)
    try:
        # When commands are sent one after another
        await direct.execute("SET", "dc:k", "v")
        first = await direct.execute("CLIENT", "ID")
        second = await direct.execute("CLIENT", "ID")
        # Then they ran on one held connection and the replies are raw
        assert first == second
        assert await direct.execute("GET", "dc:k") == b"v"
    finally:
        await client.aclose()


async def test_direct_calls_keep_the_connection_after_an_error_reply(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    direct = DirectCalls(client)
    try:
        before = await direct.execute("CLIENT", "ID")
        # When Redis answers with an error
        with pytest.raises(ResponseError):
            await direct.execute("INCR", "dc:counter", "extra-arg")
        # Then it is raised, and the connection goes on serving
        assert await direct.execute("CLIENT", "ID") == before
    finally:
        await client.aclose()


async def test_concurrent_direct_calls_each_get_their_own_connection(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    direct = DirectCalls(client)
    try:
        # When two calls overlap (one blocks in Redis)
        blocked = asyncio.ensure_future(direct.execute("BLPOP", "dc:list", 5))
        await asyncio.sleep(0)  # let it send
        await direct.execute("RPUSH", "dc:list", "x")
        # Then the second did not queue behind the first, and the first got the pushed value
        assert await asyncio.wait_for(blocked, 5) == [b"dc:list", b"x"]
    finally:
        await client.aclose()


async def test_a_call_cancelled_mid_flight_does_not_leak_its_reply_into_the_next(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    direct = DirectCalls(client)
    try:
        # Given a call cancelled while Redis still holds it
        pending = asyncio.ensure_future(direct.execute("BLPOP", "dc:late", 1))
        await asyncio.sleep(0.05)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        await client.execute_command("RPUSH", "dc:late", "stale")
        # Then the next call on the same DirectCalls gets its own reply, not the cancelled one's
        assert await direct.execute("ECHO", "fresh") == b"fresh"
    finally:
        await client.aclose()


async def test_direct_calls_and_pipelines_recover_after_the_server_restarts() -> None:
    # Given connections to a server, held by direct calls and idle in the pool
    server = RedisProcess().start()
    client: Any = connect(server.url)
    direct = DirectCalls(client)
    try:
        await asyncio.gather(*(client.set(f"dc:{i}", i) for i in range(4)))
        await direct.execute("PING")
        # When the server is killed and comes back on the same port
        server.kill()
        server = RedisProcess(port=server.port).start()
        # Then a direct call and a pipeline both succeed on new connections
        assert await direct.execute("ECHO", "back") == b"back"
        pipe = client.pipeline(transaction=False)
        pipe.echo("a")
        pipe.echo("b")
        assert await pipe.execute() == [b"a", b"b"]
    finally:
        await client.aclose()
        server.stop()


async def test_released_connections_go_back_to_the_pool(redis_server: RedisProcess) -> None:
    client: Any = connect(redis_server.url)
    direct = DirectCalls(client)
    try:
        # Given two connections held after two overlapping calls
        await asyncio.gather(direct.execute("ECHO", "a"), direct.execute("ECHO", "b"))
        pool = client.connection_pool
        held = len(pool._in_use_connections)
        assert held == 2
        # When they are released
        await direct.release()
        # Then the pool has them idle again, and the next direct call takes one of them
        assert len(pool._in_use_connections) == 0
        assert len(pool._available_connections) == 2
        await direct.execute("PING")
        assert len(pool._available_connections) == 1
    finally:
        await client.aclose()


async def test_a_command_sent_after_another_in_one_write_answers_and_keeps_the_connection_in_step(
        redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    direct = DirectCalls(client)
    try:
        before = await direct.execute("CLIENT", "ID")
        # When a write and then a read go in one write: both ran, the read's reply is returned
        assert await direct.execute_after(("SET", "dc:after", "1"), "GET", "dc:after") == b"1"
        # When the first fails: its error is raised, the second still ran
        with pytest.raises(ResponseError):
            await direct.execute_after(("INCR", "dc:after", "extra-arg"), "SET", "dc:second", "ran")
        assert await direct.execute("GET", "dc:second") == b"ran"
        # Then the connection stayed in step: the next reply is the next command's, on the same connection
        assert await direct.execute("CLIENT", "ID") == before
    finally:
        await client.aclose()
