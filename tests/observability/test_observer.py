"""The observer reads exact cluster-wide numbers from Redis: depth, oldest run, states, leases, intake, nodes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from actors.intake import ensure_group
from actors.observer import Observer
from runtime import Baton, Settings
from runtime.metrics import Metrics
from runtime.scripts import Outcome
from tests.nodes import eventually
from tests.servers import RedisClusterProcesses


async def _noop(ctx: Any, payload: Any) -> None:
    return None


def producer(make_app: Callable[..., Baton], **overrides: Any) -> Baton:
    app = make_app(**overrides)
    app.job("a", queue="qa")(_noop)
    app.job("b", queue="qb")(_noop)
    app.job("c", queue="qc", max_attempts=1)(_noop)
    return app


async def redis_ms(app: Baton) -> int:
    seconds, micros = await app.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_observer_reports_exact_depths_states_and_leases_per_partition(make_app: Callable[..., Baton]) -> None:
    # Given two partitions holding 5 runs of queue qa and 3 of qb, 2 delayed runs, a dead-lettered run
    # and two runs leased by a node that stopped renewing (one of them already overdue)
    app = producer(make_app, partitions=2)
    qa = [await app.trigger("a", {"i": i}) for i in range(5)]
    qb = [await app.trigger("b", {"i": i}) for i in range(3)]
    delayed = [await app.trigger("a", None, delay=600) for _ in range(2)]
    dead = await app.trigger("c")
    p_dead = app.keys.partition_of_run(dead)
    (claimed,), _ = await app.scripts.claim(p_dead, "ghost", 1, ["qc"], ["c"], 0)
    [(_, status)] = await app.scripts.finish(p_dead, [Outcome(dead, claimed.token, "failed", error_json="{}")])
    assert status == "dead_letter"
    short = producer(make_app, partitions=2, lease_ttl_ms=100, renew_interval_ms=50)
    leased_ids = [await app.trigger("c") for _ in range(2)]
    for run_id in leased_ids:
        owner = short if run_id == leased_ids[0] else app
        (c,), _ = await owner.scripts.claim(app.keys.partition_of_run(run_id), "ghost", 1, ["qc"], ["c"], 0)
        assert c.run_id == run_id
    overdue_from = await redis_ms(app) + 150
    await eventually(lambda: _after(app, overdue_from), 5)

    # When the observer looks once
    metrics = Metrics()
    await Observer(app, metrics).observe()

    # Then every gauge has the exact count of its partition
    def get(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    part = {i: str(app.keys.partition_of_run(i).index) for i in [*qa, *qb, *delayed, dead, *leased_ids]}
    for queue, ids in (("qa", qa), ("qb", qb)):
        per_partition = Counter(part[i] for i in ids)
        for p in ("0", "1"):
            # (no series where the queue never had a run)
            assert (get("baton_queue_depth", queue=queue, partition=p) or 0) == per_partition.get(p, 0), (queue, p)
    for state, ids in (("queued", qa + qb), ("delayed", delayed), ("dead_letter", [dead]),
                       ("executing", leased_ids)):
        per_partition = Counter(part[i] for i in ids)
        for p in ("0", "1"):
            assert get("baton_partition_runs", partition=p, state=state) == per_partition.get(p, 0), (state, p)
    for p in ("0", "1"):
        assert get("baton_partition_runs", partition=p, state="waiting") == 0
        assert get("baton_partition_runs", partition=p, state="completed") == 0
        expect_overdue = 1 if part[leased_ids[0]] == p else 0
        assert get("baton_leases_overdue", partition=p) == expect_overdue, p


async def _after(app: Baton, ms: int) -> bool:
    return await redis_ms(app) >= ms


async def test_oldest_age_sees_a_run_starved_by_higher_priorities(make_app: Callable[..., Baton]) -> None:
    # Given an old priority-0 run in queue qa and, 300 ms later (Redis clock), a priority-10 run ahead of it
    app = producer(make_app)
    created = await redis_ms(app)
    await app.trigger("a", "old")
    created_by = await redis_ms(app)
    await eventually(lambda: _after(app, created_by + 300), 5)
    await app.trigger("a", "urgent", priority=10)
    metrics = Metrics()
    observer = Observer(app, metrics)

    # When the observer looks
    before = await redis_ms(app)
    await observer.observe()
    after = await redis_ms(app)

    # Then the oldest age is the old run's (not the run next in line), by the Redis clock
    age = metrics.registry.get_sample_value("baton_queue_oldest_age_seconds", {"queue": "qa", "partition": "0"})
    assert age is not None and (before - created_by) / 1000 <= age <= (after - created) / 1000, age
    assert age >= 0.3
    # and an empty queue reads 0
    await app.trigger("b", None)
    while (await app.scripts.claim(app.keys.partitions[0], "ghost", 10, ["qb"], ["b"], 0))[0]:
        pass
    await observer.observe()
    assert metrics.registry.get_sample_value("baton_queue_depth", {"queue": "qb", "partition": "0"}) == 0
    assert metrics.registry.get_sample_value("baton_queue_oldest_age_seconds", {"queue": "qb", "partition": "0"}) == 0


async def test_observer_reports_intake_lag_pending_and_live_nodes(make_app: Callable[..., Baton]) -> None:
    # Given 3 entries in the submission stream, one of them read but not acknowledged,
    # and two nodes: one that heartbeated just now and one an hour ago
    app = producer(make_app)
    metrics = Metrics()
    observer = Observer(app, metrics)
    await observer.observe()  # no stream yet
    assert metrics.registry.get_sample_value("baton_intake_lag_entries") == 0
    await ensure_group(app)
    keys = app.keys
    for i in range(3):
        await app.redis.xadd(keys.submit_stream, {"job": "a", "input": str(i)})
    await app.redis.xreadgroup(keys.intake_group, "someone", {keys.submit_stream: ">"}, count=1)
    now_ms = int(time.time() * 1000)
    await app.redis.zadd(keys.nodes, {"fresh": now_ms, "gone": now_ms - 3600_000 + 5000})

    # When the observer looks
    await observer.observe()

    # Then lag counts undelivered entries, pending the unacknowledged one, and one node is live
    get = metrics.registry.get_sample_value
    assert get("baton_intake_lag_entries") == 2
    assert get("baton_intake_pending_entries") == 1
    assert get("baton_intake_stream_entries") == 3
    assert get("baton_nodes_live") == 1
    # and each call was timed as a Redis round trip
    assert (get("baton_redis_command_duration_seconds_count", {"command": "observe"}) or 0) >= 2


@pytest.mark.cluster
async def test_observer_on_redis_cluster(redis_cluster: RedisClusterProcesses, settings: Settings) -> None:
    # Given 4 partitions spread over a 3-master cluster, 9 queued runs and a stream entry
    app = Baton(settings.with_changes(redis_url=redis_cluster.url, redis_cluster=True, partitions=4))
    app.job("a", queue="qa")(_noop)
    try:
        ids = [await app.trigger("a", i) for i in range(9)]
        await ensure_group(app)
        await app.redis.xadd(app.keys.submit_stream, {"job": "a"})
        metrics = Metrics()
        # When the observer looks (pipelines go to each partition's own master)
        await Observer(app, metrics).observe()
        # Then the depths per partition add up, with nothing refused by the cluster client
        per_partition = Counter(str(app.keys.partition_of_run(i).index) for i in ids)
        for p in ("0", "1", "2", "3"):
            depth = metrics.registry.get_sample_value("baton_queue_depth", {"queue": "qa", "partition": p})
            assert (depth or 0) == per_partition.get(p, 0)
        assert metrics.registry.get_sample_value("baton_intake_lag_entries") == 1
    finally:
        await app.close()
