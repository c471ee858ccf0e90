"""Signals, queries and waitpoint tokens on a 3-master Redis Cluster: every script stays in its run's slot."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import Baton, RunContext, Settings
from tests.nodes import running_node
from tests.servers import RedisClusterProcesses

pytestmark = pytest.mark.cluster


async def test_signals_and_tokens_across_partitions_on_cluster(redis_cluster: RedisClusterProcesses,
                                                               settings: Settings) -> None:
    # Given a node on the cluster with 4 partitions and runs spread over them
    app = Baton(settings.with_changes(redis_url=redis_cluster.url, redis_cluster=True, partitions=4))

    @app.job()
    async def handshake(ctx: RunContext, payload: Any) -> Any:
        token = await ctx.create_token(timeout=60, tags=["cluster"])
        await ctx.set_state(token.id)
        hello = await ctx.wait_for_signal("hello")
        return {"hello": hello, "token": await ctx.wait_for_token(token)}

    try:
        # ids chosen so each of the 4 partitions holds 3 runs (random ids miss one 1 time in 8)
        names = (f"hs-{n}" for n in range(1000))
        chosen = [next(n for n in names if app.keys.partition_of_run(n).index == i % 4) for i in range(12)]
        ids = [await app.trigger("handshake", i, id=run_id) for i, run_id in enumerate(chosen)]
        assert ids == chosen and len({app.keys.partition_of_run(i).index for i in ids}) == 4
        async with running_node(app):
            # When each gets a signal, and its token is completed
            for i, run_id in enumerate(ids):
                await app.wait_for(run_id, 20, statuses={"waiting"})
                await app.signal(run_id, "hello", i)
            listed = {t["run_id"]: t["id"] for t in await app.tokens.list(tags=["cluster"])}
            assert set(listed) == set(ids)
            for i, run_id in enumerate(ids):
                assert await app.query(run_id) == listed[run_id]
                await app.tokens.complete(listed[run_id], -i)
            runs = [await app.wait_for(run_id, 20) for run_id in ids]
        # Then every run completed with its own messages
        assert [r.output for r in runs] == [{"hello": i, "token": -i} for i in range(12)]
    finally:
        await app.close()
