"""ride_out against a real redis-server that is killed, stopped or out of memory: a handler's
writes wait out an outage shorter than the lease, and end the attempt once it may have expired."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from runtime.connection import connect
from runtime.errors import OutageOutlastedLease
from runtime.redis_faults import ride_out
from tests.servers import RedisProcess


@pytest.fixture
async def server() -> AsyncIterator[RedisProcess]:
    """A server of the test's own (the tests kill it, stop it and fill it)."""
    own = RedisProcess().start()
    yield own
    if own.proc is not None and own.proc.poll() is None:
        os.kill(own.proc.pid, signal.SIGCONT)  # (a test that failed while it was stopped)
    own.stop()


@pytest.fixture
async def client(server: RedisProcess) -> AsyncIterator[Any]:
    """Baton's own client (its retries and timeouts) on that server."""
    made = connect(server.url)
    yield made
    await made.aclose()


def lease(seconds: float) -> Any:
    """A time_left of ``seconds`` from now."""
    deadline = time.monotonic() + seconds
    return lambda: deadline - time.monotonic()


async def test_a_restart_shorter_than_the_lease_costs_a_wait(server: RedisProcess, client: Any) -> None:
    # Given a server that is down, coming back in 2 s (longer than the client's own retries)
    assert await client.ping()
    server.kill()
    began = time.monotonic()
    back = asyncio.get_running_loop().run_in_executor(None, lambda: (time.sleep(2.0), server.start()))
    # When a write is made with 10 s of lease left
    written = await ride_out(lambda: client.set("k", "v"), lease(10), "a test write")
    await back
    # Then it went through once the server was back
    assert written is True and time.monotonic() - began >= 1.9
    assert await client.get("k") == b"v"


async def test_a_write_refused_for_memory_goes_through_once_memory_is_back(client: Any) -> None:
    # Given a server out of memory (maxmemory 1 byte, no eviction) for 1.5 s
    await client.config_set("maxmemory", 1)

    async def lift() -> None:
        await asyncio.sleep(1.5)  # the fault's length
        await client.config_set("maxmemory", 0)

    lifting = asyncio.create_task(lift())
    # When a write is made with 10 s of lease left
    written = await ride_out(lambda: client.set("k", "v"), lease(10), "a test write")
    await lifting
    # Then it waited the spell out
    assert written is True and await client.get("k") == b"v"


async def test_a_stalled_server_ends_the_attempt_when_the_lease_may_have_expired(
        server: RedisProcess, client: Any) -> None:
    # Given a server that stops answering (SIGSTOP: the connection stays open)
    assert await client.ping()
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        # When a write is made with 1 s of lease left
        with pytest.raises(OutageOutlastedLease, match=r"^a test write: Redis unavailable until .* \(no answer\)$"):
            await ride_out(lambda: client.set("k", "v"), lease(1.0), "a test write")
        # Then it gives up with the lease, not after the client's 10 s socket timeout
        assert time.monotonic() - began < 3.0
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


async def test_an_outage_past_the_lease_ends_the_attempt(server: RedisProcess, client: Any) -> None:
    # Given a server that is down for good
    server.kill()
    began = time.monotonic()
    # When a write is made with 1.5 s of lease left
    with pytest.raises(OutageOutlastedLease, match="until the lease may have expired") as caught:
        await ride_out(lambda: client.set("k", "v"), lease(1.5), "a test write")
    # Then it gave up at about the lease's end, the outage as its cause
    assert 1.4 <= time.monotonic() - began < 4.0
    assert caught.value.__cause__ is not None


async def test_memory_refused_past_the_lease_ends_the_attempt_with_the_servers_error(client: Any) -> None:
    # Given a server out of memory for good
    await client.config_set("maxmemory", 1)
    try:
        # When a write is made with 1 s of lease left
        # Then it ends with the lease, naming what Redis answered
        with pytest.raises(OutageOutlastedLease, match=r"\(OutOfMemoryError: command not allowed when used memory"):
            await ride_out(lambda: client.set("k", "v"), lease(1.0), "a test write")
    finally:
        await client.config_set("maxmemory", 0)


async def test_with_no_lease_left_an_outage_ends_the_attempt_at_once(server: RedisProcess, client: Any) -> None:
    # Given a server that is down, and a lease that may already have expired
    server.kill()
    # When a write is made, Then the first failed try ends it
    with pytest.raises(OutageOutlastedLease):
        await ride_out(lambda: client.set("k", "v"), lease(-1), "a test write")


async def test_an_error_that_is_not_an_outage_is_raised_at_once(client: Any) -> None:
    # Given a key of another type
    await client.rpush("l", "x")
    began = time.monotonic()
    # When a command fails on it, Then the error is the caller's, with no retry
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await ride_out(lambda: client.get("l"), lease(10), "a test write")
    assert time.monotonic() - began < 0.5
