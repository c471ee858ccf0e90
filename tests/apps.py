"""Jobs run by child worker processes in tests. Settings come from BATON_* variables.

Handlers count what they do in Redis (the test reads the counts), because a
child process cannot share memory with the test.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis as sync_redis

from runtime import Backoff, Baton, PermanentFailure, RunContext, Settings
from runtime.connection import connect
from runtime.direct_calls import redis_ms

app = Baton()
_client: Any = None


#: the URL the handlers' own client uses, when not the node's (BATON_REDIS_URL)
HANDLERS_REDIS_URL = "TEST_HANDLERS_REDIS_URL"


def _redis() -> Any:
    global _client
    if _client is None:
        # the handlers' own client: Baton's connect() (it retries, and follows a Sentinel URL), as
        # an application's would; the outage tests restart Redis under it
        settings = Settings.from_env(dict(os.environ))
        # (a test whose faults are meant for the node's own connections gives the handlers another way in)
        url = os.environ.get(HANDLERS_REDIS_URL) or settings.redis_url
        _client = connect(url, cluster=settings.redis_cluster)
    return _client


def _key(name: str) -> str:
    return f"{os.environ['BATON_PREFIX']}:test:{name}"


async def redis_clock_ms() -> int:
    """Redis's own clock (TIME), in ms: the ruler for tests that compare moments across processes.
    Not ``ctx.now_ms()``: that estimate may run ahead of Redis by the claim's send delay (by design,
    so a durable sleep never ends early), and two nodes' estimates may then seem to overlap."""
    return redis_ms(await _redis().time())


@app.job(max_attempts=3)
async def noop(ctx: RunContext, payload: Any) -> Any:
    """Counts its executions per run id and returns its input."""
    await _redis().hincrby(_key("executions"), ctx.run_id, 1)
    return payload


@app.job(max_attempts=3, timeout=120, backoff=Backoff("fixed", initial_s=0.1, jitter=0))
async def long(ctx: RunContext, payload: Any) -> Any:
    """Announces its start, then sleeps ``payload['seconds']`` on attempt 1 only."""
    r = _redis()
    await r.rpush(_key("started"), f"{ctx.run_id}:{ctx.attempt}:{ctx.node_id}")
    if ctx.attempt == 1 or payload.get("every_attempt"):
        await asyncio.sleep(float(payload["seconds"]))
    await r.rpush(_key("finished"), f"{ctx.run_id}:{ctx.attempt}:{ctx.node_id}")
    return {"node": ctx.node_id, "attempt": ctx.attempt}


@app.job(max_attempts=3, timeout=120, backoff=Backoff("fixed", initial_s=0.1, jitter=0))
async def five_steps(ctx: RunContext, payload: Any) -> Any:
    """Five steps, each counted in Redis; step 4 hangs on the first attempt (to be killed there)."""
    r = _redis()

    async def work(i: int) -> int:
        await r.hincrby(_key("step-runs"), f"s{i}", 1)
        if i == 4 and ctx.attempt == 1:
            await r.rpush(_key("in-step-4"), ctx.node_id)
            await asyncio.sleep(60)
        return i * 10

    outputs = [await ctx.step(f"s{i}", work, i) for i in range(1, 6)]
    return {"outputs": outputs, "node": ctx.node_id}


@app.job(max_attempts=1, timeout=120)
async def steady_steps(ctx: RunContext, payload: Any) -> Any:
    """``payload['steps']`` steps of ``payload['sleep']`` s each that touch nothing but their record;
    one attempt only, so an attempt lost to anything is a failed run."""

    async def work(i: int) -> int:
        await asyncio.sleep(float(payload["sleep"]))
        return i

    done = [await ctx.step(f"s{i}", work, i) for i in range(int(payload["steps"]))]
    return {"steps": len(done)}


@app.job(max_attempts=1, timeout=120)
async def chatty(ctx: RunContext, payload: Any) -> Any:
    """Logs every 0.05 s for ``payload['seconds']`` (its writes are the flush loop's), no steps; one attempt."""
    loop = asyncio.get_running_loop()
    until = loop.time() + float(payload["seconds"])
    lines = 0
    while loop.time() < until:
        ctx.log.info("line %d", lines)
        lines += 1
        await asyncio.sleep(0.05)
    return {"lines": lines}


@app.job(max_attempts=1, timeout=120)
async def writes_each_kind(ctx: RunContext, payload: Any) -> Any:
    """``payload['rounds']`` rounds of one log line, one usage record, one streamed chunk and one
    checkpoint, each round written before the next; one attempt. Returns the checkpoints' sequences."""
    sequences = []
    for i in range(int(payload["rounds"])):
        ctx.log.info("round %d", i)
        ctx.record_usage("test", "m", prompt_tokens=i)
        ctx.stream({"round": i})
        await ctx.flush()
        sequences.append(await ctx.checkpoint({"round": i}))
    return {"sequences": sequences}


@app.job(max_attempts=1, timeout=120)
async def awaits_event(ctx: RunContext, payload: Any) -> Any:
    """Waits for the event its input names; returns the event's data."""
    return await ctx.wait_for_event(payload["event"], timeout=60)


@app.job(max_attempts=1)
async def continues_once(ctx: RunContext, payload: Any) -> Any:
    """Continues as new with ``{"n": 1}`` when given ``{"n": 0}``; returns its input otherwise."""
    if payload["n"] == 0:
        ctx.continue_as_new({"n": 1})
    return payload


#: starts per second of the rate-limited test job: high enough that a burst measures in seconds
RATE_LIMIT = 50


@app.job(rate_limit=(RATE_LIMIT, 1.0), max_attempts=1)
async def limited(ctx: RunContext, payload: Any) -> None:
    """At most RATE_LIMIT starts per second across all nodes; records its start on the Redis clock."""
    await _redis().rpush(_key("limited-starts"), ctx.now_ms())


@app.job(max_concurrency=3, max_concurrency_per_key=1, max_attempts=5, backoff=Backoff("fixed", initial_s=0.05))
async def cc_limited(ctx: RunContext, payload: Any) -> None:
    """Concurrency-limited work for the chaos test: records start/end to check the limits."""
    r = _redis()
    await r.rpush(_key("cc-events"), f"start {ctx.run_id} {payload['key']} {await redis_clock_ms()}")
    await asyncio.sleep(0.05)
    await r.rpush(_key("cc-events"), f"end {ctx.run_id} {payload['key']} {await redis_clock_ms()}")


@app.job(max_attempts=3, timeout=120, backoff=Backoff("fixed", initial_s=0.1, jitter=0))
async def pause_between_steps(ctx: RunContext, payload: Any) -> Any:
    """Step one, then (attempt 1 only) a pause announced in Redis, then step two; each step function's
    executions are counted per run, so a step that ran again after completing is visible."""
    r = _redis()

    async def work(i: int) -> int:
        await r.hincrby(_key("step-runs"), f"{ctx.run_id}:{i}", 1)
        return i

    await ctx.step("one", work, 1)
    if ctx.attempt == 1:
        await r.rpush(_key("paused"), f"{ctx.run_id}:{ctx.node_id}")
        await asyncio.sleep(float(payload.get("pause_s", 0.5)))
    await ctx.step("two", work, 2)
    return {"node": ctx.node_id}


@app.job(max_attempts=5, backoff=Backoff("fixed", initial_s=0.05, jitter=0))
async def dag_parent(ctx: RunContext, payload: Any) -> Any:
    """A parent of the dependency chaos test: counts its executions, takes ``payload['ms']`` ms (so that
    kills land while parents finish) and returns ``payload['value']``."""
    await _redis().hincrby(_key("dag-executions"), ctx.run_id, 1)
    await asyncio.sleep(payload["ms"] / 1000)
    return payload["value"]


@app.job(max_attempts=5, backoff=Backoff("fixed", initial_s=0.05, jitter=0))
async def dag_child(ctx: RunContext, payload: Any) -> Any:
    """A dependent: sums its parents' outputs; fails for good when one is missing (it started too early)."""
    await _redis().hincrby(_key("dag-executions"), ctx.run_id, 1)
    outputs = await ctx.parent_outputs()
    if sorted(outputs) != sorted(payload["parents"]):
        raise PermanentFailure(f"started with parent outputs {sorted(outputs)}")
    return sum(outputs.values())


@app.job(max_attempts=3, timeout=600)
async def deaf(ctx: RunContext, payload: Any) -> Any:
    """Announces its start, then swallows every cancellation for ``payload['seconds']`` (a handler that
    will not stop: it holds its slot, and its process, as long as it likes)."""
    await _redis().rpush(_key("started"), ctx.run_id)
    until = asyncio.get_running_loop().time() + float(payload["seconds"])
    while asyncio.get_running_loop().time() < until:
        try:
            await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            pass  # the poison: cancellation ignored
    return None


@app.job(max_attempts=3, timeout=600)
def deaf_thread(ctx: RunContext, payload: Any) -> Any:
    """A plain def handler: announces its start, then sleeps ``payload['seconds']`` in its thread, which
    no cancellation reaches (a thread cannot be stopped)."""
    client = sync_redis.Redis.from_url(Settings.from_env(dict(os.environ)).redis_url)
    client.rpush(_key("started"), ctx.run_id)
    client.close()
    time.sleep(float(payload["seconds"]))
    return None


@app.job(max_attempts=3, timeout=600)
async def blocks_loop(ctx: RunContext, payload: Any) -> Any:
    """Announces its start, then blocks the event loop for ``payload['seconds']`` (a sync sleep in an
    async def: nothing else of its node runs meanwhile, signal handlers of the loop included)."""
    await _redis().rpush(_key("started"), ctx.run_id)
    time.sleep(float(payload["seconds"]))
    return None
