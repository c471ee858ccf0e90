"""A node's own leases that lapsed while its event loop was held (a handler blocking it, a pause): the
node's leaser renews them before its reaper looks, so its executor settles them (a blocking handler's
attempt failed, the others given back), instead of its own reaper charging each a crash of the very
node that is running it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from actors.base import Mailbox
from actors.fetcher import ready_partition
from actors.leaser import Leaser
from runtime.messages import Hold
from runtime.metrics import Metrics
from runtime.scripts import new_incarnation
from runtime.statuses import RunStatus
from tests.nodes import eventually


async def test_a_lease_that_lapsed_while_the_loop_was_held_is_renewed_before_its_own_node_reaps(
        make_app: Any, redis: Any) -> None:
    # Given a node readied in its partition, holding the lease of a run it just claimed (1 s leases)
    app = make_app(lease_ttl_ms=1000, renew_interval_ms=200, reap_interval_ms=200)

    @app.job()
    async def noop(ctx: Any, payload: Any) -> None:
        return None

    await app.register_jobs()
    p = app.keys.partitions[0]
    incarnation = new_incarnation()
    await ready_partition(app, p, incarnation)
    run_id = await app.trigger("noop")
    granted, _ = await app.scripts.claim(p, app.settings.node_id, 1, ["default"], app.served_jobs(), 0)
    assert [c.run_id for c in granted] == [run_id]
    inbox: Mailbox[Any] = Mailbox()
    leaser = Leaser(app, Metrics(), inbox, executor=Mailbox(), fetcher=Mailbox(), incarnation=incarnation)
    task = asyncio.create_task(leaser.run())
    try:
        # When its leaser has begun its duties (a renewal and a reap, both due at start) and the fetcher's
        # hold reaches it then, just before the loop is held past the lease (a handler blocking it)
        await asyncio.sleep(0)
        inbox.send_nowait(Hold(p.index, tuple(granted), time.monotonic() + 1.0))
        time.sleep(1.5)  # (the loop held: what the test is about)
        held_until = (await redis.time())[0] * 1000

        # Then, once its leaser has reaped since, the run is still leased to it, renewed (before, the duties
        # begun before the stall went on with the hold unread, and the node's own reaper charged its run a
        # crash: a blocking handler's attempt was recorded crashed, not failed)
        async def reaped_since() -> bool:
            assert not task.done(), task
            seen = await redis.hget(p.reaper, "seen")
            return seen is not None and int(seen) > held_until + 300

        await eventually(reaped_since, 10)
        run = await app.get_run(run_id)
        assert run is not None and run.status == RunStatus.EXECUTING and not run.attempts, run
        assert await redis.zscore(p.leased, run_id) is not None
    finally:
        leaser.stop()
        await asyncio.wait_for(task, 5)
