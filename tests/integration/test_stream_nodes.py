"""Stream entries held by a node that dies or drains: two real worker processes."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from runtime import RunContext, Settings
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, running_node, spawn_worker, stop_process

#: Far longer than any wait below: entries must not move because they sat idle this long.
CLAIM_IDLE_MS = 120_000


async def read_as(redis: Any, settings: Settings, consumer: str, n: int) -> list[str]:
    """XADD n entries and read them as ``consumer`` in one transaction (no node's read gets between)."""
    keys = producer(settings).keys
    pipe = redis.pipeline(transaction=True)
    for i in range(n):
        pipe.xadd(keys.submit_stream, {"job": "noop", "input": str(i)})
    pipe.xreadgroup(keys.intake_group, consumer, {keys.submit_stream: ">"}, count=n)
    *added, got = await pipe.execute()
    assert [e[0] for e in got[0][1]] == added
    return [e.decode() for e in added]


async def beats(redis: Any, settings: Settings, node: str, count: int) -> None:
    """Wait until ``node``'s heartbeat has changed ``count`` times."""
    key = producer(settings).keys.node(node)
    seen: list[Any] = []

    async def changed() -> bool:
        value = await redis.hget(key, "heartbeat_at")
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
        return len(seen) > count

    await eventually(changed, 20, 0.05)


async def test_entries_of_a_killed_node_are_taken_once_its_heartbeat_is_gone(
    settings: Settings, redis: Any, tmp_path: Path,
) -> None:
    app = producer(settings)
    keys = app.keys
    env = {"BATON_INTAKE_CLAIM_IDLE_MS": CLAIM_IDLE_MS}
    a = spawn_worker("tests.apps:app", worker_env(settings, "A", **env), tmp_path / "a.log")
    b = spawn_worker("tests.apps:app", worker_env(settings, "B", **env), tmp_path / "b.log")
    try:
        await beats(redis, settings, "A", 1)
        await beats(redis, settings, "B", 1)
        # Given entries read by node A's intake and not yet handled
        ids = await read_as(redis, settings, "A", 5)
        # While A lives (its heartbeat keeps changing), B leaves them alone
        await beats(redis, settings, "A", 4)
        rows = await redis.xpending_range(keys.submit_stream, keys.intake_group, "-", "+", 10)
        assert {r["consumer"] for r in rows} == {b"A"} and len(rows) == 5
        # When A is killed
        assert a.poll() is None
        stop_process(a, signal.SIGKILL)
        killed = time.monotonic()

        # Then B creates their runs long before the entries could be claimed as idle
        async def created() -> bool:
            assert b.poll() is None, "node B died"
            return all([await app.get_run(rid) is not None for rid in ids])

        await eventually(created, 30, 0.1)
        waited = time.monotonic() - killed
        assert waited < CLAIM_IDLE_MS / 1000 / 4
        runs = [await app.wait_for(rid, 20) for rid in ids]
        assert {r.status for r in runs} == {"completed"}
        assert (await redis.xpending(keys.submit_stream, keys.intake_group))["pending"] == 0
    finally:
        for p in (a, b):
            stop_process(p)
        await app.close()


async def test_a_draining_process_creates_the_entries_it_read(settings: Settings, redis: Any, tmp_path: Path) -> None:
    app = producer(settings)
    keys = app.keys
    a = spawn_worker("tests.apps:app", worker_env(settings, "A", BATON_INTAKE_CLAIM_IDLE_MS=CLAIM_IDLE_MS),
                     tmp_path / "a.log")
    try:
        await beats(redis, settings, "A", 1)
        # Given entries read by A's intake and not yet handled, and no other node
        ids = await read_as(redis, settings, "A", 5)
        # When A is told to drain
        code = await asyncio.to_thread(stop_process, a, signal.SIGTERM)
    finally:
        stop_process(a)
    # Then it exited cleanly after creating their runs, and nothing is left pending
    assert code == 0
    for rid in ids:
        assert await app.get_run(rid) is not None
    assert (await redis.xpending(keys.submit_stream, keys.intake_group))["pending"] == 0
    await app.close()


async def test_an_idle_fleet_reads_no_heartbeats(make_app: Any, redis: Any) -> None:
    # Given a node whose stream's consumer group lists 30 other nodes' intakes, holding nothing, each
    # with a heartbeat (an idle fleet: every node's intakes check every other node's each second)
    app = make_app()

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        return None

    keys = app.keys
    async with running_node(app):
        await eventually(lambda: redis.exists(keys.submit_stream), 10, 0.05)
        for i in range(30):
            await redis.xgroup_createconsumer(keys.submit_stream, keys.intake_group, f"peer-{i}")
            await redis.hset(keys.node(f"peer-{i}"), "heartbeat_at", 1)
        await redis.config_resetstat()

        async def checks() -> int:
            stats = await redis.info("commandstats")
            return int(stats.get("cmdstat_xinfo|consumers", {}).get("calls", 0))

        # When its intake has checked for gone nodes three times
        await eventually(lambda: _at_least(checks(), 3), 15, 0.1)
        # Then it looked up none of their heartbeats (before: all 30 at each check;
        # the node's own work reads a few hashes)
        hgets = int((await redis.info("commandstats")).get("cmdstat_hget", {}).get("calls", 0))
        assert hgets < 30, hgets


async def _at_least(count: Awaitable[int], least: int) -> bool:
    return await count >= least
