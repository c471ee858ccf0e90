"""Base for systems whose client API is synchronous (rq, huey, dramatiq, celery).

One-at-a-time calls the sync API directly; "100 in flight" runs the same call on
100 threads (the client objects are thread-safe: redis-py connection pools).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import Adapter, NotSupported


class SyncAdapter(Adapter):
    sync = True
    in_flight_api = "100 threads calling the sync API"

    def enqueue_sync(self, job: str, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def completed_sync(self, expected: int) -> int:
        raise NotImplementedError

    async def enqueue_one(self, job: str, data: dict[str, Any]) -> None:
        self.enqueue_sync(job, data)

    async def enqueue_many(self, job: str, items: Sequence[dict[str, Any]], in_flight: int) -> None:
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            for f in [pool.submit(self.enqueue_sync, job, d) for d in items]:
                f.result()

    async def enqueue_now(self, job: str, items: Sequence[dict[str, Any]]) -> None:
        """Background load: the bulk API, else the sync API one after the other (the caller paces)."""
        try:
            await self.enqueue_bulk(job, items)
        except NotSupported:
            for d in items:
                self.enqueue_sync(job, d)

    async def completed_count(self, expected: int) -> int:
        return self.completed_sync(expected)
