"""A drain that stops the intake in the middle of its create call: what the call leased to the node starts.

The intake's runs_create leases the runs it creates to its own node when that node waits for work, and
returns them in the reply. A drain cancels the intake at once: cut between that call and the delivery of
its reply, the runs were leased to no handler, and once their leases expired the reaper charged each a
crashed attempt (seen in a rolling update under load, tests/chaos: "crashed" 1, where 0 must hold).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.supervisor import Supervisor
from runtime import RunContext
from runtime.creation import Created
from runtime.metrics import Metrics
from runtime.submission import RunSpec
from tests.nodes import eventually


async def test_runs_a_cancelled_intake_create_leased_to_the_node_start_before_it_drains(
        make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a node waiting for work, whose intake's create reply comes late (the drain comes meanwhile)
    app = make_app()

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> str:
        return "done"

    made = asyncio.Event()
    create_leasing = app.create_leasing

    async def late_reply(specs: list[RunSpec], node_id: str, raise_rejected: bool = True) -> Created:
        created = await create_leasing(specs, node_id, raise_rejected)
        made.set()
        await asyncio.sleep(0.5)
        return created

    # (undone at teardown: left on the app, the wrapper holding the app's own method made a reference cycle
    # the collector freed during a later test, tests/integration/test_cyclic_garbage.py)
    monkeypatch.setattr(app, "create_leasing", late_reply)
    node = Supervisor(app, Metrics())
    running = asyncio.create_task(node.run())
    await asyncio.wait_for(node.started.wait(), 10)
    partition = app.keys.partitions[0]
    await eventually(lambda: app.redis.exists(partition.waiter(app.settings.node_id)), 10, interval=0.02)
    # When a run arrives through the stream, its create leases it to this node, and the node is stopped
    entry = (await app.redis.xadd(app.keys.submit_stream, {"job": "noop", "input": "{}"})).decode()
    await asyncio.wait_for(made.wait(), 10)
    leased = await app.get_run(entry)
    assert leased is not None and leased.status == "executing", leased
    node.request_shutdown()
    await asyncio.wait_for(running, 30)
    # Then the node ran it before it exited: completed in one attempt, nothing left leased to a gone node
    run = await app.get_run(entry)
    assert run is not None and run.status == "completed", run
    assert [a.status for a in run.attempts] == ["completed"], run.attempts
