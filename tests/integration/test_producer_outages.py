"""A producer's memory of partitions out (``Baton.outages``, runtime/partition_outages.py), against one
real redis-server: what a whole-server outage does to it, and that it never outlives its probes.
(Runs drawn away from a lost Cluster master: tests/integration/test_cluster_partial.py.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis

from runtime import Baton, RunContext, Settings
from runtime.redis_faults import is_outage
from tests.nodes import eventually
from tests.servers import RedisProcess


def _producer(server: RedisProcess) -> Baton:
    app = Baton(Settings(redis_url=server.url, prefix="bt", partitions=3, metrics_port=0))

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        return None

    return app


async def test_a_server_outage_puts_every_partition_out_until_it_answers(caplog: pytest.LogCaptureFixture) -> None:
    # Given a producer of 3 partitions on one server, which it has used
    server = RedisProcess().start()
    app = _producer(server)
    try:
        await app.trigger("noop")
        # When the server goes down
        server.kill()
        # Then a trigger fails on the outage, and every partition is out (one server holds them all),
        # said once, without claiming that other partitions go on
        with caplog.at_level(logging.WARNING, logger="baton.client"), pytest.raises(redis.RedisError) as failed:
            await app.trigger("noop")
        assert is_outage(failed.value), repr(failed.value)
        assert set(app.outages.out_now) == {0, 1, 2}
        said = [r.getMessage() for r in caplog.records if r.name == "baton.client"]
        assert len(said) == 1 and said[0].endswith("paused there, no other is left"), said
        # And the next trigger is still tried (no partition to draw into: it fails as any call would)
        with pytest.raises(redis.RedisError):
            await app.trigger("noop")
        # When the server answers again, its probes bring the partitions back, and triggers work
        server.start()
        await eventually(lambda: not app.outages.out_now, timeout=10, interval=0.05)
        run_id = await app.trigger("noop")
        assert (await app.get_run(run_id)) is not None
    finally:
        await app.close()
        server.stop()


async def _outage_met(app: Baton, server: RedisProcess) -> None:
    """The producer triggers a run, its server dies, and its next trigger fails on that."""
    await app.trigger("noop")
    server.kill()
    with pytest.raises(redis.RedisError):
        await app.trigger("noop")
    assert set(app.outages.out_now) == {0, 1, 2}


@pytest.mark.parametrize("ended_by", ["its loop", "app.close()"])
def test_partitions_are_out_only_while_their_probes_run(ended_by: str) -> None:
    # Given a producer whose calls found its server down
    server = RedisProcess().start()
    app = _producer(server)

    async def meet_an_outage() -> None:
        await _outage_met(app, server)
        if ended_by == "app.close()":
            await app.close()

    try:
        # When its probes end: the event loop they ran on ends (asyncio.run's cancels them), or the
        # app is closed
        asyncio.run(meet_an_outage())
        # Then the partitions are forgotten: none stays out with no probe to bring it back (the next
        # call that fails finds them again)
        assert not app.outages.out_now
    finally:
        server.stop()
