"""Pickup floors: what a probe's pickup costs with no job system at all, by the shape of its path.

The pickup goals of #20 compare Baton's stream path with peers whose paths
have fewer network hops. This measures each shape with nothing but a plain
redis-py client on uvloop (one held connection, no parsing beyond the probe's
JSON), on the run's own Redis, with the method of bench/pickup.py (probes
``latency_gap_ms`` apart, start time minus submit time):

- ``list``: LPUSH, then the consumer's BRPOP returns it: two hops (producer to
  Redis, Redis to consumer), huey's and arq's shape;
- ``stream``: XADD, then the consumer's XREADGROUP returns it: two hops, the
  shape of a stream consumer that starts the job before writing anything;
- ``stream_write``: XADD, XREADGROUP, then one round trip for a one-command
  script (an HSET) before the job starts: four hops, the least a consumer
  needs that writes a run (its record and lease) before starting it, as Baton's
  intake does for every entry of the submission stream.

Run as ``python -m bench.pickup_floor <shape> <redis url> <key prefix>``: the
consumer process, which records each probe's latency in LATENCY_KEY. (Its top
level is the standard library's: bench/goals.py and bench/report.py import the
shapes, and bench/main.py imports them before any virtualenv exists.)
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from bench.common import LATENCY_KEY, spawn, stop, worker_env

if TYPE_CHECKING:
    from bench.adapters.base import Adapter
    from bench.driver import Driver
    from bench.pickup import Submit

__all__ = ["SHAPES", "WRITE_FIRST", "floors"]

#: each shape measured: (what it is, as the report says it; network hops from submit to start)
SHAPES: dict[str, tuple[str, int]] = {
    "list": ("LPUSH, the consumer's BRPOP returns it (huey's and arq's shape)", 2),
    "stream": ("XADD, the consumer's XREADGROUP returns it (start before any write)", 2),
    "stream_write": ("XADD, XREADGROUP, then one script call writing the run before it starts (the least "
                     "a create-then-start stream consumer needs: Baton's XADD path)", 4),
}
#: the shape of Baton's stream path (shown beside its goals, bench/goals.py)
WRITE_FIRST = "stream_write"
#: the one-command script of ``stream_write`` (a library of one function)
_LIBRARY = ("#!lua name=bench_floor\n"
            "redis.register_function('bench_floor_write', function(keys, args) "
            "return redis.call('HSET', keys[1], 'status', 'executing') end)\n")
_GROUP = "floor"


class FloorKeys(NamedTuple):
    """The keys of one floor measurement (one hash slot)."""

    listed: str  #: the list probes are pushed to
    stream: str  #: the stream probes are added to
    run: str  #: the hash ``stream_write`` writes before a probe starts
    ready: str  #: set by the consumer once it waits for probes


def _keys(prefix: str) -> FloorKeys:
    return FloorKeys(*(f"{{{prefix}}}:floor:{name}" for name in ("list", "stream", "run", "ready")))


async def consume(shape: str, redis_url: str, prefix: str) -> None:
    """Take probes until stopped; each one's latency goes to LATENCY_KEY."""
    import orjson
    import redis.asyncio as aioredis

    listed, stream, run, ready = _keys(prefix)
    client = aioredis.Redis.from_url(redis_url)
    if shape == WRITE_FIRST:
        await client.execute_command("FUNCTION", "LOAD", "REPLACE", _LIBRARY)
    if shape != "list":
        await client.xgroup_create(stream, _GROUP, id="$", mkstream=True)
    conn = await client.connection_pool.get_connection()
    await client.set(ready, 1)
    while True:
        if shape == "list":
            await conn.send_command("BRPOP", listed, 1)
            reply = await conn.read_response()
            if reply is None:
                continue
            submitted = orjson.loads(reply[1])["t"]
        else:
            await conn.send_command("XREADGROUP", "GROUP", _GROUP, "c", "COUNT", 1, "BLOCK", 1000,
                                    "STREAMS", stream, ">")
            reply = await conn.read_response()
            if reply is None:
                continue
            # RESP2: [[stream, [[id, fields]]]]; RESP3: {stream: [[id, fields]]}
            entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
            fields = entries[0][1]
            raw = fields[b"input"] if isinstance(fields, dict) else fields[1]
            if shape == WRITE_FIRST:
                await conn.send_command("FCALL", "bench_floor_write", 1, run)
                await conn.read_response()
            submitted = orjson.loads(raw)["t"]
        started = time.time()
        await client.rpush(LATENCY_KEY, repr(started - submitted))


def _submitter(producer: Any, shape: str, prefix: str) -> Submit:
    """How the harness submits a probe of ``shape``: one LPUSH or one XADD by a plain client."""
    import orjson

    listed, stream, _, _ = _keys(prefix)

    async def submit(_: Adapter, __: str, data: dict[str, Any]) -> None:
        body = orjson.dumps(data)
        if shape == "list":
            await producer.lpush(listed, body)
        else:
            await producer.xadd(stream, {"input": body})

    return submit


async def floors(d: Driver) -> None:
    """Every shape's pickup in rounds, recorded as ``floor_<shape>_p50_ms`` and the like."""
    import redis.asyncio as aioredis

    from bench import pickup

    a = await d.fresh("floor")
    prefix = a.ns
    keys = _keys(prefix)
    producer = aioredis.Redis.from_url(d.redis_url)
    try:
        for shape in SHAPES:
            submit = _submitter(producer, shape, prefix)
            proc = spawn([sys.executable, "-m", "bench.pickup_floor", shape, d.redis_url, prefix],
                         worker_env(d.redis_url, prefix, 1), d.log_dir / f"floor-{shape}.log")
            rounds = pickup.Rounds(d, f"floor_{shape}")
            try:
                deadline = time.time() + 30
                while not d.r.get(keys.ready):
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"the {shape} floor consumer did not start (log in {d.log_dir})")
                    await asyncio.sleep(0.05)
                await pickup.warm_up(d, a, [proc], submit)
                for _ in range(d.cfg["reps"]):
                    await asyncio.sleep(1.0)
                    rounds.add(await pickup.probe_round(d, a, submit))
            finally:
                stop(proc, timeout=5)
                d.r.delete(keys.ready, keys.listed, keys.stream)
            rounds.record()
    finally:
        await producer.aclose()
        await a.teardown()


if __name__ == "__main__":
    import uvloop

    uvloop.run(consume(sys.argv[1], sys.argv[2], sys.argv[3]))
