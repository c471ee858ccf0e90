"""Signals and tokens survive worker crashes: kill -9 during a wait and inside a step, with messages sent
while no worker runs; each is delivered once, in order, to each of several runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from runtime import Baton, Settings
from tests.integration.test_processes import worker_env
from tests.message_apps import app as message_app
from tests.nodes import eventually, kill_process, spawn_worker, stop_process

RUNS = 8


async def test_signals_and_tokens_sent_while_workers_are_dead_are_delivered_once(
        settings: Settings, redis: Any, tmp_path: Path) -> None:
    settings = settings.with_changes(partitions=2)
    app = Baton(settings)
    for job in message_app.jobs:
        app.jobs.add(job.name, job.handler, job.options)

    def spawn(node: str) -> Any:
        env = worker_env(settings, node, BATON_PARTITIONS=2)
        return spawn_worker("tests.message_apps:app", env, tmp_path / f"{node}.log")

    async def each(calls: Any) -> list[Any]:
        return list(await asyncio.gather(*calls))

    a = spawn("A")
    b = c = None
    try:
        # Given runs on worker A, each waiting for the first of three signals
        ids = [await app.trigger("inbox", {"n": 3}) for _ in range(RUNS)]
        await each(app.wait_for(i, 20, statuses={"waiting"}) for i in ids)
        assert await each(app.signal(i, "item", 1) for i in ids) == [True] * RUNS
        # (each is queued again at once, then waits for the second)
        await each(app.wait_for(i, 20, statuses={"waiting"}) for i in ids)
        # When A is killed with SIGKILL during the second wait
        kill_process(a)
        # and, while no worker runs, the second signals arrive (into the waits), then the third (kept)
        assert await each(app.signal(i, "item", 2) for i in ids) == [True] * RUNS
        assert await each(app.signal(i, "item", 3) for i in ids) == [False] * RUNS
        # and worker B takes the runs, gives each its third signal, and is killed inside the next step
        b = spawn("B")
        await eventually(lambda: _count(redis.llen(f"{settings.prefix}:test:in-after"), RUNS), 30)
        kill_process(b)
        # and the tokens are completed while no worker runs
        tokens = [(await app.query(i))["token"] for i in ids]
        assert [r["resumed"] for r in await each(app.tokens.complete(t, {"ok": t}) for t in tokens)] == [False] * RUNS
        c = spawn("C")
        runs = await each(app.wait_for(i, 30) for i in ids)
    finally:
        if c is not None:
            assert stop_process(c) == 0
        for proc in (a, b):
            if proc is not None:
                stop_process(proc)
    # Then C finished them: every signal was delivered once, in order, and each token's data
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(f"{settings.prefix}:test:step-runs")).items()}
    for run, token in zip(runs, tokens, strict=True):
        assert run.status == "completed", run.error
        assert run.output == {"items": [1, 2, 3], "token": {"ok": token}, "node": "C"}
        # "after" ran again: it never completed on B; "before" ran once
        assert (counts[f"{run.id}:before"], counts[f"{run.id}:after"]) == (1, 2)
        assert await redis.llen(app.keys.partition_of_run(run.id).signals(run.id)) == 0
        waits = [s for s in await app.get_steps(run.id) if s["name"].startswith("__wait_signal#")]
        assert [(s["status"], s["output"]) for s in waits] == [("completed", 1), ("completed", 2), ("completed", 3)]
        assert [x.worker_id for x in run.attempts if x.status == "crashed"] == ["B"]
    await app.close()


async def _count(length: Any, wanted: int) -> bool:
    return int(await length) >= wanted
