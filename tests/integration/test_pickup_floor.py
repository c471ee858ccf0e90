"""The benchmark's pickup floors (bench/pickup_floor.py) measure what they say, against a real server."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from bench.common import LATENCY_KEY, latency_payload
from bench.pickup_floor import SHAPES, WRITE_FIRST, _keys, _submitter, consume
from tests.servers import RedisProcess


@pytest.mark.parametrize("shape", SHAPES)
async def test_each_shape_records_a_latency_per_probe(redis_server: RedisProcess, redis: Any, shape: str) -> None:
    prefix = f"f{uuid.uuid4().hex[:10]}"
    await redis.delete(LATENCY_KEY)
    consumer = asyncio.ensure_future(consume(shape, redis_server.url, prefix))
    try:
        deadline = time.monotonic() + 10
        while not await redis.get(_keys(prefix).ready):
            assert not consumer.done(), consumer.exception()
            assert time.monotonic() < deadline, "the consumer did not get ready"
            await asyncio.sleep(0.01)
        submit = _submitter(redis, shape, prefix)
        before = time.time()
        for i in range(3):
            await submit(None, "latency", latency_payload(i))  # type: ignore[arg-type]
        while await redis.llen(LATENCY_KEY) < 3:
            assert not consumer.done(), consumer.exception()
            assert time.monotonic() < deadline, "the probes were not all taken"
            await asyncio.sleep(0.01)
        latencies = [float(v) for v in await redis.lrange(LATENCY_KEY, 0, -1)]
        assert len(latencies) == 3
        assert all(0 <= v < time.time() - before + 0.01 for v in latencies)
        _, stream, run, _ = _keys(prefix)
        # only the four-hop shape writes before the start; the stream shapes leave nothing pending unread
        assert await redis.hget(run, "status") == (b"executing" if shape == WRITE_FIRST else None)
        if shape != "list":
            assert (await redis.xinfo_groups(stream))[0]["lag"] == 0
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await redis.delete(LATENCY_KEY, *_keys(prefix))
