"""A node cut off from Redis past its lease while a reaper elsewhere reaches it first: the lease that
lapsed in the outage is the holder's for one TTL of grace, counted from that reaper's call. The
holder must renew within it, and an outage that begins before the grace is over must not cut it
short (Redis flapping)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bench.chaos.proxy import FaultProxy
from runtime import Baton, RunContext
from runtime.keys import Partition
from tests.nodes import eventually, running_node


@dataclass
class Held:
    """A one-attempt run executing on a node that reaches Redis through ``proxy`` (a reaped lease
    would end it dead-lettered), and ``fleet``, this test's own app on Redis itself: its view, and
    a second reaper."""

    fleet: Baton
    node_app: Baton
    run_id: str
    partition: Partition
    go_on: asyncio.Event

    async def redis_ms(self) -> int:
        seconds, micros = await self.fleet.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def quiet_for(self, ms: int) -> bool:
        """No reaper reached the partition for longer than ``ms``, and the run's lease lapsed."""
        now = await self.redis_ms()
        seen = int(await self.fleet.redis.hget(self.partition.reaper, "seen"))
        expires = int(await self.fleet.redis.hget(self.partition.run(self.run_id), "lease_expires_at"))
        return now - seen > ms and expires < now

    async def renewed_since(self, at_ms: int) -> int:
        """When the run's lease was last renewed (Redis ms), if after ``at_ms``; else 0."""
        renewed = int(await self.fleet.redis.hget(self.partition.run(self.run_id), "heartbeat_at") or 0)
        return renewed if renewed > at_ms else 0

    async def renewed_in_the_grace(self, healed_at_ms: int) -> None:
        """The node renews the lease before the grace in effect ends; no reaper takes it after."""
        renewed_at = await eventually(lambda: self.renewed_since(healed_at_ms), 10)
        assert renewed_at < int(await self.fleet.redis.hget(self.partition.reaper, "grace_until"))
        assert (await self.fleet.scripts.reap(self.partition)).runs == []

    async def completes_on_its_only_attempt(self) -> None:
        self.go_on.set()
        run = await self.node_app.wait_for(self.run_id, 15)
        assert (run.status, run.output, [a.status for a in run.attempts]) == ("completed", "done", ["completed"])


@contextlib.asynccontextmanager
async def _held(make_app: Any, proxy: FaultProxy, **settings: Any) -> AsyncIterator[Held]:
    node_app, fleet = make_app(redis_url=proxy.url, **settings), make_app(**settings)
    go_on = asyncio.Event()

    @node_app.job(max_attempts=1, timeout=60)
    async def holds(ctx: RunContext, payload: Any) -> str:
        await go_on.wait()
        return "done"

    async with running_node(node_app):
        run_id = await fleet.trigger("holds", {})
        held = Held(fleet, node_app, run_id, fleet.keys.partition_of_run(run_id), go_on)
        await eventually(lambda: _status_is(fleet, run_id, "executing"), 10)
        await eventually(lambda: fleet.redis.hexists(held.partition.reaper, "seen"), 10)  # (the node has reaped)
        yield held


async def test_a_lease_lapsed_in_an_outage_survives_a_second_outage_inside_its_grace(
        make_app: Any, proxy: FaultProxy) -> None:
    # Given a node renewing its 2 s leases only every second (the most allowed), holding a run
    async with _held(make_app, proxy, renew_interval_ms=1000) as held:
        p = held.partition
        # When Redis is out for the node past its lease (its renewals and reaping stop)
        proxy.blackhole()
        try:
            await eventually(lambda: held.quiet_for(2200), 10)
            # ... a reaper elsewhere reaches Redis first: the gap begins a grace, and reaps nothing
            first = await held.fleet.scripts.reap(p)
            assert first.gap_ms > 2000 and first.grace_ms > 0 and first.runs == []
            # ... and Redis is out again for longer than a lease before the holder got through
            await eventually(lambda: held.quiet_for(2200), 10)
            second = await held.fleet.scripts.reap(p)
            # Then the second gap extends the grace instead of reaping the lease the first one was for
            assert second.gap_ms > 2000 and second.grace_ms > 0 and second.runs == [], second
            assert await _status_is(held.fleet, held.run_id, "executing")
        finally:
            proxy.heal()
        # And once the node reaches Redis, it renews the lease within that grace (not at its next
        # regular renewal, up to 1 s on), so no reaper takes it after
        await held.renewed_in_the_grace(await held.redis_ms())
        await held.completes_on_its_only_attempt()


async def test_a_node_with_a_short_lease_is_back_within_its_grace_after_a_long_outage(
        make_app: Any, proxy: FaultProxy) -> None:
    # Given a node with 0.8 s leases holding a run
    async with _held(make_app, proxy, lease_ttl_ms=800, renew_interval_ms=400, reap_interval_ms=100) as held:
        # When Redis refuses the node's connections for 3 s (each probe fails at once, and they back
        # off), and a reaper elsewhere is the first back: the gap begins a grace of one TTL, 0.8 s
        await proxy.stop()
        try:
            await eventually(lambda: held.quiet_for(3000), 10)
        finally:
            await proxy.start()
        healed_at = await held.redis_ms()
        reaped = await held.fleet.scripts.reap(held.partition)
        assert reaped.gap_ms > 3000 and 0 < reaped.grace_ms <= 800 and reaped.runs == []
        # Then the node finds Redis back and renews within that grace, so no reaper takes the lease after
        await held.renewed_in_the_grace(healed_at)
        await held.completes_on_its_only_attempt()


async def _status_is(app: Any, run_id: str, status: str) -> bool:
    run = await app.get_run(run_id)
    return run is not None and run.status == status
