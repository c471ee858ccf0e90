"""Stream entries held by a node that dies or drains: two real worker processes."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from runtime import Settings
from tests.integration.test_processes import producer, worker_env
from tests.integration.test_stream_faults import echo_app
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
    # with a heartbeat (an idle fleet: every node's intakes check every other node's each second), none
    # of them silent past the idle claim (there, a consumer holding nothing is dropped if its node is gone)
    app = echo_app(make_app, intake_claim_idle_ms=120_000)
    keys = app.keys
    peers = [keys.node(f"peer-{i}") for i in range(30)]
    async with running_node(app):
        await eventually(lambda: redis.exists(keys.submit_stream), 10, 0.05)
        for i, peer in enumerate(peers):
            await redis.xgroup_createconsumer(keys.submit_stream, keys.intake_group, f"peer-{i}")
            await redis.hset(peer, "heartbeat_at", 1)
        await redis.config_resetstat()
        written = time.monotonic()

        async def checked_for_five_seconds() -> bool:
            stats = await redis.info("commandstats")
            checks = int(stats.get("cmdstat_xinfo|consumers", {}).get("calls", 0))
            return checks >= 5 and time.monotonic() - written >= 5

        # When its intake has checked for gone nodes for five seconds (at least five times)
        await eventually(checked_for_five_seconds, 30, 0.1)
        # Then none of their heartbeats was read since they were written (OBJECT IDLETIME, seconds since
        # a key was last touched, does not touch it): before, each check read all 30 (idle 0-1 s)
        idle = [await redis.object("idletime", peer) for peer in peers]
        assert min(idle) >= 3, idle
