"""Signals, queries and waitpoint tokens: durable waits for messages addressed to one run."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import RunContext
from runtime.errors import (
    RunAlreadyFinished,
    RunNotFound,
    SignalBufferFull,
    SubmissionError,
    TokenAlreadyCompleted,
    TokenExpired,
    TokenNotFound,
    WaitTimeout,
)
from tests.nodes import eventually, running_node


async def test_signals_sent_before_the_wait_are_delivered_in_order_each_once(make_app: Any, redis: Any) -> None:
    # Given four partitions and a run that takes two "go" signals, and meanwhile got a "stop" one
    app = make_app(partitions=4)

    @app.job()
    async def consumer(ctx: RunContext, payload: Any) -> Any:
        first = await ctx.wait_for_signal("go")
        second = await ctx.wait_for_signal("go")
        return [first, second]

    # When three signals reach it before it starts (no node runs yet), in order
    run_id = await app.trigger("consumer")
    assert await app.signal(run_id, "go", {"n": 1}) is False
    assert await app.signal(run_id, "stop", None) is False
    assert await app.signal(run_id, "go", {"n": 2}) is False
    async with running_node(app):
        run = await app.wait_for(run_id, 10)
        # Then each wait took the oldest "go" signal, once, at once (in the attempt that ran: it never waited);
        # the other signal is still held for a later wait
        assert run.status == "completed" and run.output == [{"n": 1}, {"n": 2}]
        assert [a.status for a in run.attempts] == ["completed"]
        p = app.keys.partition_of_run(run_id)
        assert [e.decode() for e in await redis.lrange(p.signals(run_id), 0, -1)] == ["stop\nnull"]
        # and a finished run, an unknown run and bad input get clear errors
        with pytest.raises(RunAlreadyFinished):
            await app.signal(run_id, "go", 3)
        with pytest.raises(RunNotFound):
            await app.signal("no-such-run", "go", 3)
        with pytest.raises(SubmissionError, match="signal name"):
            await app.signal(run_id, "bad name!", 3)
        with pytest.raises(SubmissionError, match="max_input_bytes"):
            await app.signal(run_id, "go", "x" * (app.settings.max_input_bytes + 1))


async def test_a_waiting_run_resumes_on_its_signal_and_publishes_state(make_app: Any) -> None:
    # Given one slot and a run that publishes its state, then waits for a signal
    app = make_app(concurrency=1)

    @app.job()
    async def approval(ctx: RunContext, payload: Any) -> Any:
        await ctx.set_state({"stage": "waiting for approval"})
        decision = await ctx.wait_for_signal("decision", timeout=30)
        await ctx.set_state({"stage": "done", "decision": decision})
        try:
            await ctx.wait_for_signal("never", timeout=0.2)
        except WaitTimeout:
            return {"decision": decision, "late": "timed out"}
        return None

    async with running_node(app):
        run_id = await app.trigger("approval")
        await app.wait_for(run_id, 10, statuses={"waiting"})
        # When the state is queried while it waits
        assert await app.query(run_id) == {"stage": "waiting for approval"}
        # and the signal arrives
        assert await app.signal(run_id, "decision", "yes") is True
        run = await app.wait_for(run_id, 10)
    # Then it resumed with the data, its second wait timed out, and the latest state is readable
    assert run.status == "completed" and run.output == {"decision": "yes", "late": "timed out"}
    assert await app.query(run_id) == {"stage": "done", "decision": "yes"}
    with pytest.raises(RunNotFound):
        await app.query("no-such-run")
    # the attempts: the first ended in the wait, uncharged
    assert [a.status for a in run.attempts] == ["waiting", "waiting", "completed"] and run.attempts_charged == 1


async def test_state_writes_are_fenced_and_signal_buffers_are_capped(make_app: Any) -> None:
    app = make_app(signal_buffer_max=2)

    @app.job()
    async def holder(ctx: RunContext, payload: Any) -> Any:
        return await ctx.wait_for_signal("never-sent", timeout=30)

    async with running_node(app):
        run_id = await app.trigger("holder")
        await app.wait_for(run_id, 10, statuses={"waiting"})
        # a write with a token that holds no lease is refused
        assert await app.scripts.set_state(run_id, "stale-token", '{"x":1}') == -1
        assert await app.query(run_id) is None
        # Given a buffer of two, a third signal is refused and nothing held is lost
        await app.signal(run_id, "a", 1)
        await app.signal(run_id, "b", 2)
        with pytest.raises(SignalBufferFull):
            await app.signal(run_id, "c", 3)
        await app.cancel(run_id)


async def test_tokens_complete_a_wait_once_and_replays_keep_the_token(make_app: Any) -> None:
    # Given four partitions and a run that creates a token, publishes it, and waits for it
    app = make_app(partitions=4, token_secret="s3cret", api_public_url="https://baton.example.com")

    @app.job()
    async def review(ctx: RunContext, payload: Any) -> Any:
        token = await ctx.create_token(timeout=60, tags=["review", payload])
        await ctx.set_state({"token": token.id, "url": token.url})
        answer = await ctx.wait_for_token(token)
        again = await ctx.create_token(timeout=60)  # a second token: a new id
        return {"token": token.id, "answer": answer, "second": again.id}

    async with running_node(app):
        run_id = await app.trigger("review", "doc-1")
        await app.wait_for(run_id, 10, statuses={"waiting"})
        state = await app.query(run_id)
        token_id = state["token"]
        assert state["url"].startswith(f"https://baton.example.com/v1/tokens/{token_id}/callback/")
        # the token is listed, filtered by status and tags
        listed = await app.tokens.list(status="waiting", tags=["review"])
        assert [t["id"] for t in listed] == [token_id] and listed[0]["run_id"] == run_id
        assert await app.tokens.list(tags=["review", "doc-2"]) == []
        # When it is completed
        done = await app.tokens.complete(token_id, {"approved": True})
        assert done == {"id": token_id, "status": "completed", "run_id": run_id, "resumed": True}
        run = await app.wait_for(run_id, 10)
        # Then the run resumed with the data; the replay kept the first token (same id), the second is new
        assert run.status == "completed"
        assert run.output["token"] == token_id and run.output["answer"] == {"approved": True}
        assert run.output["second"] != token_id
        # a token settles once; unknown ids are not found
        with pytest.raises(TokenAlreadyCompleted):
            await app.tokens.complete(token_id, {"approved": False})
        with pytest.raises(TokenAlreadyCompleted):
            await app.tokens.expire(token_id)
        with pytest.raises(TokenNotFound):
            await app.tokens.complete("wpt_" + "0" * 26, 1)
        got = await app.tokens.get(token_id)
        assert got is not None and got["status"] == "completed" and got["output"] == {"approved": True}
        assert [t["status"] for t in await app.tokens.list(run_id=run_id)] == ["waiting", "completed"]


async def test_a_token_completed_before_the_wait_and_one_that_expires(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def early(ctx: RunContext, payload: Any) -> Any:
        token = await ctx.create_token(timeout=60)
        await ctx.set_state(token.id)
        await ctx.wait_for_signal("now")  # the token is completed meanwhile
        return await ctx.wait_for_token(token.id)

    @app.job()
    async def late(ctx: RunContext, payload: Any) -> Any:
        token = await ctx.create_token(timeout=0.3)
        await ctx.set_state(token.id)
        try:
            return await ctx.wait_for_token(token)
        except WaitTimeout:
            return "expired"

    async with running_node(app):
        early_id = await app.trigger("early")
        late_id = await app.trigger("late")
        await app.wait_for(early_id, 10, statuses={"waiting"})
        early_token = await eventually(lambda: app.query(early_id))
        # When the token is completed before its run waits for it
        assert (await app.tokens.complete(early_token, [1, 2]))["resumed"] is False
        await app.signal(early_id, "now")
        # Then the wait gets the data at once
        assert (await app.wait_for(early_id, 10)).output == [1, 2]
        # and a token whose timeout passes ends its wait with WaitTimeout, and cannot be completed
        assert (await app.wait_for(late_id, 10)).output == "expired"
        late_token = await app.query(late_id)
        with pytest.raises(TokenExpired):
            await app.tokens.complete(late_token, "too late")
        got = await app.tokens.get(late_token)
        assert got is not None and got["status"] == "expired"


async def test_a_wait_the_handler_catches_still_ends_its_attempt(make_app: Any) -> None:
    # Given a handler that catches BaseException around a durable wait (and so the wait's Suspend)
    app = make_app()

    @app.job()
    async def swallower(ctx: RunContext, payload: Any) -> Any:
        try:
            got = await ctx.wait_for_signal("go")
        except BaseException:  # noqa: BLE001 - what the test is about
            got = "swallowed"
        return got

    async with running_node(app):
        run_id = await app.trigger("swallower")
        # Then its attempt ends in the wait all the same, not completed past it with the wait step left waiting
        run = await app.wait_for(run_id, 10, statuses={"waiting", "completed"})
        assert run.status == "waiting", run.output
        # and the signal it waits for completes it with the signal's data
        assert await app.signal(run_id, "go", {"n": 1}) is True
        run = await app.wait_for(run_id, 10)
    assert run.status == "completed" and run.output == {"n": 1}
    assert [a.status for a in run.attempts] == ["waiting", "completed"]
