"""Weighted fairness between concurrency keys and priority aging, through a running node."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest

from runtime import Baton, RunContext
from tests.nodes import eventually, running_node


async def test_weights_give_each_key_its_share(make_app: Any) -> None:
    # Given keys "heavy" (weight 3, set per trigger) with 400 queued runs, "light" and "other" (weight 1) 200 each
    app = make_app(concurrency=4)
    started: list[str] = []

    @app.job()
    async def work(ctx: RunContext, payload: Any) -> None:
        started.append(payload)

    await app.trigger_batch([{"job": "work", "input": key, "concurrency_key": key, "fairness_weight": weight}
                             for key, weight, n in (("heavy", 3, 400), ("light", 1, 200), ("other", 1, 200))
                             for _ in range(n)])
    async with running_node(app):
        await eventually(lambda: len(started) >= 500, 30)
    # Then of the first 500 starts, heavy had 3/5 and each other key 1/5, within a tight tolerance
    shares = collections.Counter(started[:500])
    assert abs(shares["heavy"] - 300) <= 6 and abs(shares["light"] - 100) <= 6, shares
    assert abs(shares["other"] - 100) <= 6, shares


# Each limit that refuses every group's runs of a job alike: the job's concurrency, its rate, a shared
# pool, a shared rate (one start per 20 ms: 27 runs take about half a second)
JOB_WIDE_LIMITS: dict[str, dict[str, Any]] = {
    "max_concurrency": {"max_concurrency": 1},
    "rate_limit": {"rate_limit": (1, 0.02)},
    "pool": {"pool": "one"},
    "shared_rate": {"shared_rate": "slow"},
}


@pytest.mark.parametrize("limit", sorted(JOB_WIDE_LIMITS))
async def test_weights_hold_for_a_job_wide_limit(make_app: Any, limit: str) -> None:
    # Given a job under a limit of the whole job, and keys X (weight 3), Y and Z (weight 1), 9 runs each,
    # queued interleaved before a node of many free slots starts
    app = make_app(concurrency=10)
    app.define_pool("one", 1)
    app.define_rate_limit("slow", 1, 0.02)
    started: list[str] = []

    @app.job(**JOB_WIDE_LIMITS[limit])
    async def limited(ctx: RunContext, payload: Any) -> None:
        started.append(payload)

    await app.trigger_batch([{"job": "limited", "input": key, "concurrency_key": key, "fairness_weight": weight}
                             for _ in range(9) for key, weight in (("X", 3), ("Y", 1), ("Z", 1))])
    async with running_node(app):
        await eventually(lambda: len(started) == 27, 30)
    # Then every 5 starts are 3 of X, 1 of Y, 1 of Z while X has runs, as without the limit. Before, the
    # claims' visits that the limit refused moved every group behind X, which then took all 9 first
    assert "".join(started) == "XXXYZ" * 3 + "YZ" * 6, "".join(started)


async def _starts_of_low_under_a_high_stream(app: Baton, seconds: float) -> float | None:
    """A priority-0 run queued first, then a steady stream keeping ~5 priority-5 runs queued for ``seconds``:
    how long after its creation the low run started (None: not within the stream).

    The runs are created while the node's one slot is held by a gate run, so the low run's age counts
    from a moment the node is already serving: a slow node start cannot age it past the stream."""
    started: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    gate = asyncio.Event()

    @app.job()
    async def unit(ctx: RunContext, payload: Any) -> None:
        started.setdefault(payload, loop.time())
        if payload == "gate":
            await gate.wait()
        await asyncio.sleep(0.005)

    async with running_node(app):
        await app.trigger("unit", "gate")
        await eventually(lambda: "gate" in started, 30)
        t0 = loop.time()
        await app.trigger("unit", "low", priority=0)
        await app.trigger_batch([{"job": "unit", "input": f"h{i}", "priority": 5} for i in range(5)])
        gate.set()
        n = 5
        while loop.time() - t0 < seconds and "low" not in started:
            if (await app.count_by_status()).get("queued", 0) < 5:
                await app.trigger_batch([{"job": "unit", "input": f"h{n + i}", "priority": 5} for i in range(5)])
                n += 5
            await asyncio.sleep(0.005)
        low_at = started.get("low")
        high_done = len(started) - ("low" in started) - 1
    assert high_done >= 20, "the high-priority stream kept the node busy"
    return None if low_at is None else low_at - t0


async def test_aging_lets_an_old_low_priority_run_through_a_high_priority_stream(make_app: Any) -> None:
    # Given priority aging of one level per 0.1 s and a node with one slot
    waited = await _starts_of_low_under_a_high_stream(make_app(concurrency=1, priority_aging_s=0.1), 5.0)
    # Then the low run started once its age made it outrank priority 5 (6 levels: 0.6 s), while the stream went on
    assert waited is not None and 0.55 <= waited <= 1.6, waited


async def test_without_aging_the_high_priority_stream_holds_the_low_run_back(make_app: Any) -> None:
    # Given the same stream without aging, the low-priority run does not start while it lasts
    assert await _starts_of_low_under_a_high_stream(make_app(concurrency=1), 1.2) is None
