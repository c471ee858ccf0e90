"""Completion hooks end to end: what fires on which outcome, with what input, exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from runtime import Baton
from runtime.api.views import native_run
from runtime.hooks import hook_run_id
from runtime.notify import ensure_group, process, read_entries
from runtime.statuses import TERMINAL
from tests.hooks.jobs import counts_key, define, inputs_key
from tests.integration.test_processes import worker_env
from tests.nodes import eventually, kill_process, running_node, spawn_worker, stop_process


async def _hook_runs(redis: Any, prefix: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await redis.hgetall(counts_key(prefix))).items()}


async def test_each_outcome_fires_its_hooks_once_with_the_outcome_as_input(make_app: Any, redis: Any) -> None:
    app = define(make_app())
    prefix = app.settings.prefix
    async with running_node(app):
        # Given runs that complete, fail for good, are dead-lettered and are canceled
        ok = await app.trigger("source", {"n": 1})
        bad = await app.trigger("source", {"fail": "permanent"})
        dead = await app.trigger("source", {"fail": "always"})
        canceled = await app.trigger("source", {"n": 2}, delay=60)
        await app.cancel(canceled)
        for run_id in (ok, bad, dead):
            await app.wait_for(run_id, 10)
        # When the hooks have run
        expected = {hook_run_id(ok, "on_success"), hook_run_id(bad, "on_failure"), hook_run_id(dead, "on_failure"),
                    hook_run_id(dead, "on_dead_letter")}
        runs = await eventually(lambda: _done(redis, prefix, expected))
    # Then each qualifying outcome made exactly one hook run (none for the cancellation, none on retries)
    assert runs == dict.fromkeys(expected, 1)
    inputs = {k.decode(): orjson.loads(v) for k, v in (await redis.hgetall(inputs_key(prefix))).items()}
    success = inputs[hook_run_id(ok, "on_success")]
    assert success == {"source_run_id": ok, "job": "source", "status": "completed", "hook": "on_success",
                       "attempt": 1, "output": {"n": 1}, "error": None}
    dead_input = inputs[hook_run_id(dead, "on_dead_letter")]
    assert dead_input["status"] == "dead_letter" and dead_input["attempt"] == 2
    assert dead_input["error"]["message"] == "boom" and dead_input["output"] is None
    assert inputs[hook_run_id(bad, "on_failure")]["status"] == "failed"
    # and a hook run is an ordinary run, linked to its source, that fires no hooks of its own
    hook = await app.get_run(hook_run_id(ok, "on_success"))
    assert hook is not None and hook.job == "record_hook" and hook.status == "completed"
    assert hook.raw["hook_of"] == ok and hook.raw["hook_kind"] == "on_success"
    # and the API's native run says so (the README: "listed by the API, fields hook_of and hook_kind")
    shown = native_run(hook)
    assert (shown["hook_of"], shown["hook_kind"]) == (ok, "on_success"), shown
    assert native_run(await app.get_run(ok))["hook_of"] is None  # type: ignore[arg-type]
    # and only runs that have something to notify go through the outbox (the hook's job has no hooks and
    # its project no webhooks); every entry was processed and deleted
    source = await app.get_run(ok)
    assert source is not None and source.raw.get("notify") == "1" and "notify" not in hook.raw
    await eventually(lambda: _outbox_empty(redis, app))


async def test_an_output_too_large_for_a_hook_input_starts_the_hook_without_it(make_app: Any, redis: Any) -> None:
    # Given inputs limited to 4 kB and a run whose output (its input, near that limit) is within the output
    # limit but, wrapped as its hook's input, over the input limit
    app = define(make_app(max_input_bytes=4096))
    prefix = app.settings.prefix
    async with running_node(app):
        ok = await app.trigger("source", {"blob": "x" * 4000})
        await app.wait_for(ok, 10)
        # When its outcome is processed
        hook = hook_run_id(ok, "on_success")
        await eventually(lambda: _done(redis, prefix, {hook}))
    # Then its hook still ran, once, told the output's size instead of given it (before: no hook at all)
    assert (await _hook_runs(redis, prefix)) == {hook: 1}
    given = orjson.loads(await redis.hget(inputs_key(prefix), hook))
    assert given["output"] is None and given["output_omitted_bytes"] == len('{"blob":""}') + 4000, given
    assert given["source_run_id"] == ok and given["status"] == "completed"


async def _outbox_empty(redis: Any, app: Baton) -> bool:
    return int(await redis.xlen(app.keys.partitions[0].outbox)) == 0


async def _done(redis: Any, prefix: str, expected: set[str]) -> dict[str, int] | None:
    runs = await _hook_runs(redis, prefix)
    return runs if set(runs) >= expected else None


async def test_an_outcome_processed_twice_makes_one_hook_run(make_app: Any, redis: Any) -> None:
    # Given a finished run whose outbox entry a notifier read and never acknowledged (its node died)
    app = define(make_app(notifier=False))
    prefix = app.settings.prefix
    part = app.keys.partitions[0]
    async with running_node(app):
        ok = await app.trigger("source", {"n": 3})
        await app.wait_for(ok, 10)
    await ensure_group(app, part)
    entries, _ = await read_entries(app, part, "ghost", 10, 60_000)
    assert [(run_id, status) for _, run_id, status in entries] == [(ok, "completed")]
    # When the entry is processed again, twice (the node that takes it over, and once more)
    await process(app, part, entries)
    await process(app, part, entries)
    # Then there is one hook run
    assert await app.get_run(hook_run_id(ok, "on_success")) is not None
    async with running_node(define(make_app(node_id="second", notify_claim_idle_ms=100))):
        await eventually(lambda: _done(redis, prefix, {hook_run_id(ok, "on_success")}))
        # and the new node took the ghost's pending entry over and acknowledged it
        await eventually(lambda: _no_pending(redis, app))
    assert await _hook_runs(redis, prefix) == {hook_run_id(ok, "on_success"): 1}


async def _no_pending(redis: Any, app: Any) -> bool:
    info = await redis.xpending(app.keys.partitions[0].outbox, app.keys.outbox_group)
    return int(info["pending"]) == 0


async def test_kill_9_of_a_worker_loses_no_hook_and_makes_none_twice(settings: Any, redis: Any,
                                                                    tmp_path: Path) -> None:
    # Given a worker process running hooked runs (some complete, some are dead-lettered)
    app = define(Baton(settings))
    prefix = settings.prefix
    env = worker_env(settings, "a", BATON_NOTIFY_CLAIM_IDLE_MS=500, BATON_CONCURRENCY=4)
    first = spawn_worker("tests.hooks.jobs:app", env, tmp_path / "a.log")
    try:
        payloads = [{"sleep": 0.02, "fail": "always" if i % 3 == 0 else None} for i in range(30)]
        ids = await app.trigger_batch([{"job": "source", "input": p} for p in payloads])
        # When it is killed -9 while outcomes are being recorded and turned into hook runs
        await eventually(lambda: _finished(app, ids, 8), timeout=20)
        kill_process(first)
        # and another worker takes over (the dead one's leases and unacknowledged outbox entries)
        second = spawn_worker("tests.hooks.jobs:app", {**env, "BATON_NODE_ID": "b"}, tmp_path / "b.log")
        expected = set()
        for run_id, payload in zip(ids, payloads, strict=True):
            kinds = ("on_failure", "on_dead_letter") if payload["fail"] else ("on_success",)
            expected |= {hook_run_id(run_id, kind) for kind in kinds}
        await eventually(lambda: _finished(app, ids, len(ids)), timeout=30)
        executed = await eventually(lambda: _done(redis, prefix, expected), timeout=30)
        await eventually(lambda: _no_pending(redis, app), timeout=10)
        stop_process(second)
    finally:
        kill_process(first)
        await app.close()
    # Then every qualifying outcome has its hook run, and no hook run exists twice or for nothing
    assert set(executed) == expected
    part = app.keys.partitions[0]
    all_runs = {f[b"r"].decode() for _, f in await redis.xrange(part.project_index("default"))}
    assert all_runs == set(ids) | expected
    for hook_id in expected:
        hook = await app.get_run(hook_id)
        assert hook is not None and hook.status == "completed", hook_id


async def _finished(app: Baton, ids: list[str], at_least: int) -> bool:
    runs = [await app.get_run(run_id) for run_id in ids]
    return sum(1 for r in runs if r is not None and r.status in TERMINAL) >= at_least
