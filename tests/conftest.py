"""Shared fixtures: real servers started by the tests, per-test key prefixes, apps."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.chaos.proxy import FaultProxy
from runtime import Baton, Settings
from tests import nodes
from tests.garbage import alive_ours
from tests.servers import RedisClusterProcesses, RedisProcess, free_port, stop_leftovers

#: how long before pytest-timeout fails a test its live asyncio tasks are printed
TASK_DUMP_LEAD_S = 15.0


def _awaits(task: asyncio.Task[Any]) -> list[str]:
    """Where a task waits: each coroutine of its await chain (file:line), then what the innermost awaits."""
    lines: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(lines) < 40:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            lines.append(f"    awaits {awaited!r}"[:300])
            break
        lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return lines


def _unfinished_task(obj: object) -> bool:
    """Whether ``obj`` is an unfinished asyncio task (a dead weak proxy among gc's objects says no: an
    isinstance check on one raises, which stopped the first dump a hung test got)."""
    try:
        return isinstance(obj, asyncio.Task) and not obj.done()
    except ReferenceError:
        return False


def _dump_live_tasks(test: str) -> None:
    """Print where every unfinished asyncio task waits, from a thread: a hung test's loop sits idle
    in select, and pytest-timeout's own stack dump shows only that, not what each task awaits."""
    tasks = [o for o in gc.get_objects() if _unfinished_task(o)]
    print(f"\n--- {test}: {len(tasks)} unfinished asyncio task(s), {TASK_DUMP_LEAD_S:.0f} s before its timeout ---",
          file=sys.stderr)
    for task in tasks:
        try:
            print("\n".join([f"{task.get_name()}:", *_awaits(task)]), file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - a frame changing under us: the dump is best effort
            print(f"{task!r}: not readable ({exc!r})", file=sys.stderr)
    sys.stderr.flush()


@pytest.fixture(autouse=True)
def _tasks_dumped_before_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    """Arm a timer that prints the live asyncio tasks shortly before the test's timeout."""
    marker = request.node.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else float(request.config.getini("timeout") or 0)
    if timeout <= TASK_DUMP_LEAD_S:
        yield
        return
    timer = threading.Timer(timeout - TASK_DUMP_LEAD_S, _dump_live_tasks, args=(request.node.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test's report carries the tails of the worker logs it made (tests/nodes.py)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and nodes.spawned_logs:
        report.sections.append(("worker logs", nodes.log_tails()))


@pytest.fixture(autouse=True)
def _spawned_logs_forgotten() -> Iterator[None]:
    """Each test's report names only the workers it started."""
    nodes.spawned_logs.clear()
    yield


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
async def proxy(redis_server: RedisProcess) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of the session server (bench/chaos/proxy.py): a node given its
    URL can be cut off from Redis (black-holed, dropped) and healed, with no other test affected."""
    proxy = await FaultProxy(redis_server.port, free_port()).start()
    yield proxy
    await proxy.stop()


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
    before its stop(): the server would outlive the run), and remove the directories left of servers."""
    left = stop_leftovers()
    if left:
        print(f"\ntests/conftest.py: stopped {len(left)} server(s) a test left running: pids {left}", file=sys.stderr)


@pytest.fixture
def cyclic_garbage() -> Iterator[None]:
    """While the test runs, the collector keeps what it frees in gc.garbage (gc.DEBUG_SAVEALL):
    a test collects, clears gc.garbage, does its work, collects again and reads it. Baton's objects
    alive as it starts are held until it ends: an earlier test's, still referenced by something of
    that test's that ends later (a thread, a timer), were otherwise freed, and reported, in this one."""
    gc.collect()
    gc.garbage.clear()
    earlier = alive_ours()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        del earlier
