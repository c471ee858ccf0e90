"""Redis out past a lease, back for less than its grace, out again: the holder of a lease that
lapsed in the first outage keeps it through both, and renews it as soon as it reaches Redis."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.chaos.proxy import FaultProxy
from runtime import RunContext
from tests.nodes import eventually, running_node


async def _redis_ms(app: Any) -> int:
    seconds, micros = await app.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_a_lease_lapsed_in_an_outage_survives_a_second_outage_inside_its_grace(
        make_app: Any, proxy: FaultProxy) -> None:
    # Given a node reaching Redis through a proxy, renewing its 2 s leases only every second (the most allowed), and
    # running a one-attempt run (a reaped lease would end it dead-lettered)
    node_app = make_app(redis_url=proxy.url, renew_interval_ms=1000)
    fleet = make_app()  # (this test's own view of Redis, and a second reaper)
    go_on = asyncio.Event()

    @node_app.job(max_attempts=1, timeout=60)
    async def holds(ctx: RunContext, payload: Any) -> str:
        await go_on.wait()
        return "done"

    async with running_node(node_app):
        run_id = await fleet.trigger("holds", {})
        p = fleet.keys.partition_of_run(run_id)
        await eventually(lambda: _status_is(fleet, run_id, "executing"), 10)
        await eventually(lambda: fleet.redis.hexists(p.reaper, "seen"), 10)  # (the node has reaped there)

        async def quiet_past_the_lease() -> bool:
            """No reaper reached the partition for longer than a lease, and the run's lease lapsed."""
            now = await _redis_ms(fleet)
            seen = int(await fleet.redis.hget(p.reaper, "seen"))
            expires = int(await fleet.redis.hget(p.run(run_id), "lease_expires_at"))
            return now - seen > 2200 and expires < now

        # When Redis is out for the node past its lease (its renewals and reaping stop)
        proxy.blackhole()
        try:
            await eventually(quiet_past_the_lease, 10)
            # ... a reaper elsewhere reaches Redis first: the gap begins a grace, and reaps nothing
            first = await fleet.scripts.reap(p)
            assert first.gap_ms > 2000 and first.grace_ms > 0 and first.runs == []
            # ... and Redis is out again for longer than a lease before the holder got through
            await eventually(quiet_past_the_lease, 10)
            second = await fleet.scripts.reap(p)
            # Then the second gap extends the grace instead of reaping the lease the first one was for
            assert second.gap_ms > 2000 and second.grace_ms > 0 and second.runs == [], second
            assert await _status_is(fleet, run_id, "executing")
        finally:
            proxy.heal()
        # And once the node reaches Redis, it renews the lease within that grace (not at its next
        # regular renewal, up to 1 s on), so no reaper takes it after
        healed_at = await _redis_ms(fleet)
        renewed_at = await eventually(lambda: _renewed_since(fleet, p.run(run_id), healed_at), 10)
        assert renewed_at < int(await fleet.redis.hget(p.reaper, "grace_until"))
        assert (await fleet.scripts.reap(p)).runs == []
        go_on.set()
        run = await node_app.wait_for(run_id, 15)
    assert (run.status, run.output, [a.status for a in run.attempts]) == ("completed", "done", ["completed"])


async def _status_is(app: Any, run_id: str, status: str) -> bool:
    run = await app.get_run(run_id)
    return run is not None and run.status == status


async def _renewed_since(app: Any, run_key: str, at_ms: int) -> int:
    """When the run's lease was last renewed (Redis ms), if after ``at_ms``; else 0."""
    renewed = int(await app.redis.hget(run_key, "heartbeat_at") or 0)
    return renewed if renewed > at_ms else 0
