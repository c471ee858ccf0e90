"""Per-partition submission streams: producers can XADD to any partition's stream; nothing collides or doubles."""

from __future__ import annotations

from typing import Any

from tests.integration.test_stream_faults import echo_app
from tests.nodes import eventually, running_node


async def test_every_partition_stream_is_served_and_equal_entry_ids_make_distinct_runs(
    make_app: Any, redis: Any,
) -> None:
    app = echo_app(make_app, partitions=3)
    keys = app.keys
    # Given the same explicit entry id in the node-wide stream and in each partition's stream
    await redis.xadd(keys.submit_stream, {"job": "echo", "input": '"node"'}, id="5-1")
    for p in keys.partitions:
        await redis.xadd(p.submit_stream, {"job": "echo", "input": f'"p{p.index}"'}, id="5-1")
    # When a node serves them
    async with running_node(app) as node:
        # Then each entry is its own run, named by its stream: the entry id, or <entry id>.p<N>
        assert (await app.wait_for("5-1", 15)).output == "node"
        for p in keys.partitions:
            run = await app.wait_for(p.entry_ref("5-1"), 15)
            assert (run.id, run.output, run.status) == (f"5-1.p{p.index}", f"p{p.index}", "completed")
        # And one intake per stream, each with its group, acknowledged everything
        assert sorted(i.name for i in node.intakes) == ["intake", "intake.p0", "intake.p1", "intake.p2"]
        for stream in [keys.submit_stream, *(p.submit_stream for p in keys.partitions)]:
            pending = await redis.xpending(stream, keys.intake_group)
            assert pending["pending"] == 0, stream


async def test_one_idempotency_key_through_two_partition_streams_makes_one_run(make_app: Any, redis: Any) -> None:
    app = echo_app(make_app, partitions=4)
    keys = app.keys
    # Given one submission sent twice, to two different partitions' streams
    first = (await redis.xadd(keys.partitions[0].submit_stream,
                              {"job": "echo", "input": "1", "idempotency_key": "order-7"})).decode()
    second = (await redis.xadd(keys.partitions[3].submit_stream,
                               {"job": "echo", "input": "2", "idempotency_key": "order-7"})).decode()
    async with running_node(app):
        # Then both entries resolve to one run (the key routes it to one partition, and
        # either stream's intake may create it first)
        refs = [keys.partitions[0].entry_ref(first), keys.partitions[3].entry_ref(second)]

        async def resolved() -> Any:
            runs = [await app.get_run(ref) for ref in refs]
            return runs if all(r and r.status == "completed" for r in runs) else None

        one, two = await eventually(resolved, 15)
        assert one.id == two.id and one.entry_id in refs and one.output in (1, 2)
        # And only that one run exists
        counts = [await redis.xlen(p.project_index()) for p in keys.partitions]
        assert sum(counts) == 1, counts


async def test_partition_streams_can_be_turned_off(make_app: Any, redis: Any) -> None:
    app = echo_app(make_app, partitions=2, partition_streams=False)
    async with running_node(app) as node:
        # Then only the node-wide stream is read
        assert [i.name for i in node.intakes] == ["intake"]
        run_id = (await redis.xadd(app.keys.submit_stream, {"job": "echo", "input": "3"})).decode()
        assert (await app.wait_for(run_id, 15)).output == 3
