"""Shared fixtures: real servers started by the tests, per-test key prefixes, apps."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from runtime import Baton, Settings
from tests.servers import RedisClusterProcesses, RedisProcess, stop_leftovers


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """One server for the session; tests isolate themselves by key prefix."""
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterProcesses]:
    """A 3-master cluster for the tests that need one."""
    cluster = RedisClusterProcesses().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix: tests never flush, so they could share a server in parallel."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(redis_server: RedisProcess, prefix: str) -> Settings:
    """Fast settings for tests (short leases, quick reaping)."""
    return Settings(
        redis_url=redis_server.url, prefix=prefix, concurrency=10, lease_ttl_ms=2000,
        renew_interval_ms=500, reap_interval_ms=200, idle_poll_ms=500, metrics_port=0,
        shutdown_grace_s=5, default_timeout_s=30, intake_claim_idle_ms=2000,
    )


@pytest.fixture
async def redis(redis_server: RedisProcess) -> AsyncIterator[Any]:
    """A raw client on the session server."""
    client = aioredis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_app(settings: Settings) -> AsyncIterator[Any]:
    """Factory of apps on the test prefix; closes what it made."""
    made: list[Baton] = []

    def make(**overrides: Any) -> Baton:
        app = Baton(settings.with_changes(**overrides) if overrides else settings)
        made.append(app)
        return app

    yield make
    for app in made:
        await app.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop, by pid, any server a test started and its teardown did not stop (one that raised
    before its stop(): the server would outlive the run)."""
    left = stop_leftovers()
    if left:
        print(f"\ntests/conftest.py: stopped {len(left)} server(s) a test left running: pids {left}", file=sys.stderr)
