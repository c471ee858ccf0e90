"""Debounce, queue pause/resume, TTL expiry, version pinning, reconciliation after chaos."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from runtime import RunContext, Settings
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, kill_process, running_node, spawn_worker, stop_process


async def test_trailing_debounce_coalesces_into_one_run_with_the_last_input(make_app: Any) -> None:
    app = make_app()
    seen: list[Any] = []

    @app.job()
    async def reindex(ctx: RunContext, payload: Any) -> None:
        seen.append(payload)

    async with running_node(app):
        # When five triggers with one debounce key arrive within the window
        subs = [await app.submit("reindex", i, debounce={"key": "doc-1", "window": 0.4}) for i in range(5)]
        other = await app.submit("reindex", "other", debounce={"key": "doc-2", "window": 0.4})
        # Then the later four were absorbed into the first run, which the caller is told
        assert [s.outcome for s in subs] == ["created"] + ["debounced"] * 4
        assert len({s.id for s in subs}) == 1 and other.id != subs[0].id
        run = await app.wait_for(subs[0].id, 10)
        await app.wait_for(other.id, 10)
    # and it ran once, after the window, with the last input
    assert seen.count(4) == 1 and sorted(x for x in seen if x != "other") == [4]
    assert run.raw["debounced_count"] == "4"


async def test_trailing_debounce_max_delay_caps_the_wait(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def flush(ctx: RunContext, payload: Any) -> None:
        return None

    first = await app.submit("flush", 0, debounce={"key": "k", "window": 10, "max_delay": 0.5})
    again = await app.submit("flush", 1, debounce={"key": "k", "window": 10, "max_delay": 0.5})
    run = await app.get_run(first.id)
    assert again.id == first.id and run is not None
    assert run.scheduled_at_ms is not None and run.scheduled_at_ms - run.created_at_ms <= 500


async def test_leading_debounce_runs_first_and_absorbs_the_rest(make_app: Any) -> None:
    app = make_app()
    seen: list[Any] = []

    @app.job()
    async def notify(ctx: RunContext, payload: Any) -> None:
        seen.append(payload)

    async with running_node(app):
        subs = [await app.submit("notify", i, debounce={"key": "u1", "window": 5, "mode": "leading"})
                for i in range(3)]
        await app.wait_for(subs[0].id, 10)
    assert [s.outcome for s in subs] == ["created", "debounced", "debounced"] and seen == [0]


async def test_queue_pause_and_resume(make_app: Any) -> None:
    app = make_app()

    @app.job(queue="emails")
    async def email(ctx: RunContext, payload: Any) -> None:
        return None

    @app.job(queue="other")
    async def control(ctx: RunContext, payload: Any) -> None:
        return None

    async with running_node(app):
        await app.pause_queue("emails")
        assert await app.paused_queues() == {"emails"}
        # When runs arrive in the paused queue while the node is busy with another queue
        paused_ids = await app.trigger_batch([{"job": "email"} for _ in range(3)])
        for _ in range(3):
            await app.wait_for(await app.trigger("control"), 10)
        # Then they keep arriving but none is leased
        assert {(await app.get_run(r)).status for r in paused_ids} == {"queued"}  # type: ignore[union-attr]
        # and resume starts them at once
        await app.resume_queue("emails")
        runs = [await app.wait_for(r, 5) for r in paused_ids]
    assert {r.status for r in runs} == {"completed"}


async def test_ttl_expires_runs_not_started_in_time(make_app: Any) -> None:
    app = make_app()

    @app.job(queue="slow-lane", ttl=0.3)
    async def fleeting(ctx: RunContext, payload: Any) -> None:
        return None

    await app.pause_queue("slow-lane")
    async with running_node(app):
        queued = await app.trigger("fleeting")
        delayed = await app.trigger("fleeting", delay=5)
        fresh = await app.trigger("fleeting", ttl=60)
        expired = [await app.wait_for(queued, 5), await app.wait_for(delayed, 5)]
        await app.resume_queue("slow-lane")
        done = await app.wait_for(fresh, 5)
    assert [r.status for r in expired] == ["expired", "expired"] and expired[0].error["type"] == "Expired"  # type: ignore[index]
    assert done.status == "completed"
    assert (await app.count_by_status())["expired"] == 2


async def test_version_pinning(make_app: Any) -> None:
    # Given a worker serving version "2" of a job, and runs of versions 1, 2 and none
    v2 = make_app()

    @v2.job(version="2")
    async def render(ctx: RunContext, payload: Any) -> str:
        return "v2"

    ids = {v: await v2.trigger("render", v, version=v) for v in ("1", "2", "")}
    async with running_node(v2):
        done2 = await v2.wait_for(ids["2"], 10)
        done_none = await v2.wait_for(ids[""], 10)
        # Then it never leases the old version's run
        still = await v2.get_run(ids["1"])
    assert done2.output == "v2" and done_none.status == "completed" and done2.version == "2"
    assert still is not None and still.status == "queued" and still.version == "1"
    # When a worker accepts version 1 as well (the documented override), the old run drains
    v2b = make_app(node_id="v2b")

    @v2b.job(version="2", accepts_versions=("1",))
    async def render(ctx: RunContext, payload: Any) -> str:  # noqa: F811 - same job, another node
        return "v2 took v1"

    async with running_node(v2b):
        old = await v2b.wait_for(ids["1"], 10)
    assert old.output == "v2 took v1"


async def test_trigger_records_the_registered_version(make_app: Any) -> None:
    worker = make_app()

    @worker.job(version="7")
    async def versioned(ctx: RunContext, payload: Any) -> None:
        return None

    await worker.register_jobs()
    producer_app = make_app()  # knows the job only from the registry
    run_id = await producer_app.trigger("versioned")
    run = await producer_app.get_run(run_id)
    assert run is not None and run.version == "7"


async def test_reconcile_finds_no_drift_after_kill_9_chaos(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given concurrency-limited runs worked by two processes, one of which is killed mid-way
    app = producer(settings)
    ids = await app.trigger_batch(
        [{"job": "cc_limited", "input": {"key": f"k{i % 4}"}, "concurrency_key": f"k{i % 4}"} for i in range(120)]
    )
    a = spawn_worker("tests.apps:app", worker_env(settings, "A"), tmp_path / "a.log")
    b = spawn_worker("tests.apps:app", worker_env(settings, "B"), tmp_path / "b.log")
    c = None
    try:
        async def some_done() -> bool:
            return (await app.count_by_status()).get("completed", 0) >= 30
        await eventually(some_done, 30)
        kill_process(a)
        c = spawn_worker("tests.apps:app", worker_env(settings, "C"), tmp_path / "c.log")

        async def all_done() -> bool:
            return (await app.count_by_status()).get("completed", 0) == 120
        await eventually(all_done, 60, interval=0.2)
    finally:
        for p in (b, c):
            if p is not None:
                stop_process(p)
        stop_process(a)
    # Then the exact indices agree with the records: zero drift
    drift = await app.reconcile()
    assert drift == {"total": 0, "leased": 0, "concurrency": 0, "ready": 0}
    # and the per-key limit held across the crash: the attempts that finished never overlapped
    # within a key (an attempt killed with A has no end; its lease expiry freed its place)
    events = [e.decode().split() for e in await redis.lrange(f"{settings.prefix}:test:cc-events", 0, -1)]
    begun: dict[str, tuple[str, int]] = {}
    spans: dict[str, list[tuple[int, int]]] = {}
    for kind, run_id, key, at in events:
        if kind == "start":
            begun[run_id] = (key, int(at))
        elif run_id in begun:
            k, start = begun.pop(run_id)
            spans.setdefault(k, []).append((start, int(at)))
    assert sum(len(v) for v in spans.values()) >= 120
    for key, intervals in spans.items():
        intervals.sort()
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(intervals)), key
    assert len(ids) == 120
    await app.close()


async def test_reconcile_repairs_and_reports_drift(make_app: Any, redis: Any) -> None:
    app = make_app()

    @app.job(max_concurrency=2)
    async def noop(ctx: RunContext, payload: Any) -> None:
        return None

    p = app.keys.partitions[0]
    # Given index entries out of step with the records (as a bug or a manual edit would leave)
    await redis.sadd(p.job_leases("noop"), "ghost-run")
    await redis.sadd(f"{p.prefix}ccsets", p.job_leases("noop"))
    await redis.zadd(p.leased, {"ghost-run": 1})
    drift = await app.reconcile()
    assert drift == {"total": 2, "leased": 1, "concurrency": 1, "ready": 0}
    assert await app.reconcile() == {"total": 0, "leased": 0, "concurrency": 0, "ready": 0}
