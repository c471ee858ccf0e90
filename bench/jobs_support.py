"""What the benchmark's jobs do besides nothing: mark the first start, record pickup latency.

The no-op job of every system calls ``mark_first`` (one Redis write per worker
process, the first time only); the latency job records ``time.time() - submitted``.
Settings come from BENCH_REDIS_URL.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import FIRST_KEY, LATENCY_KEY

_marked = False
_sync: Any = None
_async: Any = None


def _sync_client() -> Any:
    global _sync
    if _sync is None:
        import redis

        _sync = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _sync


def _async_client() -> Any:
    global _async
    if _async is None:
        import redis.asyncio as aioredis

        _async = aioredis.from_url(os.environ["BENCH_REDIS_URL"])
    return _async


def mark_first() -> None:
    """Record when this process started its first job (sync; once per process)."""
    global _marked
    if not _marked:
        _marked = True
        _sync_client().rpush(FIRST_KEY, repr(time.time()))


async def amark_first() -> None:
    """Async variant of :func:`mark_first`."""
    global _marked
    if not _marked:
        _marked = True
        await _async_client().rpush(FIRST_KEY, repr(time.time()))


def record_latency(submitted: float) -> None:
    """Record start minus submit of a latency job (sync)."""
    started = time.time()
    _sync_client().rpush(LATENCY_KEY, repr(started - submitted))


async def arecord_latency(submitted: float) -> None:
    """Async variant of :func:`record_latency`."""
    started = time.time()
    await _async_client().rpush(LATENCY_KEY, repr(started - submitted))
