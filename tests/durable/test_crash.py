"""A worker killed with SIGKILL in the middle of a multi-step run: finished steps never run again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime import Settings
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, kill_process, spawn_worker, stop_process


async def test_kill_9_during_step_4_steps_1_to_3_ran_once(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given worker A executing a five-step run, inside step 4
    app = producer(settings)
    a = spawn_worker("tests.apps:app", worker_env(settings, "A"), tmp_path / "a.log")
    b = None
    try:
        run_id = await app.trigger("five_steps")
        await eventually(lambda: redis.lrange(f"{settings.prefix}:test:in-step-4", 0, -1), 20)
        # When A is killed with SIGKILL and worker B takes over
        kill_process(a)
        b = spawn_worker("tests.apps:app", worker_env(settings, "B"), tmp_path / "b.log")
        run = await app.wait_for(run_id, 30)
    finally:
        if b is not None:
            assert stop_process(b) == 0
        stop_process(a)
    # Then B finished the run, steps 1-3 ran exactly once, step 4 ran again (it never completed)
    assert run.status == "completed" and run.output == {"outputs": [10, 20, 30, 40, 50], "node": "B"}
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(f"{settings.prefix}:test:step-runs")).items()}
    assert counts == {"s1": 1, "s2": 1, "s3": 1, "s4": 2, "s5": 1}
    assert [(x.status, x.worker_id) for x in run.attempts] == [("crashed", "A"), ("completed", "B")]
    steps = await app.get_steps(run_id)
    assert [s["name"] for s in steps] == ["s1", "s2", "s3", "s4", "s5"]
    await app.close()
