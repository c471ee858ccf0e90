"""The load generator: a plain producer that XADDs runs to the submission stream.

Each entry carries its own run ``id``, so the checker knows exactly which runs
Baton acknowledged: an entry counts once XADD returned for it. A failed XADD
(Redis down) is sent again, with the same id, until the deadline; a retry of an
entry that did land is a duplicate Baton must absorb.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError

__all__ = ["Entry", "Load", "entry"]

#: An entry's fields besides ``id``: job, input (JSON text) and any other stream field.
Entry = dict[str, str]


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
            pipe = self.redis.pipeline(transaction=False)
            for run_id, entry in batch:
                pipe.xadd(self.stream, {**entry, "id": run_id})
            if self.wait_replicas:
                pipe.execute_command("WAIT", self.wait_replicas, 2000)
            try:
                replies = await pipe.execute()
                if self.wait_replicas and int(replies[-1]) < self.wait_replicas:
                    raise RedisError(f"WAIT: {replies[-1]} of {self.wait_replicas} replicas have the entries")
            except (RedisError, OSError):
                self.failed_calls += 1
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
