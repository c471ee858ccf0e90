"""Batch handlers: runs gathered into handler calls, each run still with its own attempt and outcome."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from runtime import Backoff, Batch, Settings
from runtime.errors import ConfigError
from tests.flow.test_affinity import APP, producer
from tests.integration.test_processes import worker_env
from tests.nodes import eventually, kill_process, running_node, spawn_worker, stop_process

FAST_RETRY = Backoff("fixed", initial_s=0.05, jitter=0)


async def test_100_runs_form_batches_of_at_most_10_each_with_its_own_output(make_app: Any) -> None:
    app = make_app(concurrency=20)
    sizes: list[int] = []

    @app.job(batch_size=10, batch_wait_s=0.1)
    async def double(batch: Batch, inputs: list[int]) -> list[int]:
        sizes.append(len(batch))
        assert batch.run_ids == [c.run_id for c in batch.contexts]
        return [x * 2 for x in inputs]

    # When 100 runs are queued before a node starts
    ids = await app.trigger_batch([{"job": "double", "input": i} for i in range(100)])
    async with running_node(app):
        runs = [await app.wait_for(run_id, 20) for run_id in ids]
    # Then every run completed on its first attempt with its own output
    assert [(r.status, r.output, r.attempt) for r in runs] == [("completed", 2 * i, 1) for i in range(100)]
    # in handler calls of at most 10 runs, some of them full
    assert sum(sizes) == 100 and max(sizes) == 10 and all(s <= 10 for s in sizes)


async def test_each_runs_context_in_a_batch_writes_its_own_runs_log(make_app: Any) -> None:
    # Given a batch handler that logs through each run's context (batch.contexts), and a context kept
    # past its attempt
    app = make_app(concurrency=20)
    kept: list[Any] = []

    @app.job(batch_size=5, batch_wait_s=0.2)
    async def index(batch: Batch, inputs: list[str]) -> list[str]:
        for ctx, item in zip(batch.contexts, inputs, strict=True):
            ctx.log.info("indexing %s", item, item=item)
        kept.extend(batch.contexts)
        return inputs

    @app.job()
    async def later(ctx: Any, payload: Any) -> str:
        kept[0].log.info("a line through another run's old context")
        ctx.log.info("its own line")
        return "ok"

    # When a batch of runs is processed, then another run uses a context of that batch
    ids = await app.trigger_batch([{"job": "index", "input": f"doc-{i}"} for i in range(5)])
    async with running_node(app):
        for run_id in ids:
            await app.wait_for(run_id, 20)
        last = await app.wait_for(await app.trigger("later"), 20)
    # Then each run's log holds its own line, once, and no other run's
    for i, run_id in enumerate(ids):
        logs = [e["data"]["message"] for e in await app.get_events(run_id) if e["type"] == "log"]
        assert logs == [f"indexing doc-{i}"], (run_id, logs)
    # and a context kept past its attempt writes into no other run's log
    logs = [e["data"]["message"] for e in await app.get_events(last.id) if e["type"] == "log"]
    assert logs == ["its own line"], logs


async def test_a_failed_item_retries_only_its_run_and_a_raising_handler_fails_every_run(make_app: Any) -> None:
    app = make_app()
    calls: list[list[Any]] = []

    @app.job(batch_size=5, batch_wait_s=0.2, max_attempts=2, backoff=FAST_RETRY)
    async def check(batch: Batch, inputs: list[str]) -> list[Any]:
        calls.append([(x, c.attempt) for x, c in zip(inputs, batch, strict=True)])
        if "boom" in inputs and batch.contexts[inputs.index("boom")].attempt == 1:
            raise RuntimeError("the whole batch failed")
        return [ValueError("bad item") if x == "bad" and c.attempt == 1 else x.upper()
                for x, c in zip(inputs, batch, strict=True)]

    async with running_node(app):
        # Given one batch with an item that fails on its first attempt
        ids = await app.trigger_batch([{"job": "check", "input": x} for x in ("a", "bad", "c")])
        runs = [await app.wait_for(run_id, 10) for run_id in ids]
        # Then only that run was retried, and it completed on its second attempt
        assert [(r.status, r.output, r.attempt) for r in runs] == [
            ("completed", "A", 1), ("completed", "BAD", 2), ("completed", "C", 1)]
        assert runs[1].attempts[0].status == "failed" and runs[1].attempts[0].error["message"] == "bad item"
        # When the handler itself raises on a batch
        ids = await app.trigger_batch([{"job": "check", "input": x} for x in ("boom", "e")])
        runs = [await app.wait_for(run_id, 10) for run_id in ids]
    # Then every run of that batch failed one attempt, and each was retried on its own
    for r in runs:
        assert r.status == "completed" and [a.status for a in r.attempts] == ["failed", "completed"]
        assert r.attempts[0].error["message"] == "the whole batch failed"


async def test_a_batch_waits_at_most_batch_wait_s_and_groups_by_key(make_app: Any) -> None:
    app = make_app()
    seen: list[tuple[float, list[Any]]] = []

    @app.job(batch_size=50, batch_wait_s=0.3, batch_key="input:tenant")
    def per_tenant(batch: Batch, inputs: list[dict[str, Any]]) -> list[Any]:  # a plain def: run in a thread
        seen.append((time.monotonic(), [x["tenant"] for x in inputs]))
        return [x["n"] for x in inputs]

    async with running_node(app):
        # When 5 runs of two tenants arrive, far fewer than the batch size
        sent = time.monotonic()
        items = [{"tenant": t, "n": n} for n, t in enumerate("ababa")]
        ids = await app.trigger_batch([{"job": "per_tenant", "input": x} for x in items])
        runs = [await app.wait_for(run_id, 10) for run_id in ids]
    assert [r.output for r in runs] == [0, 1, 2, 3, 4]
    # Then they were not held longer than the wait (plus scheduling), nor run before it
    assert all(0.25 <= at - sent <= 1.3 for at, _ in seen), [at - sent for at, _ in seen]
    # and each handler call had one tenant only
    assert sorted(tuple(tenants) for _, tenants in seen) == [("a", "a", "a"), ("b", "b")]


async def test_a_durable_wait_in_a_batch_handler_fails_the_batch_clearly(make_app: Any) -> None:
    app = make_app()

    @app.job(batch_size=2, batch_wait_s=0.1, max_attempts=1)
    async def sleepy(batch: Batch, inputs: list[int]) -> list[int]:
        await batch.contexts[0].sleep(60)
        return inputs

    async with running_node(app):
        ids = await app.trigger_batch([{"job": "sleepy", "input": i} for i in range(2)])
        runs = [await app.wait_for(run_id, 10) for run_id in ids]
    # a wait cannot suspend one run of a shared call: every run fails, saying why, none hangs
    assert {r.status for r in runs} == {"dead_letter"}
    assert all("not supported" in (r.error or {}).get("message", "") for r in runs)


def test_batch_options_are_checked_at_definition(make_app: Any) -> None:
    app = make_app()
    for bad in ({"batch_size": 0}, {"batch_size": 2, "batch_key": "tenant"}, {"batch_wait_s": 1.0},
                {"batch_size": 2, "batch_wait_s": -1}):
        with pytest.raises(ConfigError):
            app.job(**bad)(lambda b, xs: xs)


async def test_kill_9_mid_batch_reruns_every_run_of_the_batch_once(
    settings: Settings, redis: Any, tmp_path: Path,
) -> None:
    # Given a worker process running a batch of 10 runs whose handler hangs on their first attempt
    app = producer(settings)
    worker = spawn_worker(APP, worker_env(settings, "w1"), tmp_path / "w1.log")
    second = None
    try:
        ids = await app.trigger_batch([{"job": "batch_hang", "input": i} for i in range(10)])
        await eventually(lambda: redis.llen(f"{settings.prefix}:test:batch-hanging"), 20)
        # When it is killed -9 mid-batch, and another worker starts
        kill_process(worker)
        second = spawn_worker(APP, worker_env(settings, "w2"), tmp_path / "w2.log")
        runs = await asyncio.gather(*(app.wait_for(run_id, 30) for run_id in ids))
    finally:
        if second is not None:
            assert stop_process(second) == 0
        stop_process(worker)
        await app.close()
    # Then every run completed with its own output on its second attempt, none lost
    assert [(r.status, r.output) for r in runs] == [("completed", 2 * i) for i in range(10)]
    assert all([(a.status, a.worker_id) for a in r.attempts] == [("crashed", "w1"), ("completed", "w2")]
               for r in runs)
    # and each ran exactly twice: once in the killed batch, once after
    executions = await redis.hgetall(f"{settings.prefix}:test:batch-executions")
    assert sorted(int(v) for v in executions.values()) == [2] * 10
