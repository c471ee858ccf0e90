"""Retries with backoff, dead letters and replay, timeouts, permanent failures."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from runtime import Backoff, PermanentFailure, RunContext
from runtime.errors import OutageOutlastedLease
from tests.nodes import running_node


async def test_retry_backoff_then_dead_letter_then_replay(make_app: Any) -> None:
    # Given a job that always fails, with a fixed 0.3 s backoff and 3 attempts
    app = make_app()
    calls: list[float] = []

    @app.job(max_attempts=3, backoff=Backoff("fixed", initial_s=0.3, jitter=0))
    async def always_fails(ctx: RunContext, payload: Any) -> None:
        calls.append(time.monotonic())
        raise ValueError(f"boom {ctx.attempt}")

    async with running_node(app):
        run_id = await app.trigger("always_fails", {"x": 1})
        run = await app.wait_for(run_id, 15)
        # Then it ran three times, spaced by at least the backoff, and is dead-lettered
        assert run.status == "dead_letter"
        assert [a.status for a in run.attempts] == ["failed", "failed", "failed"]
        assert run.error is not None and run.error["type"] == "ValueError" and "boom 3" in run.error["message"]
        assert "Traceback" in run.attempts[0].error["stack"]  # type: ignore[index]
        gaps = [b - a for a, b in itertools.pairwise(calls)]
        assert len(calls) == 3 and all(g >= 0.28 for g in gaps), gaps
        dlq = await app.list_dead_letter()
        assert [r.id for r in dlq] == [run_id]
        # When the dead-lettered run is replayed
        new_id = await app.replay(run_id)
        replayed = await app.wait_for(new_id, 15)
    # Then a new linked run was made and the old record is untouched
    assert replayed.replay_of == run_id and replayed.input == {"x": 1}
    assert (await app.get_run(run_id)).status == "dead_letter"  # type: ignore[union-attr]


async def test_exponential_backoff_delays_grow(make_app: Any) -> None:
    # Given a job failing twice with exponential backoff from 0.2 s
    app = make_app()
    calls: list[float] = []

    @app.job(max_attempts=3, backoff=Backoff("exponential", initial_s=0.2, max_s=10, jitter=0))
    async def flaky(ctx: RunContext, payload: Any) -> str:
        calls.append(time.monotonic())
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return "ok"

    async with running_node(app):
        run = await app.wait_for(await app.trigger("flaky"), 15)
    # Then the second gap is about twice the first and the run completed on attempt 3
    assert run.status == "completed" and run.output == "ok" and run.attempt == 3
    g1, g2 = calls[1] - calls[0], calls[2] - calls[1]
    assert 0.18 <= g1 < 0.39 and 0.38 <= g2 < 0.8, (g1, g2)
    assert run.attempts[0].status == "failed" and run.attempts[2].status == "completed"


async def test_timeout_cancels_handler_and_records_timed_out(make_app: Any) -> None:
    # Given a handler slower than its 0.2 s timeout, with two attempts
    app = make_app()
    cancelled = asyncio.Event()

    @app.job(timeout=0.2, max_attempts=2, backoff=Backoff("fixed", initial_s=0.05, jitter=0))
    async def slow(ctx: RunContext, payload: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with running_node(app):
        run = await app.wait_for(await app.trigger("slow"), 15)
    # Then the handler saw cancellation and both attempts are timed_out
    assert cancelled.is_set()
    assert [a.status for a in run.attempts] == ["timed_out", "timed_out"]
    assert run.status == "dead_letter" and run.error["type"] == "JobTimeout"  # type: ignore[index]


async def test_permanent_failure_is_not_retried(make_app: Any) -> None:
    app = make_app()

    @app.job(max_attempts=5)
    async def refuse(ctx: RunContext, payload: Any) -> None:
        raise PermanentFailure("bad input, do not retry")

    async with running_node(app):
        run = await app.wait_for(await app.trigger("refuse"), 10)
    assert run.status == "failed" and len(run.attempts) == 1


@pytest.mark.parametrize("where", ["returned", "a step's output", "the state", "a checkpoint", "metadata"])
@pytest.mark.parametrize("value", [object(), {1, 2}, {"x": float("nan")}, [float("inf")]],
                         ids=["object", "set", "nan", "infinity"])
async def test_a_value_that_cannot_be_stored_fails_the_run_at_once(make_app: Any, where: str, value: Any) -> None:
    # Given a handler that produces a value JSON cannot carry as it is (no form for its type, or a NaN or
    # infinity orjson would write as null), with attempts to spare
    app = make_app()
    calls: list[int] = []

    @app.job(max_attempts=3, backoff=Backoff("fixed", initial_s=0.01))
    async def weird(ctx: RunContext, payload: Any) -> Any:
        calls.append(1)
        if where == "returned":
            return value
        if where == "a step's output":
            return await ctx.step("make", lambda: value)
        if where == "the state":
            await ctx.set_state(value)
        elif where == "a checkpoint":
            await ctx.checkpoint(value)
        else:
            ctx.set_metadata(value=value)
        return "unreachable"

    async with running_node(app):
        run = await app.wait_for(await app.trigger("weird"), 10)
    # Then the run fails at once, saying why: another attempt would produce the same value (and run a step
    # body again), and nothing was stored in its place (a NaN was once stored as null)
    assert run.status == "failed" and len(calls) == 1 and len(run.attempts) == 1, (run.status, calls)
    assert run.error is not None and run.error["type"] == "ValueNotStorable", run.error
    assert "JSON" in run.error["message"] or "holds" in run.error["message"], run.error


async def test_a_type_error_the_handler_raises_is_the_handlers_with_its_traceback(make_app: Any) -> None:
    # Given a handler whose own code raises TypeError (as orjson's encode error is a TypeError, the
    # attempt's end once took it for a result it could not store, and lost the handler's frames)
    app = make_app()

    def add_one(value: Any) -> Any:
        return value + 1

    @app.job(max_attempts=1)
    async def buggy(ctx: RunContext, payload: Any) -> Any:
        return add_one("not a number")

    async with running_node(app):
        run = await app.wait_for(await app.trigger("buggy"), 10)
    # Then the run failed with the handler's own error and a stack through its code
    assert run.status == "dead_letter" and run.error is not None
    assert run.error["type"] == "TypeError" and "can only concatenate str" in run.error["message"], run.error
    assert "JSON" not in run.error["message"] and "add_one" in run.error["stack"], run.error


async def test_an_attempt_ended_by_a_redis_outage_is_given_back_uncharged(make_app: Any) -> None:
    # Given a one-attempt job whose first attempt meets a Redis outage that outlasts its lease
    # (what the run context's writes raise then: runtime/redis_faults.py ride_out)
    app = make_app()

    @app.job(max_attempts=1, backoff=Backoff("fixed", initial_s=0.05, jitter=0))
    async def cut_off(ctx: RunContext, payload: Any) -> str:
        if ctx.attempt == 1:
            raise OutageOutlastedLease("run x: recording step 'a': Redis unavailable until the lease may have expired")
        return "ok"

    async with running_node(app):
        run = await app.wait_for(await app.trigger("cut_off"), 15)
    # Then the attempt was given back without being charged: the run completed on its next attempt
    assert (run.status, run.output, run.attempt) == ("completed", "ok", 2)
    first = run.attempts[0]
    assert first.status == "released" and first.error is not None
    assert first.error["type"] == "OutageOutlastedLease" and "Redis unavailable" in first.error["message"]
