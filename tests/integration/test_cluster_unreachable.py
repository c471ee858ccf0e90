"""What the installed Redis client raises when no node of a cluster answers is an outage.

redis-py 8.2 raised a class of its own (RedisClusterUnreachableError) where 8.1 raised the bare
RedisClusterException: matched by class, the new one was not an outage, and a node whose whole
cluster restarted would have spent its restart budget and exited. This asks the real client.
"""

from __future__ import annotations

import pytest

from runtime.connection import connect
from runtime.redis_faults import is_outage
from tests.servers import RedisClusterProcesses


async def test_a_cluster_with_every_node_down_is_an_outage() -> None:
    # Given Baton's cluster client that has seen a running cluster
    cluster = RedisClusterProcesses().start()
    client = connect(cluster.url, cluster=True)
    try:
        assert await client.set("{k}a", "1")
        # When every node is gone
        for node in cluster.nodes:
            node.kill()
        # (whatever it raises: redis-py's cluster errors are not all RedisErrors)
        with pytest.raises(Exception) as caught:
            await client.get("{k}a")
        # Then what the client raises is an outage (waited out, never a reason to exit)
        assert is_outage(caught.value), (type(caught.value), caught.value)
    finally:
        await client.aclose()
        cluster.stop()
