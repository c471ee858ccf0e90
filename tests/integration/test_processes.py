"""Multi-process behaviour: two workers, kill -9, SIGSTOP fencing, SIGTERM drain (Redis black-holed too),
embedded server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actors.scheduler import LEASE_TTL_MS
from bench.chaos.proxy import FaultProxy
from runtime import Baton, Settings
from runtime.script_replies import RELEASED_BECAUSE
from runtime.stop_signals import DRAIN_HAND_BACK_S, EXIT_ALLOWANCE_S, HARD_EXIT_CODE
from tests.apps import app as test_app
from tests.nodes import eventually, kill_process, spawn_worker, stop_process
from tests.servers import free_port


def worker_env(settings: Settings, node: str, **extra: Any) -> dict[str, str]:
    env = {
        "BATON_REDIS_URL": settings.redis_url, "BATON_PREFIX": settings.prefix, "BATON_NODE_ID": node,
        "BATON_LEASE_TTL_MS": str(settings.lease_ttl_ms), "BATON_RENEW_INTERVAL_MS": str(settings.renew_interval_ms),
        "BATON_REAP_INTERVAL_MS": str(settings.reap_interval_ms), "BATON_METRICS_PORT": "0",
        "BATON_LOG_FORMAT": "json", "BATON_SHUTDOWN_GRACE_S": "5",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def producer(settings: Settings) -> Baton:
    """A client app that knows the test jobs (same definitions as the workers)."""
    app = Baton(settings)
    for job in test_app.jobs:
        app.jobs.add(job.name, job.handler, job.options)
    return app


async def test_10k_stream_submissions_two_workers_exactly_once(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given 10,000 runs XADDed to the submission stream in pipelines
    app = producer(settings)
    keys = app.keys
    n = 10_000
    entry_ids: list[str] = []
    for start in range(0, n, 1000):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, start + 1000):
            pipe.xadd(keys.submit_stream, {"job": "noop", "input": f'{{"i": {i}}}'})
        entry_ids.extend(e.decode() for e in await pipe.execute())
    # When two worker processes run
    procs = [spawn_worker("tests.apps:app", worker_env(settings, f"w{i}", BATON_CONCURRENCY=100),
                          tmp_path / f"w{i}.log") for i in range(2)]
    try:
        async def all_done() -> bool:
            counts = await app.count_by_status()
            return counts.get("completed", 0) == n
        await eventually(all_done, timeout=120, interval=0.2)
    finally:
        codes = [stop_process(p) for p in procs]
    # Then every run completed once, none lost, ids derived from the entry ids
    assert codes == [0, 0]
    counts = await app.count_by_status()
    assert counts["completed"] == n and sum(counts.values()) == n
    executions = await redis.hgetall(f"{settings.prefix}:test:executions")
    assert len(executions) == n and set(executions.values()) == {b"1"}
    assert {k.decode() for k in executions} == set(entry_ids)
    sample = await app.get_run(entry_ids[1234])
    assert sample is not None and sample.output == {"i": 1234} and len(sample.attempts) == 1
    # both workers took part
    nodes = {a.worker_id for rid in entry_ids[::500] if (r := await app.get_run(rid)) for a in r.attempts}
    assert nodes == {"w0", "w1"}
    # the stream group has nothing pending
    pending = await redis.xpending(keys.submit_stream, keys.intake_group)
    assert pending["pending"] == 0
    await app.close()


async def test_kill_9_worker_run_is_reclaimed_by_other(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given a long run executing on worker A
    app = producer(settings)
    a = spawn_worker("tests.apps:app", worker_env(settings, "A"), tmp_path / "a.log")
    b = None
    try:
        run_id = await app.trigger("long", {"seconds": 60})
        started = f"{settings.prefix}:test:started"
        await eventually(lambda: redis.lrange(started, 0, -1), 20)
        # When A is killed with SIGKILL and B runs
        kill_process(a)
        killed_at = asyncio.get_running_loop().time()
        b = spawn_worker("tests.apps:app", worker_env(settings, "B"), tmp_path / "b.log")
        run = await app.wait_for(run_id, 30)
        elapsed = asyncio.get_running_loop().time() - killed_at
    finally:
        if b is not None:
            assert stop_process(b) == 0
        stop_process(a)
    # Then B completed it, with A's attempt recorded as crashed
    assert run.status == "completed" and run.output == {"node": "B", "attempt": 2}
    assert [(x.status, x.worker_id) for x in run.attempts] == [("crashed", "A"), ("completed", "B")]
    # within lease TTL + reap interval (+ process start-up of B)
    assert elapsed < (settings.lease_ttl_ms + settings.reap_interval_ms) / 1000 + 5
    await app.close()


async def test_sigstop_stale_worker_cannot_overwrite(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given worker A executing a run whose first attempt sleeps 3 s
    app = producer(settings)
    a = spawn_worker("tests.apps:app", worker_env(settings, "A"), tmp_path / "a.log")
    b = None
    started = f"{settings.prefix}:test:started"
    finished = f"{settings.prefix}:test:finished"
    try:
        run_id = await app.trigger("long", {"seconds": 3})
        await eventually(lambda: redis.lrange(started, 0, -1), 20)
        # When A is frozen past its lease TTL and B reclaims and completes the run
        os.kill(a.pid, signal.SIGSTOP)
        b = spawn_worker("tests.apps:app", worker_env(settings, "B"), tmp_path / "b.log")
        run = await app.wait_for(run_id, 30)
        assert run.output == {"node": "B", "attempt": 2}
        # and A is resumed: its handler finishes and it tries to record its result
        os.kill(a.pid, signal.SIGCONT)
        await eventually(lambda: redis.lrange(finished, 0, -1), 20)

        async def a_finished() -> bool:
            return any(x.startswith(b"%s:1:A" % run_id.encode()) for x in await redis.lrange(finished, 0, -1))

        log_a = tmp_path / "a.log"
        await eventually(lambda: b"no longer holds the run" in log_a.read_bytes()
                         or b"lease of run" in log_a.read_bytes(), 20)
    finally:
        os.kill(a.pid, signal.SIGCONT)
        if b is not None:
            stop_process(b)
        stop_process(a)
    # Then the recorded result is still B's and A's write was rejected
    final = await app.get_run(run_id)
    assert final is not None and final.status == "completed" and final.output == {"node": "B", "attempt": 2}
    assert [(x.status, x.worker_id) for x in final.attempts] == [("crashed", "A"), ("completed", "B")]
    await app.close()


async def _sigterm_once_started(redis: Any, prefix: str, worker: subprocess.Popen[bytes], runs: int,
                                fault: Callable[[], object] = lambda: None, settle_s: float = 0.0) -> tuple[int, float]:
    """Once ``runs`` handlers of tests.apps announced their start, inject ``fault`` and let it act for
    ``settle_s``, then SIGTERM the worker: its exit code and how long it took to exit (SIGKILL after 60 s)."""
    started = f"{prefix}:test:started"

    async def all_started() -> bool:
        return int(await redis.llen(started)) == runs

    await eventually(all_started, 20)
    injected = fault()
    if asyncio.iscoroutine(injected):
        await injected
    await asyncio.sleep(settle_s)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    code = await asyncio.to_thread(stop_process, worker, signal.SIGTERM, 60)
    return code, loop.time() - t0


async def test_sigterm_drains_and_gives_back_unfinished_runs(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given worker A running a short run and a run longer than its 2 s grace
    app = producer(settings)
    env = worker_env(settings, "A", BATON_SHUTDOWN_GRACE_S=2)
    a = spawn_worker("tests.apps:app", env, tmp_path / "a.log")
    short_id = await app.trigger("long", {"seconds": 0.5})
    long_id = await app.trigger("long", {"seconds": 30, "every_attempt": False})
    # When A gets SIGTERM
    code, took = await _sigterm_once_started(redis, settings.prefix, a, 2)
    # Then it exits 0 within the grace period (plus shutdown overhead)
    assert code == 0 and took < 2 + 3, took
    short = await app.get_run(short_id)
    assert short is not None and short.status == "completed"
    # and the long run went back to the queue without charging the attempt
    long_run = await app.get_run(long_id)
    assert long_run is not None and long_run.status == "queued", long_run.status
    assert long_run.attempts_charged == 0 and [x.status for x in long_run.attempts] == ["released"]
    assert long_run.attempts[0].error == {"message": RELEASED_BECAUSE["drain"], "type": "Released"}
    await app.close()


async def test_embedded_server_when_no_redis_url(tmp_path: Path) -> None:
    # Given no REDIS_URL at all
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BATON_REDIS_URL")}
    env.update({"BATON_EMBEDDED_DIR": str(tmp_path / "data"), "BATON_METRICS_PORT": "0", "BATON_LOG_FORMAT": "json",
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", "examples.jobs:app"],
                                cwd=Path(__file__).resolve().parents[2], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        # When the worker starts, then it says it runs an embedded server with AOF on
        await eventually(lambda: b"started" in log.read_bytes() and b"node " in log.read_bytes(), 30)
        text = log.read_text()
        assert "embedded" in text and "appendonly yes" in text
        assert (tmp_path / "data" / "appendonlydir").exists()
    finally:
        code = stop_process(proc)
    assert code == 0


async def test_sigterm_with_redis_black_holed_exits_within_its_deadline(settings: Settings, redis: Any,
                                                                       tmp_path: Path) -> None:
    # Given worker A, reaching Redis through a proxy, running a run longer than its 2 s grace
    proxy = await FaultProxy(int(settings.redis_url.rsplit(":", 1)[1]), free_port()).start()
    app = producer(settings)
    log = tmp_path / "a.log"
    a = spawn_worker("tests.apps:app", worker_env(settings.with_changes(redis_url=proxy.url), "A",
                                                  BATON_SHUTDOWN_GRACE_S=2), log)
    try:
        run_id = await app.trigger("long", {"seconds": 60})
        # When the route to Redis goes dead (nothing closed, no answer) and A gets SIGTERM once its calls
        # hang there (its heartbeat, every renew_interval_ms, among them: it held the drain's start once)
        code, took = await _sigterm_once_started(redis, settings.prefix, a, 1, fault=proxy.blackhole,
                                                 settle_s=3 * settings.renew_interval_ms / 1000)
        # Then it exits 0 within the grace, the hand-back allowance and a second to end its actors,
        # counted from the SIGTERM
        # (before, each of the drain's writes waited out the client's timeouts: ~3 minutes), and says why
        assert code == 0, log.read_text()[-3000:]
        assert took < 2 + DRAIN_HAND_BACK_S + 3, (took, log.read_text()[-3000:])
        assert "drain not finished" in log.read_text()
        # And the run it could not give back goes to another node once its lease expires
        proxy.heal()
        b = spawn_worker("tests.apps:app", worker_env(settings, "B"), tmp_path / "b.log")
        try:
            run = await app.wait_for(run_id, 30)
            assert run.status == "completed" and run.output == {"node": "B", "attempt": 2}, run
        finally:
            assert await asyncio.to_thread(stop_process, b) == 0
    finally:
        if a.poll() is None:
            await asyncio.to_thread(stop_process, a, signal.SIGKILL)
        await proxy.stop()
        await app.close()


#: Each handler that will not stop, and how its process ends after SIGTERM: exit code, at most how long
#: after the signal, the log line that says why, and whether the drain gave its run back. The blocking
#: handler ends by the hard deadline (grace + DRAIN_HAND_BACK_S + EXIT_ALLOWANCE_S): before, the signal
#: itself waited for it. The deaf one (its task ignores cancellation) and a plain def handler's thread (no
#: cancellation reaches it) are left once the drain gave their run back: before, the event loop's end
#: waited for the deaf one until the hard deadline, and the interpreter's exit for the thread until the
#: kubelet's SIGKILL
WONT_STOP = {
    "deaf": (0, 1 + DRAIN_HAND_BACK_S + 3, "task(s) still running after the drain", True),
    "blocks_loop": (HARD_EXIT_CODE, 1 + DRAIN_HAND_BACK_S + EXIT_ALLOWANCE_S + 3, "did not end", False),
    "deaf_thread": (0, 1 + DRAIN_HAND_BACK_S + 3, "handler thread(s) still running after the drain", True),
}


@pytest.mark.parametrize("job", list(WONT_STOP))
async def test_a_handler_that_will_not_stop_does_not_keep_its_process(settings: Settings, redis: Any,
                                                                      tmp_path: Path, job: str) -> None:
    # Given worker A running a handler that swallows every cancellation, one that blocks the event loop
    # (time.sleep in an async def), or a plain def one sleeping in its thread, for 300 s
    app = producer(settings)
    log = tmp_path / "a.log"
    a = spawn_worker("tests.apps:app", worker_env(settings, "A", BATON_SHUTDOWN_GRACE_S=1), log)
    exit_code, within_s, says, released = WONT_STOP[job]
    try:
        run_id = await app.trigger(job, {"seconds": 300})
        # When A gets SIGTERM
        code, took = await _sigterm_once_started(redis, settings.prefix, a, 1, settle_s=0.5)
        # Then the process ends in time with its code, saying why (see WONT_STOP)
        assert code == exit_code, (code, log.read_text()[-3000:])
        assert took < within_s, (took, log.read_text()[-3000:])
        assert says in log.read_text()
        if released:  # and the drain gave the run back without the handler (a blocked loop cannot)
            run = await app.get_run(run_id)
            assert run is not None and run.status == "queued" and run.attempts[-1].status == "released", run
    finally:
        if a.poll() is None:
            await asyncio.to_thread(stop_process, a, signal.SIGKILL)
        await app.close()


async def test_a_handler_abandoned_before_the_drain_does_not_keep_its_process(settings: Settings, redis: Any,
                                                                              tmp_path: Path) -> None:
    # Given worker A (a 20 s grace) where a handler that swallows every cancellation ran past its timeout and
    # was abandoned (its attempt recorded timed_out, its task left running)
    app = producer(settings)
    log = tmp_path / "a.log"
    a = spawn_worker("tests.apps:app", worker_env(settings, "A", BATON_SHUTDOWN_GRACE_S=20), log)
    try:
        run_id = await app.trigger("deaf", {"seconds": 300}, timeout=0.5, max_attempts=1)
        await eventually(lambda: "ignored cancellation" in log.read_text(), 20)
        run = await app.get_run(run_id)
        assert run is not None and [x.status for x in run.attempts] == ["timed_out"], run
        # When A gets SIGTERM, Then it ends once drained, with nothing to drain: in a second, exit code 0, saying
        # why (before, the event loop's end waited for the task until the hard deadline past the whole grace)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        code = await asyncio.to_thread(stop_process, a, signal.SIGTERM, 60)
        assert (code, loop.time() - t0 < 5) == (0, True), (code, loop.time() - t0, log.read_text()[-3000:])
        assert "task(s) still running after the drain" in log.read_text()
    finally:
        if a.poll() is None:
            await asyncio.to_thread(stop_process, a, signal.SIGKILL)
        await app.close()


async def test_a_second_sigterm_ends_the_grace_at_once(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given worker A, with a 60 s grace, draining (SIGTERM) while a 60 s run goes on
    app = producer(settings)
    log = tmp_path / "a.log"
    a = spawn_worker("tests.apps:app", worker_env(settings, "A", BATON_SHUTDOWN_GRACE_S=60), log)
    try:
        run_id = await app.trigger("long", {"seconds": 60, "every_attempt": False})

        async def first_sigterm_taken() -> None:
            # two SIGTERMs sent back to back may reach the process as one (a pending signal is not
            # queued twice): the second goes once the first has started the drain
            a.send_signal(signal.SIGTERM)
            await eventually(lambda: "shutdown requested: draining" in log.read_text(), 20)

        _, took = await _sigterm_once_started(redis, settings.prefix, a, 1, fault=first_sigterm_taken)
        # (the helper's SIGTERM is the second: the first came as its fault, once the run had started)
    finally:
        if a.poll() is None:
            await asyncio.to_thread(stop_process, a, signal.SIGKILL)
    # Then A exits 0 within seconds, not the 60 s grace, having given the run back uncharged
    assert a.returncode == 0 and took < 10, (a.returncode, took, log.read_text()[-3000:])
    assert "the grace ends now" in log.read_text()
    run = await app.get_run(run_id)
    assert run is not None and run.status == "queued", run
    assert run.attempts_charged == 0 and [x.status for x in run.attempts] == ["released"]
    await app.close()


async def test_cron_ticks_due_while_the_scheduler_lease_passes_on_are_fired_not_missed(
        settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given two workers of an app with a schedule firing every second
    app = Baton(settings)
    procs = {node: spawn_worker("tests.cron_app:app", worker_env(settings, node), tmp_path / f"{node}.log")
             for node in ("A", "B")}
    try:
        holder = (await eventually(lambda: redis.get(app.keys.scheduler_lease), 30)).decode()
        first = _next_second(time.time() * 1000)
        await eventually(lambda: app.get_run(f"cron.every_second.{first}"), 10)
        # When the holder of the scheduler lease is killed with SIGKILL
        kill_process(procs[holder])
        killed_ms = time.time() * 1000
        # Then the other node takes the lease and fires every tick: those due while the dead node's lease
        # ran out too, late but once, none counted missed
        survivor = "B" if holder == "A" else "A"
        await eventually(lambda: _holds(redis, app.keys.scheduler_lease, survivor), LEASE_TTL_MS / 1000 + 10)
        ticks = range(first, _next_second(killed_ms) + LEASE_TTL_MS + 2000, 1000)
        await eventually(lambda: app.get_run(f"cron.every_second.{ticks[-1]}"), 10)
        missing = [t for t in ticks if await app.get_run(f"cron.every_second.{t}") is None]
        assert not missing, f"ticks not fired (ms after the kill): {[t - killed_ms for t in missing]}"
        (schedule,) = await app.list_schedules()
        assert schedule["missed_count"] == 0, schedule
    finally:
        assert stop_process(procs["B" if holder == "A" else "A"]) == 0
        for proc in procs.values():
            stop_process(proc)
        await app.close()


def _next_second(ms: float) -> int:
    return (int(ms) // 1000 + 1) * 1000


async def _holds(redis: Any, key: str, node: str) -> bool:
    return await redis.get(key) == node.encode()
