"""The load generator: a plain producer that XADDs runs to the submission stream.

Each entry carries its own run ``id``, so the checker knows exactly which runs
Baton acknowledged: an entry counts once XADD returned for it. A failed XADD
(Redis down) is sent again, with the same id, until the deadline; a retry of an
entry that did land is a duplicate Baton must absorb.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

__all__ = ["ClusterMaster", "Entry", "Load", "entry"]

#: An entry's fields besides ``id``: job, input (JSON text) and any other stream field.
Entry = dict[str, str]


class ClusterMaster:
    """Plain connections to the master owning one key's slot, found again after MOVED or a lost node
    (WAIT must go on the connection that made the write, which a cluster client does not promise)."""

    def __init__(self, url: str, key: str) -> None:
        self._cluster = RedisCluster.from_url(url)
        self._key = key
        self._client: Any = None

    async def get(self) -> Any:
        """A client of the key's master (resolved from the cluster's slot table when needed)."""
        if self._client is None:
            await self._cluster.initialize()
            node = self._cluster.get_node_from_key(self._key)
            self._client = aioredis.Redis(host=node.host, port=node.port, socket_timeout=5,
                                          socket_connect_timeout=1)
        return self._client

    async def forget(self) -> None:
        """After an error: refresh the slot table before the next entry."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        with contextlib.suppress(RedisError, OSError):
            await self._cluster.nodes_manager.initialize()

    async def aclose(self) -> None:
        """Close every connection."""
        await self.forget()
        await self._cluster.aclose()


@dataclass
class Load:
    """Submits ``total`` entries made by ``make(i)`` evenly over ``duration_s``."""

    redis: Any
    stream: str
    run_prefix: str
    total: int
    duration_s: float
    make: Callable[[int], Entry]
    #: run id -> job, for every acknowledged entry
    acked: dict[str, str] = field(default_factory=dict)
    #: XADD calls that failed (and were sent again)
    failed_calls: int = 0
    tick_s: float = 0.05
    #: replicas each batch must reach (WAIT) before it counts as acknowledged; 0: the master's reply
    wait_replicas: int = 0
    #: on Redis Cluster, plain connections to the stream's master (WAIT must go on the connection
    #: that made the writes, which the cluster client ``redis`` does not promise); None: ``redis``
    master: ClusterMaster | None = None

    def run_id(self, i: int) -> str:
        """The id entry ``i`` asks for."""
        return f"{self.run_prefix}-{i:06d}"

    async def run(self, give_up_after_s: float = 60.0) -> None:
        """Submit everything; each batch is retried until acknowledged or ``give_up_after_s`` passes."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        while sent < self.total:
            due = min(self.total, int(self.total * (loop.time() - start + self.tick_s) / self.duration_s) + 1)
            batch = [(self.run_id(i), self.make(i)) for i in range(sent, due)]
            await self._send(batch, give_up_after_s)
            sent = due
            await asyncio.sleep(self.tick_s)

    async def _send(self, batch: list[tuple[str, Entry]], give_up_after_s: float) -> None:
        deadline = time.monotonic() + give_up_after_s
        while batch:
            try:
                client = await self.master.get() if self.master is not None else self.redis
                pipe = client.pipeline(transaction=False)  # one connection: WAIT counts these XADDs
                for run_id, entry in batch:
                    pipe.xadd(self.stream, {**entry, "id": run_id})
                if self.wait_replicas:
                    pipe.execute_command("WAIT", self.wait_replicas, 2000)
                replies = await pipe.execute()
                if self.wait_replicas and int(replies[-1]) < self.wait_replicas:
                    raise RedisError(f"WAIT: {replies[-1]} of {self.wait_replicas} replicas have the entries")
            except (RedisError, RedisClusterException, OSError):
                self.failed_calls += 1
                if self.master is not None:
                    await self.master.forget()  # (moved in a failover: found again from the slot table)
                if time.monotonic() > deadline:
                    return  # never acknowledged: not counted as submitted
                await asyncio.sleep(0.1)
                continue
            for run_id, entry in batch:
                self.acked[run_id] = entry["job"]
            return


def entry(job: str, payload: Any, **fields: Any) -> Entry:
    """A stream entry for ``job`` with JSON ``payload`` and extra stream fields."""
    return {"job": job, "input": orjson.dumps(payload).decode(), **{k: str(v) for k, v in fields.items()}}
