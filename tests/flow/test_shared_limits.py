"""Named limits shared by jobs (pools, shared rates) across worker processes, changed at runtime, under kill -9."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from runtime import Baton, Settings
from runtime.shared_limits import read_shared_limit
from tests.flow.shared_app import POOL_SIZE, SHARED_RATE
from tests.flow.shared_app import app as shared_app
from tests.integration.test_processes import worker_env
from tests.nodes import eventually, kill_process, lease_starts, spawn_worker, stop_process

APP = "tests.flow.shared_app:app"


def _producer(settings: Settings) -> Baton:
    app = Baton(settings)
    for job in shared_app.jobs:
        app.jobs.add(job.name, job.handler, job.options)
    return app


async def _completed(app: Baton, n: int, timeout: float = 30) -> None:
    async def done() -> bool:
        return (await app.count_by_status()).get("completed", 0) >= n
    await eventually(done, timeout, interval=0.1)


async def _pool_spans(redis: Any, settings: Settings) -> list[tuple[int, int]]:
    """(start, end) of every attempt that ended, from the handlers' records (Redis clock)."""
    begun: dict[str, int] = {}
    spans = []
    for raw in await redis.lrange(f"{settings.prefix}:test:pool-events", 0, -1):
        kind, run_id, at, _node = raw.decode().split()
        if kind == "start":
            begun[run_id] = int(at)
        elif run_id in begun:
            spans.append((begun.pop(run_id), int(at)))
    return spans


def _most_at_once(spans: list[tuple[int, int]]) -> int:
    """The most attempts running at one moment (an end at t comes before a start at t)."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    return max(itertools.accumulate(d for _, d in edges))


async def test_pool_and_rate_are_shared_across_three_workers_changed_at_runtime_and_survive_kill_9(
        settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given three worker processes (10 slots each) running two jobs in pool "gpu" of 2
    app = _producer(settings)
    victim: int | None = None  # the worker killed while it holds a slot
    procs = [spawn_worker(APP, worker_env(settings, f"w{i}"), tmp_path / f"{i}.log") for i in range(3)]
    events = f"{settings.prefix}:test:pool-events"
    try:
        # When 20 runs of each job arrive at once
        await app.trigger_batch([{"job": job} for _ in range(20) for job in ("gpu_a", "gpu_b")])
        await _completed(app, 40)
        spans = await _pool_spans(redis, settings)
        # Then never more than 2 ran at once across the three processes, and the pool was used to its size
        assert len(spans) == 40 and _most_at_once(spans) == POOL_SIZE
        # When the pool is made 3 at runtime, every node takes the new size at once
        await redis.delete(events)
        await app.set_shared_limit("gpu", pool_size=3)
        await app.trigger_batch([{"job": job} for _ in range(15) for job in ("gpu_a", "gpu_b")])
        await _completed(app, 70)
        spans = await _pool_spans(redis, settings)
        assert len(spans) == 30 and _most_at_once(spans) == 3
        # When runs of two jobs sharing the rate "openai" (20 a second) arrive at once
        rated = await app.trigger_batch([{"job": job} for _ in range(10) for job in ("rate_a", "rate_b")])
        await _completed(app, 90)
        starts = [raw.decode().split() for raw in await redis.lrange(f"{settings.prefix}:test:rate-starts", 0, -1)]
        assert {job for job, _ in starts} == {"rate_a", "rate_b"} and len(starts) == 20
        # Then the leases of both jobs together are spaced 1/20 s apart (GCRA, by the Redis clock at the
        # claim): 20 starts take about a second. (The handlers' own start times add each process's
        # scheduling delay between lease and start, a few ms on a loaded machine.)
        times = await lease_starts(app, rated)
        assert len(times) == 20
        assert min(b - a for a, b in itertools.pairwise(times)) >= 1000 // SHARED_RATE - 1
        assert (times[-1] - times[0]) <= 19 * 1000 // SHARED_RATE + 400
        # When a worker is killed with SIGKILL while it holds a slot of the pool
        await redis.delete(events)
        await app.trigger_batch([{"job": job, "input": {"sleep": 0.1}} for _ in range(10)
                                 for job in ("gpu_a", "gpu_b")])

        async def a_worker_holding_a_slot() -> str | None:
            # whichever worker got one of these runs (the claims race; any of the three may win them all)
            marks = [e.decode().split() for e in await redis.lrange(events, 0, -1)]
            ended = {e[1] for e in marks if e[0] == "end"}
            holding = sorted(e[3] for e in marks if e[0] == "start" and e[1] not in ended)
            return holding[0] if holding else None
        victim = int((await eventually(a_worker_holding_a_slot, 30, interval=0.01))[1:])
        kill_process(procs[victim])
        await _completed(app, 110)
    finally:
        codes = [stop_process(p) for i, p in enumerate(procs) if i != victim]
        if victim is not None:
            stop_process(procs[victim])
    assert codes == [0, 0]
    # Then the pool held across the crash (attempts that ended never overlapped more than 3), the killed
    # attempt ran again, the slot came back (its lease expired and was reaped): the pool set is empty, and
    # reconcile finds nothing to repair
    spans = await _pool_spans(redis, settings)
    assert len(spans) >= 20 and _most_at_once(spans) <= 3
    assert [r for r in await app.list_status("completed", limit=200) if r.attempt > 1]
    assert await redis.scard(app.keys.partitions[0].pool_leases("gpu")) == 0
    assert await app.reconcile() == {"total": 0, "leased": 0, "concurrency": 0, "ready": 0}
    state = await read_shared_limit(app, "gpu")
    assert state is not None and state["effective"]["pool_size"] == 3 and state["pool_leased"] == 0
    assert state["jobs"] == ["gpu_a", "gpu_b"] and state["registered"]["pool_size"] == POOL_SIZE
    await app.close()
