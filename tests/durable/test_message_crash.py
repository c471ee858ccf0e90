"""Signals and tokens survive worker crashes: kill -9 during a wait and inside a step, with messages sent
while no worker runs; each is delivered once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime import Baton, Settings
from tests.integration.test_processes import worker_env
from tests.message_apps import app as message_app
from tests.nodes import eventually, kill_process, spawn_worker, stop_process


async def test_signals_and_a_token_sent_while_workers_are_dead_are_delivered_once(
        settings: Settings, redis: Any, tmp_path: Path) -> None:
    settings = settings.with_changes(partitions=2)
    app = Baton(settings)
    for job in message_app.jobs:
        app.jobs.add(job.name, job.handler, job.options)

    def spawn(node: str) -> Any:
        env = worker_env(settings, node, BATON_PARTITIONS=2)
        return spawn_worker("tests.message_apps:app", env, tmp_path / f"{node}.log")

    a = spawn("A")
    b = c = None
    try:
        # Given a run on worker A waiting for the first of three signals
        run_id = await app.trigger("inbox", {"n": 3})
        await app.wait_for(run_id, 20, statuses={"waiting"})
        assert await app.signal(run_id, "item", 1) is True  # the run is queued again at once, then waits again
        await app.wait_for(run_id, 20, statuses={"waiting"})
        # When A is killed with SIGKILL during the second wait
        kill_process(a)
        # and, while no worker runs, the second signal arrives (into the wait), then the third (kept)
        assert await app.signal(run_id, "item", 2) is True
        assert await app.signal(run_id, "item", 3) is False
        # and worker B takes the run, gets the third signal, and is killed inside the next step
        b = spawn("B")
        await eventually(lambda: redis.lrange(f"{settings.prefix}:test:in-after", 0, -1), 30)
        kill_process(b)
        # and the token is completed while no worker runs
        token = (await app.query(run_id))["token"]
        assert (await app.tokens.complete(token, {"ok": True}))["resumed"] is False
        c = spawn("C")
        run = await app.wait_for(run_id, 30)
    finally:
        if c is not None:
            assert stop_process(c) == 0
        for proc in (a, b):
            if proc is not None:
                stop_process(proc)
    # Then C finished it: every signal was delivered once, in order, and the token's data too
    assert run.status == "completed", run.error
    assert run.output == {"items": [1, 2, 3], "token": {"ok": True}, "node": "C"}
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(f"{settings.prefix}:test:step-runs")).items()}
    assert counts == {"before": 1, "after": 2}  # "after" ran again: it never completed on B
    p = app.keys.partition_of_run(run_id)
    assert await redis.llen(p.signals(run_id)) == 0
    steps = await app.get_steps(run_id)
    waits = [s for s in steps if s["name"].startswith("__wait_signal#")]
    assert [(s["status"], s["output"]) for s in waits] == [("completed", 1), ("completed", 2), ("completed", 3)]
    assert [x.worker_id for x in run.attempts if x.status == "crashed"] == ["B"]
    await app.close()
