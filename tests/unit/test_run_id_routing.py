"""Which partition a run id lands in: drawn ids, routed ids, and the partitions to avoid."""

from __future__ import annotations

from runtime.ids import free_run_id, routed_run_id
from runtime.keys import Keys


def test_a_drawn_id_avoids_the_partitions_that_are_out() -> None:
    # (runs nothing pins to a partition are created on the masters that answer: runtime/partition_outages.py)
    keys = Keys("baton", 6)
    out = {0, 2, 3}
    landed = {keys.partition_of_run(free_run_id(keys, out)).index for _ in range(300)}
    assert landed == {1, 4, 5}
    # with every partition out (one server down) an id is still drawn: its call fails as any would
    assert keys.partition_of_run(free_run_id(keys, set(range(6)))).index in range(6)
    # and an id a routing key pins is not moved
    pinned = keys.partition_for("job:mail").index
    assert {keys.partition_of_run(routed_run_id(keys, "job:mail", avoid={pinned})).index for _ in range(20)} == {pinned}
