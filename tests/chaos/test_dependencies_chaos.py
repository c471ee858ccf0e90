"""Declarative dependencies under kill -9: worker processes die while parents finish, and still no
dependent is left waiting, started before its parents, or queued twice."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from runtime import Settings
from runtime.keys import LEASED_RANGE
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, kill_process, spawn_worker, stop_process

PARENTS = 40
CHILDREN = 60


async def test_kill_9_while_parents_finish_leaves_no_dependent_stuck_or_run_twice(
    settings: Settings, redis: Any, tmp_path: Path,
) -> None:
    app = producer(settings)
    rnd = random.Random(19)
    # Given parents that take 50-400 ms, and dependents of two or three of them (some of other dependents)
    parents = await app.trigger_batch([{"job": "dag_parent", "input": {"ms": rnd.randint(50, 400), "value": i}}
                                       for i in range(PARENTS)])
    children: list[str] = []
    for _ in range(CHILDREN):
        named = rnd.sample(parents + children[-10:], rnd.choice((2, 3)))
        children.append(await app.trigger("dag_child", {"parents": named}, depends_on=[
            {"id": p, "name": p} for p in named]))
    env = {"BATON_CONCURRENCY": "6"}
    a = spawn_worker("tests.apps:app", worker_env(settings, "A", **env), tmp_path / "a.log")
    b = spawn_worker("tests.apps:app", worker_env(settings, "B", **env), tmp_path / "b.log")
    c = None
    try:
        # When one worker is killed with SIGKILL while parents are finishing (and it holds some of
        # them: a worker slow to start may hold none yet), and another takes its place
        p = app.keys.partitions[0]

        async def some_done_and_a_holds_runs() -> bool:
            if (await app.count_by_status()).get("completed", 0) < 15:
                return False
            held = await redis.zrangebyscore(p.leased, *LEASED_RANGE)
            nodes = [await redis.hget(p.run(r.decode()), "lease_node") for r in held]
            return b"A" in nodes
        await eventually(some_done_and_a_holds_runs, 30, interval=0.005)
        kill_process(a)
        c = spawn_worker("tests.apps:app", worker_env(settings, "C", **env), tmp_path / "c.log")

        async def all_done() -> bool:
            return (await app.count_by_status()).get("completed", 0) == PARENTS + CHILDREN
        await eventually(all_done, 60, interval=0.2)
    finally:
        for proc in (b, c):
            if proc is not None:
                stop_process(proc)
        stop_process(a)
    # Then every dependent completed, after all of its parents, with all of their outputs
    runs = {r: await app.get_run(r) for r in parents + children}
    for child in children:
        run = runs[child]
        assert run is not None and run.status == "completed", (child, run and run.status, run and run.error)
        named = run.input["parents"]
        ends = [runs[p].finished_at_ms for p in named]  # type: ignore[union-attr]
        assert run.started_at_ms is not None and all(e is not None and e <= run.started_at_ms for e in ends)
        assert run.output == sum(runs[p].output for p in named)  # type: ignore[union-attr]
    # and each run executed at most once per attempt it was leased (none was queued twice), and once
    # for every attempt that did not crash
    counted = await redis.hgetall(f"{settings.prefix}:test:dag-executions")
    executions = {k.decode(): int(v) for k, v in counted.items()}
    for run_id, run in runs.items():
        # (an attempt that crashed with its node may have died before its handler counted it)
        assert run is not None, run_id
        ran = executions.get(run_id, 0)
        crashed = sum(a.status == "crashed" for a in run.attempts)
        assert len(run.attempts) - crashed <= ran <= len(run.attempts), (run_id, ran, run.attempts)
    # (the kill hit runs: their attempts ended crashed, and another node ran them again)
    assert any(a.status == "crashed" for r in runs.values() if r for a in r.attempts)
    # and nothing is left waiting, nor any drift in the indices
    assert await redis.zcard(p.waiting) == 0
    assert await app.reconcile() == {"total": 0, "leased": 0, "concurrency": 0, "ready": 0}
    await app.close()
