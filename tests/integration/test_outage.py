"""Worker processes against a real redis-server that is killed and restarted (D2, D3), and a
worker stopped past its lease (D4): the duties keep running, the node stays up, fenced work
does not start once the lease may have expired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from actors.base import Mailbox
from actors.leaser import Leaser
from runtime import Settings
from runtime.metrics import Metrics
from runtime.scripts import new_incarnation
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, spawn_worker, stop_process
from tests.servers import RedisProcess

#: a server that keeps every acknowledged write across kill -9 (as the README asks of production)
DURABLE = ["--appendonly", "yes", "--appendfsync", "always"]


def _settings(server: RedisProcess, **changes: Any) -> Settings:
    base = Settings(redis_url=server.url, prefix="bt", concurrency=5, lease_ttl_ms=6000, renew_interval_ms=1000,
                    reap_interval_ms=200, idle_poll_ms=500, metrics_port=0, shutdown_grace_s=5)
    return base.with_changes(**changes) if changes else base


def _alive(proc: subprocess.Popen[bytes], log: Path) -> bool:
    assert proc.poll() is None, f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
    return True


async def _restart_redis(server: RedisProcess, down_s: float) -> None:
    server.kill()
    await asyncio.sleep(down_s)  # the outage itself: how long Redis stays down is the fault
    server.start()


@contextlib.asynccontextmanager
async def _worker_on_durable_redis(tmp_path: Path, server_args: tuple[str, ...] = (),
                                   **env: Any) -> AsyncIterator[tuple[RedisProcess, Any, Any]]:
    """A server of our own (the tests kill it), a worker process W on it, a producer app; all stopped after."""
    server = RedisProcess(args=[*DURABLE, *server_args]).start()
    app = producer(_settings(server))
    log = tmp_path / "w.log"
    worker = spawn_worker("tests.apps:app", worker_env(app.settings, "W", BATON_CONCURRENCY=5, **env), log)
    try:
        yield server, app, lambda: _alive(worker, log)
        assert "giving up" not in log.read_text()
    finally:
        code = stop_process(worker)
        await app.close()
        server.stop()
    assert code == 0, log.read_text()[-3000:]


async def test_delayed_runs_are_promoted_after_a_redis_restart(tmp_path: Path) -> None:
    # Given a worker process on a durable server it has already used (promote/reap ticks running)
    async with _worker_on_durable_redis(tmp_path) as (server, app, alive):
        first = await app.trigger("noop", {"n": 0})
        assert (await app.wait_for(first, 20)).status == "completed"
        # When Redis is killed with SIGKILL and comes back 2 s later
        await _restart_redis(server, 2.0)
        await app.redis.connection_pool.disconnect()
        # Then runs submitted afterwards with a delay are promoted and run (the tick did not stop)
        delayed = [await app.trigger("noop", {"n": i}, delay=0.5) for i in range(1, 6)]
        for run_id in delayed:
            run = await app.wait_for(run_id, 20)
            assert run.status == "completed", (run_id, run.status)
        assert alive()


async def test_a_node_rides_out_a_redis_outage_with_every_slot_busy(tmp_path: Path) -> None:
    # Given a node whose 5 slots all run long runs (renewal every 1 s, TTL 6 s), with a small
    # restart budget so that a crash loop would end the node within seconds
    async with _worker_on_durable_redis(tmp_path, BATON_MAX_RESTARTS=2, BATON_RESTART_WINDOW_S=60) as (
            server, app, alive):
        runs = await _five_long_runs(app)
        # When Redis is down for 2 s while the leases are held
        await _restart_redis(server, 2.0)
        # Then every run completes on its first attempt (the leases were renewed after the outage),
        # and the node is still running afterwards
        for run_id in runs:
            run = await app.wait_for(run_id, 40)
            assert run.status == "completed" and run.attempt == 1, (run.status, run.attempt)
        # renewals went on for several more intervals without the leaser crash-looping
        await asyncio.sleep(3)
        assert alive()
        # And a new run still goes through
        assert (await app.wait_for(await app.trigger("noop", {"after": True}), 20)).status == "completed"


async def test_a_node_rides_out_a_redis_that_is_out_of_memory(tmp_path: Path) -> None:
    # Given a node running 5 long runs, with a small restart budget so that a crash loop would end
    # the node within seconds
    async with _worker_on_durable_redis(tmp_path, BATON_MAX_RESTARTS=2, BATON_RESTART_WINDOW_S=60) as (
            _server, app, alive):
        runs = await _five_long_runs(app)
        # When Redis refuses every write (used memory over maxmemory, no eviction) for a few seconds
        await app.redis.config_set("maxmemory", 1)
        try:
            # (a submission is refused with the server's own error)
            with pytest.raises(OutOfMemoryError):
                await app.trigger("noop", {"refused": True})
            log = tmp_path / "w.log"
            await eventually(lambda: log.read_text().count("OutOfMemoryError") >= 3, 20)
            await asyncio.sleep(2.0)  # the fault itself: more crashes than the budget allows, were they counted
            assert alive()
            # (the notifier, whose delivery loop fails, is started again, not left without it; an outage
            # is no crash: it says once that it waits for Redis)
            assert log.read_text().count("actor notifier waits for Redis") == 1
            assert "crashed" not in log.read_text()
        finally:
            await app.redis.config_set("maxmemory", 0)
        # Then the node is still running, every run completes on its first attempt, and a new run goes through
        for run_id in runs:
            run = await app.wait_for(run_id, 40)
            assert run.status == "completed" and run.attempt == 1, (run.status, run.attempt)
        assert (await app.wait_for(await app.trigger("noop", {"after": True}), 20)).status == "completed"
        assert alive()
        assert "refuses commands" not in log.read_text()  # (it was up before the fault)


async def _stepping_runs(app: Any, n: int = 5) -> list[str]:
    """``n`` one-attempt runs of many short steps, each seen past its second step."""
    runs = [await app.trigger("steady_steps", {"steps": 40, "sleep": 0.1}) for _ in range(n)]

    async def all_stepping() -> bool:
        for run_id in runs:
            run = await app.get_run(run_id)
            if run is None or run.status != "executing" or run.completed_step_count < 2:
                return False
        return True

    await eventually(all_stepping, 20)
    return runs


async def _all_executing(app: Any, runs: list[str]) -> bool:
    for run_id in runs:
        run = await app.get_run(run_id)
        if run is None or run.status != "executing":
            return False
    return True


async def _completed_on_their_only_attempt(app: Any, runs: list[str]) -> None:
    for run_id in runs:
        run = await app.wait_for(run_id, 40)
        assert (run.status, run.attempt, run.output) == ("completed", 1, {"steps": 40}), (
            run.status, [(a.status, a.error) for a in run.attempts])


async def test_steps_written_during_a_redis_restart_wait_for_it(tmp_path: Path) -> None:
    # Given a node running one-attempt runs that record a step every 0.1 s
    async with _worker_on_durable_redis(tmp_path) as (server, app, alive):
        runs = await _stepping_runs(app)
        # When Redis is down for 2 s (past the client's own retries; the lease has 6 s)
        await _restart_redis(server, 2.0)
        # Then the step writes waited for it: every run completes on its only attempt
        await _completed_on_their_only_attempt(app, runs)
        assert alive()


async def test_steps_written_while_redis_is_out_of_memory_wait_for_it(tmp_path: Path) -> None:
    # Given a node running one-attempt runs that record a step every 0.1 s
    async with _worker_on_durable_redis(tmp_path) as (_server, app, alive):
        runs = await _stepping_runs(app)
        # When Redis refuses every write for 3 s (the lease has 6 s)
        await app.redis.config_set("maxmemory", 1)
        try:
            await asyncio.sleep(3.0)  # the fault's length
        finally:
            await app.redis.config_set("maxmemory", 0)
        # Then the step writes waited it out: every run completes on its only attempt
        await _completed_on_their_only_attempt(app, runs)
        assert alive()


async def test_a_redis_stall_longer_than_the_lease_charges_no_attempt(tmp_path: Path) -> None:
    # Given a node running one-attempt runs that record a step every 0.1 s (lease TTL 6 s)
    async with _worker_on_durable_redis(tmp_path, server_args=("--enable-debug-command", "yes")) as (
            server, app, alive):
        runs = await _stepping_runs(app, 3)
        # (and two runs that only log, whose writes go out from the executor's flush loop)
        talkers = [await app.trigger("chatty", {"seconds": 12}) for _ in range(2)]
        await eventually(lambda: _all_executing(app, talkers), 20)
        # When Redis stops answering for 9 s (DEBUG SLEEP, sent once on a plain connection: a client
        # that retries would send it again), so every lease in flight expires by the Redis clock
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"DEBUG SLEEP 9\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 30) == b"+OK\r\n"
        writer.close()
        # Then no run is reaped as crashed (Redis was out, not the node): each completes, on its
        # first attempt or on the next after giving the run back uncharged
        log = tmp_path / "w.log"
        for run_id in runs:
            run = await app.wait_for(run_id, 60)
            assert (run.status, run.output) == ("completed", {"steps": 40}), (
                run.status, [(a.status, a.error) for a in run.attempts])
            assert {a.status for a in run.attempts} <= {"released", "completed"}, [a.status for a in run.attempts]
        for run_id in talkers:
            run = await app.wait_for(run_id, 60)
            assert run.status == "completed", (run.status, [(a.status, a.error) for a in run.attempts])
            assert {a.status for a in run.attempts} <= {"released", "completed"}, [a.status for a in run.attempts]
        assert "Redis itself was out" in log.read_text()
        assert alive()


async def test_a_node_registers_again_after_redis_lost_its_data(tmp_path: Path) -> None:
    # Given a worker whose start published the deployment, its jobs, their limits and its intake's group
    async with _worker_on_durable_redis(tmp_path) as (_server, app, alive):
        assert (await app.wait_for(await app.trigger("noop", {"n": 0}), 20)).status == "completed"
        partition = app.keys.partitions[0]
        assert await app.redis.hget(partition.jobs, "cc_limited")
        # When Redis loses everything (a server restarted without its data)
        await app.redis.flushall()
        # Then within a few heartbeats the node has published it all again, and says why
        await eventually(lambda: app.redis.exists(app.keys.deployment), 20)
        await eventually(lambda: app.redis.hget(partition.jobs, "cc_limited"), 20)
        assert await app.redis.hexists(app.keys.registry, "cc_limited")
        assert "registering this node's jobs" in (tmp_path / "w.log").read_text()
        # And runs go through again, submitted by a client and through the stream
        assert (await app.wait_for(await app.trigger("noop", {"n": 1}), 20)).status == "completed"
        entry_id = await app.redis.xadd(app.keys.submit_stream, {"job": "noop", "input": "{}"})
        assert (await app.wait_for(entry_id.decode(), 20)).status == "completed"
        assert alive()


async def _five_long_runs(app: Any) -> list[str]:
    """Five runs of ``long`` (8 s each), once all five have started and their leases were renewed
    since: a handler's own write at its start (seen in Redis) may still await its reply, and a
    fault injected at that moment fails the write, not the lease (a renewal comes a second later)."""
    started = f"{app.settings.prefix}:test:started"
    runs = [await app.trigger("long", {"seconds": 8}) for _ in range(5)]
    await eventually(lambda: _count(app.redis, started, 5), 20)
    first = await _lease_expiries(app, runs)

    async def renewed() -> bool:
        return all(now > before for now, before in zip(await _lease_expiries(app, runs), first, strict=True))

    await eventually(renewed, 20)
    return runs


async def _lease_expiries(app: Any, runs: list[str]) -> list[int]:
    """Each run's lease expiry (Redis ms) as its record holds it."""
    return [int(await app.redis.hget(app.keys.partition_of_run(r).run(r), "lease_expires_at") or 0) for r in runs]


async def _count(raw: Any, key: str, n: int) -> bool:
    return int(await raw.llen(key)) >= n


async def test_a_stopped_node_does_not_run_a_step_after_its_lease_expired(tmp_path: Path) -> None:
    # Given worker A inside a run between step one and step two, and worker B beside it
    server = RedisProcess().start()
    settings = _settings(server, lease_ttl_ms=2000, renew_interval_ms=1000)
    app = producer(settings)
    raw = aioredis.from_url(server.url)
    logs = {n: tmp_path / f"{n}.log" for n in "AB"}
    a = spawn_worker("tests.apps:app", worker_env(settings, "A"), logs["A"])
    b = None
    try:
        run_id = await app.trigger("pause_between_steps", {"pause_s": 0.5})
        await eventually(lambda: raw.lrange(f"{settings.prefix}:test:paused", 0, -1), 20)
        # When A is stopped (SIGSTOP) well past its lease TTL while B completes the run
        os.kill(a.pid, signal.SIGSTOP)
        b = spawn_worker("tests.apps:app", worker_env(settings, "B"), logs["B"])
        run = await app.wait_for(run_id, 30)
        assert run.status == "completed" and run.output == {"node": "B"}
        # ... and A goes on (SIGCONT) past the point where its handler reaches step two
        os.kill(a.pid, signal.SIGCONT)
        # (A notices either way: the stall guard gives the run back, a fenced step is refused, or a
        # renewal finds the lease gone)
        await eventually(lambda: any(sign in logs["A"].read_text() for sign in (
            "giving it back", "was not started", "lost")), 20)
        await asyncio.sleep(1.0)  # time for a wrongly started step two to be counted
    finally:
        if a.poll() is None:
            os.kill(a.pid, signal.SIGCONT)
        stop_process(a)
        if b is not None:
            stop_process(b)
    # Then step two ran exactly once (on B): A did not start it once its lease may have expired
    counts = {k.decode(): int(v) for k, v in (await raw.hgetall(f"{settings.prefix}:test:step-runs")).items()}
    await raw.aclose()
    await app.close()
    server.stop()
    assert counts == {f"{run_id}:1": 1, f"{run_id}:2": 1}, counts
    assert [x.status for x in run.attempts][-1] == "completed"


async def test_a_node_reloads_its_lua_after_redis_restarts_empty(tmp_path: Path) -> None:
    # Given a worker process on a server without persistence that has run a run (its Lua loaded)
    server = RedisProcess().start()
    app = producer(_settings(server))
    log = tmp_path / "w.log"
    worker = spawn_worker("tests.apps:app", worker_env(app.settings, "W", BATON_CONCURRENCY=5), log)
    raw = aioredis.from_url(server.url)
    try:
        first = await app.trigger("noop", {"n": 0})
        assert (await app.wait_for(first, 20)).status == "completed"
        assert await raw.function_list()
        # When Redis is killed and comes back empty: no data, no functions (the worker's next
        # periodic call may load some again at once, so the test does not look for none)
        await _restart_redis(server, 1.0)
        await app.redis.connection_pool.disconnect()
        await raw.connection_pool.disconnect()
        assert await app.get_run(first) is None
        # Then the next calls load the libraries again, and runs triggered and submitted through the
        # stream afterwards complete on the same node, which never exited
        assert (await app.wait_for(await app.trigger("noop", {"n": 1}), 30)).status == "completed"
        entry = (await raw.xadd(app.keys.submit_stream, {"job": "noop", "input": "{}"})).decode()
        assert (await app.wait_for(entry, 30)).status == "completed"
        assert await raw.function_list()
        assert _alive(worker, log)
    finally:
        code = stop_process(worker)
        await raw.aclose()
        await app.close()
        server.stop()
    assert code == 0, log.read_text()[-3000:]


async def test_an_outage_found_by_a_reap_whose_reply_was_lost_is_said_once(
        make_app: Any, redis: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Given a node's leaser, and a partition no reaper reached for a minute (Redis itself was out)
    app = make_app()
    metrics = Metrics()
    leaser = Leaser(app, metrics, Mailbox(), executor=Mailbox(), fetcher=Mailbox(), incarnation=new_incarnation())
    p = app.keys.partitions[0]
    seconds, _micros = await redis.time()
    await redis.hset(p.reaper, "seen", (int(seconds) - 60) * 1000)
    # When the reap call that found the gap lost its reply (sent before a stall, cut off by its bound
    # while Redis slept, run when it woke): the grace began in Redis all the same
    await app.scripts.reap(p)
    # Then the leaser's next ticks say Redis itself was out, and count it, once (before, only the call that
    # found the gap did, so a stall that outlasted the bound went unsaid)
    with caplog.at_level(logging.WARNING, logger="baton.leaser"):
        await leaser.tick()
        await leaser.tick()
    said = [r.getMessage() for r in caplog.records if "Redis itself was out" in r.getMessage()]
    assert len(said) == 1, said
    assert metrics.redis_outages_found._value.get() == 1
