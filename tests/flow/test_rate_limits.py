"""Rate limits enforced inside the claim script, across processes; fairness between keys."""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from runtime import RunContext, Settings
from runtime.errors import SubmissionError
from runtime.job_limits import read_limits
from runtime.nodes import list_nodes
from tests.apps import RATE_LIMIT
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, lease_starts, running_node, spawn_worker, stop_process


async def test_rate_limit_across_two_workers(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given two worker processes and a job limited to RATE_LIMIT starts per second
    app = producer(settings)
    procs = [spawn_worker("tests.apps:app", worker_env(settings, f"w{i}", BATON_CONCURRENCY=50), tmp_path / f"{i}.log")
             for i in range(2)]
    burst = RATE_LIMIT * 5
    try:
        # (both up first: on a loaded machine one may otherwise start after the other took the burst)
        async def both_up() -> bool:
            for p in procs:
                assert p.poll() is None, f"worker exited with {p.returncode}"
            return {n["id"] for n in await list_nodes(app) if n["alive"]} >= {"w0", "w1"}
        await eventually(both_up, timeout=30, interval=0.1)
        # When a burst of five seconds' worth of runs arrives at once
        ids = await app.trigger_batch([{"job": "limited"} for _ in range(burst)])

        async def all_done() -> bool:
            for p in procs:
                assert p.poll() is None, f"worker exited with {p.returncode}"
            return (await app.count_by_status()).get("completed", 0) == burst
        await eventually(all_done, timeout=30, interval=0.2)
    finally:
        codes = [stop_process(p) for p in procs]
    assert codes == [0, 0]
    handled = await redis.llen(f"{settings.prefix}:test:limited-starts")
    # Then no one-second window (by the Redis clock, at each lease) saw more than the limit
    starts = await lease_starts(app, ids)
    per_window = collections.Counter(s // 1000 for s in starts)
    assert handled == len(starts) == burst and max(per_window.values()) <= RATE_LIMIT, per_window.most_common(3)
    # sliding windows too: any RATE_LIMIT consecutive starts span at least a second (GCRA spacing)
    assert min(b - a for a, b in zip(starts, starts[RATE_LIMIT:], strict=False)) >= 999
    # and the limit let runs go as fast as it allows: the starts (Redis clock) span about 5 s, not more
    span_s = (starts[-1] - starts[0]) / 1000
    assert 4.8 <= span_s <= 6.0, span_s
    # both workers took part (every run looked at: on a loaded machine one may take most of them, and a
    # sample of ten once saw only the other)
    workers = {a.worker_id for rid in ids if (r := await app.get_run(rid)) for a in r.attempts}
    assert workers == {"w0", "w1"}
    await app.close()


async def test_per_key_rate_limit_holds_per_key_while_other_keys_run(make_app: Any) -> None:
    # Given a job limited to 5 starts per second per customer
    app = make_app(concurrency=50)

    @app.job(rate_limit_per_key=(5, 1.0), rate_key="input:customer")
    async def sync(ctx: RunContext, payload: Any) -> None:
        pass

    # When customer "big" has 15 runs and "a", "b" have 3 each
    items = [{"job": "sync", "input": {"customer": "big"}} for _ in range(15)]
    items += [{"job": "sync", "input": {"customer": c}} for c in ("a", "b") for _ in range(3)]
    ids = await app.trigger_batch(items)
    by_key = {"big": ids[:15], "a": ids[15:18], "b": ids[18:]}
    async with running_node(app):
        t0 = time.monotonic()
        small_done: list[float] = []
        for run_id in ids[15:]:
            await app.wait_for(run_id, 10)
        small_done.append(time.monotonic() - t0)
        for run_id in ids[:15]:
            await app.wait_for(run_id, 20)
    # Then every key kept to 5 per second: consecutive leases of one key (by the Redis clock at the
    # claim, what the limit spaces; a handler's own clock adds its dispatch delay) are >= 200 ms apart
    starts = {key: await lease_starts(app, run_ids) for key, run_ids in by_key.items()}
    for key, times in starts.items():
        assert len(times) == len(by_key[key])
        assert all(b - a >= 199 for a, b in itertools.pairwise(times)), (key, times)
    # and the small keys were not held behind the big one (3 starts each need ~0.4 s)
    assert small_done[0] < 1.5, small_done
    assert max(starts["big"]) - min(starts["big"]) >= 14 * 199


async def test_limits_change_at_runtime_without_restart(make_app: Any) -> None:
    # Given a job with no rate limit in code, held to 2 per second at runtime
    app = make_app()

    @app.job()
    async def paced(ctx: RunContext, payload: Any) -> None:
        pass

    async with running_node(app):
        await app.set_limits("paced", rate_limit=(2, 1.0))
        ids = await app.trigger_batch([{"job": "paced"} for _ in range(5)])
        for run_id in ids:
            await app.wait_for(run_id, 10)
        # (leases by the Redis clock at the claim: what the limit spaces)
        seen = await lease_starts(app, ids)
        assert len(seen) == 5 and all(b - a >= 499 for a, b in itertools.pairwise(seen)), seen
        # When the override is cleared, the next burst runs at full speed
        await app.clear_limits("paced")
        ids = await app.trigger_batch([{"job": "paced"} for _ in range(5)])
        for run_id in ids:
            await app.wait_for(run_id, 10)
        seen = await lease_starts(app, ids)
    assert len(seen) == 5 and max(seen) - min(seen) < 400, seen


async def test_a_per_key_rate_override_paces_each_key(make_app: Any) -> None:
    # Given a job that declares a per-key rate in code, and one that declares none
    app = make_app()

    @app.job(rate_limit_per_key=(100, 1.0))
    async def keyed(ctx: RunContext, payload: Any) -> None:
        pass

    @app.job()
    async def plain(ctx: RunContext, payload: Any) -> None:
        pass

    async with running_node(app):
        # When the first is held to 2 starts per second per key at runtime
        await app.set_limits("keyed", rate_limit_per_key=(2, 1.0))
        ids = await app.trigger_batch([{"job": "keyed", "concurrency_key": key} for key in "xyxyx"])
        for run_id in ids:
            await app.wait_for(run_id, 10)
        # Then each key's starts are spaced 0.5 s apart, the keys side by side
        seen = await lease_starts(app, ids[0::2])
        assert len(seen) == 3 and all(b - a >= 499 for a, b in itertools.pairwise(seen)), seen
        assert (await lease_starts(app, ids[1:2]))[0] - seen[0] < 400
        # and the second's runs carry no rate key to count, so the same override is refused, not ignored
        with pytest.raises(SubmissionError, match="declares no rate_limit_per_key"):
            await app.set_limits("plain", rate_limit_per_key=(2, 1.0))


async def test_a_limit_override_needs_the_runs_routed_for_it_across_partitions(make_app: Any) -> None:
    # Given four partitions, a job with no limits in code and one with max_concurrency
    app = make_app(partitions=4)

    @app.job()
    async def spread(ctx: RunContext, payload: Any) -> None:
        pass

    @app.job(max_concurrency=100)
    async def gathered(ctx: RunContext, payload: Any) -> None:
        pass

    # When job-wide or per-key limits are set at runtime
    # Then the first's runs, spread over the partitions, cannot be counted by one: each is refused
    for limits in ({"max_concurrency": 2}, {"rate_limit": (5, 1.0)}, {"max_concurrency_per_key": 1}):
        with pytest.raises(SubmissionError, match="with 4 partitions, job 'spread' needs its runs routed"):
            await app.set_limits("spread", **limits)
    # while the second's runs all live in one partition, so any of its limits can change
    await app.set_limits("gathered", max_concurrency=2, max_concurrency_per_key=1, rate_limit=(5, 1.0))
    assert (await read_limits(app, "gathered"))["effective"]["max_concurrency"] == 2


async def test_fairness_small_keys_are_not_starved_by_a_big_one(make_app: Any) -> None:
    # Given one key with 5,000 queued runs and ten keys with 10 each, queued behind it
    app = make_app(concurrency=10)
    done_order: list[str] = []

    @app.job()
    async def work(ctx: RunContext, payload: Any) -> None:
        done_order.append(payload)
        await asyncio.sleep(0.001)

    await app.trigger_batch([{"job": "work", "input": "big", "concurrency_key": "big"} for _ in range(5000)])
    small_ids = await app.trigger_batch([
        {"job": "work", "input": f"k{k}", "concurrency_key": f"k{k}"} for k in range(10) for _ in range(10)
    ])
    async with running_node(app):
        for run_id in small_ids:
            await app.wait_for(run_id, 30)
        big_done_when_small_finished = done_order.count("big")
    # Then all 100 small-key runs finished while the big key still had most of its runs left
    assert big_done_when_small_finished < 1000, big_done_when_small_finished
    counts = await app.count_by_status()
    assert counts["queued"] > 2500


async def test_priority_orders_runs_within_a_key(make_app: Any) -> None:
    app = make_app(concurrency=1)
    order: list[str] = []

    @app.job()
    async def step(ctx: RunContext, payload: Any) -> None:
        order.append(payload)

    await app.trigger_batch([
        {"job": "step", "input": "a-low", "concurrency_key": "a", "priority": 0},
        {"job": "step", "input": "a-high", "concurrency_key": "a", "priority": 9},
        {"job": "step", "input": "b-low", "concurrency_key": "b", "priority": 0},
        {"job": "step", "input": "b-high", "concurrency_key": "b", "priority": 9},
    ])
    async with running_node(app):
        await eventually(lambda: len(order) == 4, 10)
    # within each key the higher priority went first; keys alternate
    assert order.index("a-high") < order.index("a-low") and order.index("b-high") < order.index("b-low")
    assert {order[0][0], order[1][0]} == {"a", "b"}
