"""The app the chaos harness's worker nodes run (``--app bench.chaos.jobs:app``).

``work`` is the ordinary job: durable steps whose functions record every
execution in Redis, so the checker can tell whether a step ran again after it
was recorded completed; it runs in a shared pool (POOL). The ``poison_*`` jobs misbehave on purpose.

The records go to the Redis server directly (``CHAOS_REDIS_URL``), never
through the fault proxy: they are the harness's instrument, not Baton traffic.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import orjson

from runtime import Backoff, Baton, RunContext
from runtime.keys import Keys, Partition

from .processes import harness_client

__all__ = ["Marks", "app"]

app = Baton()
#: ``work`` runs in a shared pool smaller than most scenarios' slots, so every fault also tests that its
#: set of leased run ids never drifts (the checker's reconcile counts any member without a lease, and
#: any leased run missing from it)
POOL = "chaos"
app.define_pool(POOL, 24)
_client: Any = None


class Marks:
    """Keys of the harness's own records: a run's in its partition's hash slot (so one script can
    check them with the run's record on Redis Cluster too), the rest under the deployment's prefix."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def executions(self, run_id: str) -> str:
        """Times each step function of a run started (HASH step -> count)."""
        return f"{self.keys.partition_of_run(run_id).prefix}chaos:x:{run_id}"

    def reruns(self, p: Partition) -> str:
        """Step functions of partition ``p``'s runs that started although the step was already
        recorded completed (LIST of JSON {run, step, node, attempt})."""
        return f"{p.prefix}chaos:reruns"

    def stale_starts(self, p: Partition) -> str:
        """Step functions of partition ``p``'s runs that started while the run's record no longer
        showed this node's lease (LIST of JSON {entry: {run, step, node, attempt}, record: [status,
        attempt, lease node]}): fenced work begun without the lease."""
        return f"{p.prefix}chaos:stale"

    @property
    def poison_exits(self) -> str:
        """Runs of poison_exit that took their node down (LIST of run ids)."""
        return f"{self.keys.prefix}:chaos:poison-exits"


def _redis() -> Any:
    global _client
    if _client is None:
        _client = harness_client(os.environ["CHAOS_REDIS_URL"], socket_timeout=None)
    return _client


_marks: Marks | None = None


def _m() -> Marks:
    global _marks
    if _marks is None:
        _marks = Marks(app.keys)
    return _marks


#: One atomic check per step execution, so a record is kept even if the handler is cancelled
#: right after sending it: count the execution, and note it when the step was already
#: completed (with when, by the completing node's clock, and the run's record: a step whose
#: note was delayed past another attempt's completion had started before it, see checker.py)
#: or the run's record no longer shows this node's lease. (Every key is in the run's partition's slot, see Marks.)
_NOTE_EXECUTION = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local r = redis.call('HMGET', KEYS[3], 'status', 'attempt', 'lease_node')
local record = {r[1] or 'none', r[2] or 'none', r[3] or 'none'}
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if rec and string.find(rec, '"status":"completed"', 1, true) then
  redis.call('RPUSH', KEYS[4], cjson.encode({entry = cjson.decode(ARGV[2]),
    completed_at = cjson.decode(rec).completed_at, record = record}))
end
if r[1] ~= 'executing' or r[2] ~= ARGV[3] or r[3] ~= ARGV[4] then
  redis.call('RPUSH', KEYS[5], cjson.encode({entry = cjson.decode(ARGV[2]), record = record}))
end
return 1
"""


async def _execute_step(ctx: RunContext, name: str, sleep_s: float) -> str:
    """The body of every step: note the execution (see _NOTE_EXECUTION), then sleep."""
    p = app.keys.partition_of_run(ctx.run_id)
    # when the step started, by the node's estimate of the Redis clock (never behind it; ahead by at most
    # the claim's send delay, milliseconds): the check below runs when the EVAL reaches Redis, which a fault can
    # delay past the lease's end (a failover holds the call for seconds); the checker tells the two apart
    entry = orjson.dumps({"run": ctx.run_id, "step": name, "node": ctx.node_id, "attempt": ctx.attempt,
                          "started_ms": ctx.now_ms()})
    keys = [_m().executions(ctx.run_id), p.steps(ctx.run_id), p.run(ctx.run_id), _m().reruns(p), _m().stale_starts(p)]
    await _redis().eval(_NOTE_EXECUTION, len(keys), *keys, name, entry, str(ctx.attempt), ctx.node_id)
    if sleep_s:
        await asyncio.sleep(sleep_s)
    return f"{name}@{ctx.node_id}"


@app.job(max_attempts=10, timeout=30, backoff=Backoff("fixed", initial_s=0.2, jitter=0), pool=POOL)
async def work(ctx: RunContext, payload: Any) -> Any:
    """``steps`` durable steps, each sleeping ``sleep`` s; ``gap`` s of plain work between steps;
    fails its attempt with probability ``fail`` after the steps (the retry replays them)."""
    steps = int(payload.get("steps", 3))
    outputs = []
    for i in range(steps):
        outputs.append(await ctx.step(f"s{i}", _execute_step, ctx, f"s{i}", float(payload.get("sleep", 0))))
        gap = float(payload.get("gap", 0))
        if gap:
            await asyncio.sleep(gap)
    if random.random() < float(payload.get("fail", 0)):
        raise RuntimeError("chaos: an ordinary failure")
    return {"node": ctx.node_id, "attempt": ctx.attempt, "steps": outputs}


#: ``work`` outside the pool: a pool keeps all its runs in one partition (one script decides the
#: limit), and a run with its own id must then hash there; this job's runs spread over every
#: partition of a deployment that has several
work_spread = app.job("work_spread", max_attempts=10, timeout=30,
                      backoff=Backoff("fixed", initial_s=0.2, jitter=0))(work)

#: the jobs whose every run must complete (the others misbehave on purpose)
ORDINARY_JOBS = frozenset({"work", "work_spread"})


@app.job(max_attempts=2, timeout=5, backoff=Backoff("fixed", initial_s=0.2, jitter=0))
async def poison_exit(ctx: RunContext, payload: Any) -> Any:
    """Takes the whole node down mid-run."""
    await _redis().rpush(_m().poison_exits, ctx.run_id)
    os._exit(3)


@app.job(max_attempts=2, timeout=2, backoff=Backoff("fixed", initial_s=0.2, jitter=0))
async def poison_loop(ctx: RunContext, payload: Any) -> Any:
    """Loops and swallows every cancellation (bounded at 10 minutes so no process outlives the harness)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            continue
    return None


@app.job(max_attempts=2, timeout=30, backoff=Backoff("fixed", initial_s=0.2, jitter=0))
async def poison_block(ctx: RunContext, payload: Any) -> Any:
    """Blocks the node's event loop (a synchronous sleep in an async handler) for ``seconds``."""
    time.sleep(float(payload.get("seconds", 5)))
    return {"node": ctx.node_id, "attempt": ctx.attempt}


@app.job(max_attempts=2, timeout=30, backoff=Backoff("fixed", initial_s=0.2, jitter=0))
async def poison_huge(ctx: RunContext, payload: Any) -> Any:
    """Returns an output of ``bytes`` bytes."""
    return "x" * int(payload.get("bytes", 8 * 1024 * 1024))


@app.job(max_attempts=2, timeout=30, backoff=Backoff("fixed", initial_s=0.2, jitter=0))
async def poison_nonjson(ctx: RunContext, payload: Any) -> Any:
    """Returns a value JSON cannot encode."""
    return {"value": object()}


def _dive(n: int) -> int:
    return _dive(n + 1) + 1


@app.job(max_attempts=2, timeout=30, backoff=Backoff("fixed", initial_s=0.2, jitter=0))
async def poison_recursion(ctx: RunContext, payload: Any) -> Any:
    """Recurses without end."""
    return _dive(0)
