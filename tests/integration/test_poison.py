"""Handlers that misbehave do not take their node's slots or other runs with them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runtime import Baton, RunContext, Settings
from tests.integration.test_processes import worker_env
from tests.nodes import running_node, spawn_worker, stop_process
from tests.poison_apps import app as poison_app


async def test_a_handler_that_ignores_cancellation_is_abandoned_after_the_grace(make_app: Any) -> None:
    # Given a node with one slot and a job whose handler swallows every cancellation
    app = make_app(concurrency=1)
    stop = asyncio.Event()

    @app.job(timeout=0.3, max_attempts=1)
    async def stubborn(ctx: RunContext, payload: Any) -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                pass  # the poison: cancellation ignored

    @app.job()
    async def after(ctx: RunContext, payload: Any) -> str:
        return "ran"

    async with running_node(app) as node:
        try:
            stubborn_id = await app.trigger("stubborn")
            after_id = await app.trigger("after")
            # When it runs past its timeout, then its attempt is recorded timed_out after the grace
            run = await app.wait_for(stubborn_id, 20)
            # and the only slot is free again: the next run completes
            other = await app.wait_for(after_id, 20)
            abandoned = node.metrics.registry.get_sample_value("baton_handlers_abandoned_total")
        finally:
            stop.set()
    assert run.status == "dead_letter" and [a.status for a in run.attempts] == ["timed_out"]
    assert run.error is not None and run.error["type"] == "JobTimeout"
    assert other.status == "completed" and other.output == "ran"
    assert abandoned == 1


#: each kind of BaseException a handler raises, and the error type its run records
KINDS = {"SystemExit": "SystemExit", "sys.exit": "SystemExit", "KeyboardInterrupt": "KeyboardInterrupt",
         "GeneratorExit": "GeneratorExit", "own": "OwnBaseException", "CancelledError": "HandlerCancelled"}


@pytest.mark.timeout(120)
async def test_a_handler_ending_in_any_base_exception_fails_its_attempts_and_its_worker_goes_on(
    settings: Settings, tmp_path: Path,
) -> None:
    # Given a worker process, and runs whose handlers (async, and plain functions in its threads) raise
    # each kind of BaseException: SystemExit, sys.exit(0), KeyboardInterrupt, GeneratorExit, one of their
    # own, and a CancelledError that nothing asked for
    app = Baton(settings)
    for job in poison_app.jobs:  # (the producer knows the jobs: it need not wait for the worker to list them)
        app.jobs.add(job.name, job.handler, job.options)
    worker = spawn_worker("tests.poison_apps:app", worker_env(settings, "P"), tmp_path / "p.log")
    try:
        ids = {(job, kind): await app.trigger(job, {"kind": kind})
               for job in ("raises_base", "raises_base_in_thread") for kind in KINDS}
        # When they run, Then each is an attempt failure like any other: charged, retried with the job's
        # backoff, and dead-lettered after its two attempts (not the end of the process, not a run left
        # executing, not a release taken again at once, for ever)
        for (job, kind), run_id in ids.items():
            run = await app.wait_for(run_id, 30)
            assert run.status == "dead_letter", (job, kind, run.status, run.attempts)
            assert [a.status for a in run.attempts] == ["failed", "failed"], (job, kind, run.attempts)
            # (a plain function's GeneratorExit goes on as a RuntimeError: thrown into the coroutine awaiting
            # it, it would read as that coroutine's close)
            recorded = "RuntimeError" if (job, kind) == ("raises_base_in_thread", "GeneratorExit") else KINDS[kind]
            assert run.error is not None and run.error["type"] == recorded, (job, kind, run.error)
        # And the worker is still there, running the runs that follow
        assert worker.poll() is None, (tmp_path / "p.log").read_text()[-3000:]
        after = await app.wait_for(await app.trigger("fine", {"n": 1}), 30)
        assert (after.status, after.output) == ("completed", {"n": 1})
    finally:
        assert stop_process(worker) == 0, (tmp_path / "p.log").read_text()[-3000:]
        await app.close()


async def test_an_error_whose_str_raises_is_recorded_as_itself(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Given a handler raising an exception whose __str__ raises in turn
    app = make_app()

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no str for you")

    @app.job(max_attempts=1)
    async def unprintable(ctx: RunContext, payload: Any) -> None:
        raise Unprintable()

    async with running_node(app):
        run = await app.wait_for(await app.trigger("unprintable"), 20)
    # Then its attempt failed with that exception's type, saying its text could not be had (not the
    # ValueError of its __str__ in its place, as an internal error)
    assert run.status == "dead_letter" and run.error is not None
    assert run.error["type"] == "Unprintable" and "its str() raised ValueError" in run.error["message"], run.error
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]
