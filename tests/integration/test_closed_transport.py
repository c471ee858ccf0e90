"""A connection the server closed, written to under uvloop (the node's loop), is a lost connection:
redis-py's retry reconnects instead of an unexpected RuntimeError reaching the caller (found by the
chaos suite's Sentinel failover, where it made an actor crash count against the restart budget)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop

from runtime.closed_transport import closed_transport
from runtime.connection import connect
from runtime.direct_calls import DirectCalls
from runtime.redis_faults import is_outage
from tests.servers import RedisClusterProcesses, RedisProcess


def _on_uvloop(test: Callable[[], Awaitable[Any]]) -> Any:
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(test())
    finally:
        loop.close()


async def _close_transports(pool: Any) -> None:
    """Close every idle connection's transport under redis-py's feet, as a server gone away would
    (the connections still count as connected)."""
    for conn in pool._available_connections:
        conn._writer.transport.close()
    await asyncio.sleep(0.05)  # the loop marks them closed


@pytest.fixture(params=["redis", "unix"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server's URL over TCP, or over a unix socket (a server of the test's own)."""
    if request.param == "redis":
        yield f"redis://127.0.0.1:{request.getfixturevalue('redis_server').port}"
        return
    server = RedisProcess()
    socket = server.dir / "redis.sock"
    server.args = ["--unixsocket", str(socket), "--unixsocketperm", "700"]
    server.start()
    try:
        yield f"unix://{socket}"
    finally:
        server.stop()


def test_a_closed_transport_is_reconnected_through_the_client(server_url: str) -> None:
    async def scenario() -> list[Any]:
        # Given a client (TCP or unix socket) whose pooled connection's transport was closed
        client = connect(server_url)
        try:
            assert await client.ping()
            await _close_transports(client.connection_pool)
            # When commands are sent, through redis-py and through DirectCalls
            direct = DirectCalls(client)
            replies = [await client.set("closed-transport", "1"), await client.get("closed-transport")]
            await _close_transports(client.connection_pool)
            replies.append(await direct.execute("GET", "closed-transport"))
            await direct.release()
            return replies
        finally:
            await client.aclose()

    # Then they succeed on a new connection
    assert _on_uvloop(scenario) == [True, b"1", b"1"]


def test_a_closed_transport_is_reconnected_on_a_cluster(redis_cluster: RedisClusterProcesses) -> None:
    async def scenario() -> list[Any]:
        # Given a cluster client whose nodes' pooled connections' transports were closed
        client = connect(redis_cluster.url, cluster=True)
        try:
            keys = [f"closed-transport-{i}" for i in range(6)]  # (on more than one node)
            for key in keys:
                await client.set(key, "1")
            for node in client.get_nodes():
                for conn in node._free:
                    conn._writer.transport.close()
            await asyncio.sleep(0.05)
            # When commands are sent to every node again
            return [await client.get(key) for key in keys]
        finally:
            await client.aclose()

    # Then they succeed on new connections
    assert _on_uvloop(scenario) == [b"1"] * 6


def test_uvloops_closed_transport_error_is_an_outage() -> None:
    async def error() -> BaseException:
        # Given uvloop's own error for a write on a closed transport
        _reader, writer = await asyncio.open_connection(*server_address)
        writer.transport.close()
        await asyncio.sleep(0.05)
        try:
            writer.write(b"PING\r\n")
        except RuntimeError as exc:
            return exc
        finally:
            server.close()
        raise AssertionError("uvloop took a write on a closed transport")

    async def listen() -> tuple[Any, tuple[str, int]]:
        srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        return srv, srv.sockets[0].getsockname()[:2]

    loop = uvloop.new_event_loop()
    try:
        server, server_address = loop.run_until_complete(listen())
        exc = loop.run_until_complete(error())
    finally:
        loop.close()
    # Then it is recognised, and the supervisor rides it out like any Redis outage
    assert closed_transport(exc)
    assert is_outage(exc)
    assert not closed_transport(RuntimeError("something else"))
