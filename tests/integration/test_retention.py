"""A finished run's retention ends everywhere it is listed: its status index and its project's
index (which lists every run by creation time and used to keep an entry per run ever finished,
~120 bytes each, until a listing happened to walk past it)."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime import Baton, RunContext
from tests.nodes import eventually, running_node


async def test_runs_past_their_retention_leave_every_index(make_app: Any, redis: Any) -> None:
    # Given a node keeping finished runs for 1 s, and 30 runs of two projects that completed
    app: Baton = make_app(finished_ttl_s=1)

    @app.job()
    async def echo(ctx: RunContext, payload: Any) -> Any:
        return payload

    p = app.keys.partitions[0]
    async with running_node(app):
        ids = await app.trigger_batch([{"job": "echo", "input": n} for n in range(20)])
        # (a project is the API's: its key names it)
        ids += await app.create([await app._spec({"job": "echo", "input": n}, extra={"project": "p2"})
                                 for n in range(10)])
        for run_id in ids:
            assert (await app.wait_for(run_id, 15)).status == "completed"
        assert await redis.xlen(p.project_index("default")) == 20
        assert await redis.xlen(p.project_index("p2")) == 10
        # When their retention has ended and another run finishes (its finish trims the index)
        await asyncio.sleep(1.2)
        last = await app.trigger("echo", "last")
        assert (await app.wait_for(last, 15)).status == "completed"

        # Then the finished runs left the status index and both projects' indexes; the last one stays
        async def gone() -> bool:
            return (await redis.zrange(p.status("completed"), 0, -1) == [last.encode()]
                    and [f[b"r"] for _, f in await redis.xrange(p.project_index("default"))] == [last.encode()]
                    and await redis.xlen(p.project_index("p2")) == 0)

        assert await eventually(gone, 10)
