"""Steps, logs, progress, metadata, checkpoints, determinism, continuation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from runtime import Backoff, RunContext
from runtime.errors import DuplicateStep
from tests.nodes import eventually, running_node


async def test_completed_steps_are_not_executed_again_on_retry(make_app: Any) -> None:
    app = make_app()
    counts = {"a": 0, "b": 0, "c": 0}

    @app.job(max_attempts=3, backoff=Backoff("fixed", initial_s=0.05))
    async def flaky(ctx: RunContext, payload: Any) -> Any:
        def bump(name: str) -> str:
            counts[name] += 1
            return f"{name}-out"
        a = await ctx.step("a", bump, "a")
        b = await ctx.step("b", bump, "b")
        if ctx.attempt < 3:
            raise RuntimeError("fail after two steps")
        c = await ctx.step("c", bump, "c")
        return [a, b, c]

    async with running_node(app):
        run = await app.wait_for(await app.trigger("flaky"), 10)
    assert run.status == "completed" and run.output == ["a-out", "b-out", "c-out"]
    assert counts == {"a": 1, "b": 1, "c": 1}
    steps = await app.get_steps(run.id)
    assert [(s["name"], s["status"], s["output"]) for s in steps] == [
        ("a", "completed", "a-out"), ("b", "completed", "b-out"), ("c", "completed", "c-out")]
    assert run.raw["completed_step_count"] == "3" and run.raw["current_step_index"] == "2"


async def test_step_failure_fails_the_attempt_unless_caught(make_app: Any) -> None:
    app = make_app()

    @app.job(max_attempts=1)
    async def careful(ctx: RunContext, payload: Any) -> str:
        async def explode() -> None:
            raise ValueError("nope")
        try:
            await ctx.step("risky", explode)
        except ValueError:
            return "caught"
        return "unreachable"

    async with running_node(app):
        run = await app.wait_for(await app.trigger("careful"), 10)
    assert run.output == "caught"
    [step] = await app.get_steps(run.id)
    assert step["status"] == "failed" and "nope" in step["error"]


async def test_duplicate_step_name_is_an_error(make_app: Any) -> None:
    app = make_app()
    errors: list[str] = []

    # (attempts left: a duplicate name is a permanent failure, never retried)
    @app.job(max_attempts=3, backoff=Backoff("fixed", initial_s=0.05))
    async def dup(ctx: RunContext, payload: Any) -> None:
        await ctx.step("same", lambda: 1)
        try:
            await ctx.step("same", lambda: 2)
        except DuplicateStep as exc:
            errors.append(str(exc))
            raise

    async with running_node(app):
        run = await app.wait_for(await app.trigger("dup"), 10)
    assert run.status == "failed" and run.attempt == 1 and errors and "unique" in errors[0]
    assert run.error is not None and run.error["type"] == "DuplicateStep"
    [step] = await app.get_steps(run.id)
    assert step["output"] == 1  # the first record was not overwritten


async def test_non_deterministic_step_order_is_a_clear_error(make_app: Any) -> None:
    # Given a handler whose second attempt reaches a different step first
    app = make_app()

    @app.job(max_attempts=3, backoff=Backoff("fixed", initial_s=0.05))
    async def wobbly(ctx: RunContext, payload: Any) -> None:
        first = "alpha" if ctx.attempt == 1 else "beta"
        await ctx.step(first, lambda: first)
        if ctx.attempt == 1:
            raise RuntimeError("retry me")

    async with running_node(app):
        run = await app.wait_for(await app.trigger("wobbly"), 10)
    # Then the run fails permanently with a message naming both steps, and history is intact
    assert run.status == "failed"
    assert run.error is not None and run.error["type"] == "NonDeterminism"
    assert "'beta'" in run.error["message"] and "'alpha'" in run.error["message"]
    assert [s["name"] for s in await app.get_steps(run.id)] == ["alpha"]


async def test_logs_in_a_write_cut_off_by_the_attempts_end_are_kept(make_app: Any) -> None:
    # Given a node whose log writes take a while (a busy Redis)
    app = make_app()
    update = app.scripts.update
    writing = asyncio.Event()

    async def slow_update(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        await asyncio.sleep(0.5)
        return await update(*args, **kwargs)

    app.scripts.update = slow_update  # type: ignore[method-assign]

    @app.job()
    async def last_words(ctx: RunContext, payload: Any) -> str:
        # returns while the periodic write of its line is on its way
        ctx.log.info("the last line")
        await asyncio.wait_for(writing.wait(), 5)
        return "done"

    @app.job(timeout=0.2, max_attempts=1)
    async def overruns(ctx: RunContext, payload: Any) -> str:
        # times out while a step's record waits for the write of its line
        ctx.log.info("the line before the timeout")
        await ctx.step("slow", lambda: 1)
        return "never"

    async with running_node(app):
        done = await app.wait_for(await app.trigger("last_words"), 10)
        writing.clear()
        timed_out = await app.wait_for(await app.trigger("overruns"), 10)
    # Then each run ended with its line recorded: the attempt's end let the write finish, and
    # the outcome went out after it
    for run, line in ((done, "the last line"), (timed_out, "the line before the timeout")):
        messages = [e["data"]["message"] for e in await app.get_events(run.id) if e["type"] == "log"]
        assert line in messages, (run.status, messages)
    assert done.status == "completed" and timed_out.status == "dead_letter"


async def test_logs_progress_metadata_tags_are_recorded(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def chatty(ctx: RunContext, payload: Any) -> str:
        ctx.log.info("starting %s", "now", size=3)
        ctx.log.debug("detail %d", 5, part=1)  # below the daemon's log level: in the run's log all the same
        ctx.progress(1, 3, "one third")
        await ctx.step("work", lambda: ctx.log.warning("inside step"))
        logging.getLogger("user.code").warning("plain logging is captured too")
        ctx.set_metadata(phase="done")
        ctx.add_tags("vip")
        ctx.progress(3, 3)
        return "ok"

    async with running_node(app):
        run_id = await app.trigger("chatty", metadata={"customer": 7}, tags=["a"])
        run = await app.wait_for(run_id, 10)
    assert run.metadata == {"customer": 7, "phase": "done"} and run.tags == ["a", "vip"]
    assert run.raw["progress"] == '{"current":3,"total":3,"message":null}'
    events = await app.get_events(run_id)
    logs = [e["data"] for e in events if e["type"] == "log"]
    by_message = {entry["message"]: entry for entry in logs}
    assert by_message["starting now"]["data"] == {"size": 3} and by_message["starting now"]["level"] == "info"
    assert by_message["inside step"]["stepName"] == "work" and by_message["inside step"]["level"] == "warn"
    assert "plain logging is captured too" in by_message
    assert by_message["detail 5"]["level"] == "info" and by_message["detail 5"]["data"] == {"part": 1}
    assert set(by_message["starting now"]) == {"id", "runId", "stepName", "level", "message", "data", "timestamp"}
    kinds = [e["type"] for e in events]
    assert "progress" in kinds and "step" in kinds and kinds[-1] == "status"
    assert events[-1]["data"]["status"] == "completed"


async def test_a_retry_does_not_log_again_what_an_earlier_attempt_logged(
        make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Given a job that logs before, between and in two steps, the second failing on the first attempt
    app = make_app()
    replaying: list[tuple[int, str, bool]] = []

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def twice(ctx: RunContext, payload: Any) -> str:
        replaying.append((ctx.attempt, "start", ctx.replaying))
        ctx.log.info("before a")
        await ctx.step("a", lambda: "a")
        logging.getLogger("user.code").warning("between a and b")

        def b() -> str:
            replaying.append((ctx.attempt, "in b", ctx.replaying))
            ctx.log.info("in b, attempt %d", ctx.attempt)
            if ctx.attempt == 1:
                raise RuntimeError("b fails once")
            return "b"

        await ctx.step("b", b)
        replaying.append((ctx.attempt, "after", ctx.replaying))
        ctx.log.info("after b")
        return "done"

    # When it runs to completion on its retry
    with caplog.at_level(logging.INFO, logger="baton.job.twice"):
        async with running_node(app):
            run_id = await app.trigger("twice")
            run = await app.wait_for(run_id, 10)
    assert run.status == "completed" and len(run.attempts) == 2
    # Then the retry replayed up to the step the first attempt failed in, and ran that step anew
    assert replaying == [(1, "start", False), (1, "in b", False),
                         (2, "start", True), (2, "in b", False), (2, "after", False)]
    # And the run's log has each line once: the first attempt's (with the node's line on its failure),
    # then what the retry ran anew
    events = await app.get_events(run_id)
    logged = [e["data"]["message"] for e in events if e["type"] == "log"]
    assert logged == ["before a", "between a and b", "in b, attempt 1", "handler raised RuntimeError: b fails once",
                      "in b, attempt 2", "after b"]
    # And the node's own log says ctx.log's lines once too
    said = [r.getMessage() for r in caplog.records if r.name == "baton.job.twice"]
    assert said.count("before a") == 1 and said.count("after b") == 1


async def test_an_attempt_failing_while_it_replays_is_logged(make_app: Any) -> None:
    # Given a job whose second step fails on the first attempt, and whose second attempt raises before
    # it gets back there (while it replays)
    app = make_app()

    @app.job(max_attempts=3, backoff=Backoff("fixed", initial_s=0.05))
    async def fragile(ctx: RunContext, payload: Any) -> str:
        await ctx.step("a", lambda: "a")
        if ctx.attempt == 2:
            raise RuntimeError("broken on replay")

        def b() -> str:
            if ctx.attempt == 1:
                raise RuntimeError("b fails once")
            return "b"

        return await ctx.step("b", b)

    async with running_node(app):
        run_id = await app.trigger("fragile")
        run = await app.wait_for(run_id, 10)
    # Then the node's line on each failure is in the run's log, the one said while replaying too
    assert run.status == "completed" and len(run.attempts) == 3
    events = await app.get_events(run_id)
    assert [e["data"]["message"] for e in events if e["type"] == "log"] == [
        "handler raised RuntimeError: b fails once", "handler raised RuntimeError: broken on replay"]


async def test_a_run_woken_from_a_wait_does_not_log_again_what_it_logged_before(make_app: Any) -> None:
    # Given a job that logs, then waits for a child run (its attempt ends waiting; the child's end
    # queues it again, and it runs from the top)
    app = make_app()

    @app.job()
    async def child(ctx: RunContext, payload: Any) -> int:
        return 2

    @app.job()
    async def parent(ctx: RunContext, payload: Any) -> int:
        ctx.log.info("before the wait")
        ctx.progress(1, 2, "child started")
        ctx.set_metadata(phase="waiting")
        [value] = await ctx.trigger_and_wait_many([("child", {})])
        ctx.log.info("after the wait")
        ctx.progress(2, 2, "done")
        return int(value) * 2

    async with running_node(app):
        run_id = await app.trigger("parent")
        run = await app.wait_for(run_id, 10)
    # Then it ran twice, and its log holds each line once
    assert run.status == "completed" and run.output == 4 and len(run.attempts) == 2
    events = await app.get_events(run_id)
    assert [e["data"]["message"] for e in events if e["type"] == "log"] == ["before the wait", "after the wait"]
    # And its progress went forward only, its unchanged metadata written once
    assert [e["data"]["message"] for e in events if e["type"] == "progress"] == ["child started", "done"]
    assert len([e for e in events if e["type"] == "metadata"]) == 1 and run.metadata == {"phase": "waiting"}


async def test_a_retry_does_not_record_again_the_usage_an_earlier_attempt_recorded(make_app: Any) -> None:
    # Given an AI job that records a model call's usage, a tool call, an output and streamed chunks after
    # the step that made the call, then fails its first attempt in a later step
    app = make_app()

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def agent(ctx: RunContext, payload: Any) -> str:
        answer = await ctx.step("ask", lambda: "42")
        ctx.record_usage("openai", "gpt-4o-mini", prompt_tokens=800, completion_tokens=90, cost_microusd=1800)
        ctx.record_tool_call("search", {"q": "x"}, {"hits": 1}, duration_ms=5)
        ctx.output("answer", {"text": answer})
        ctx.stream(answer)

        def check() -> str:
            if ctx.attempt == 1:
                raise RuntimeError("check fails once")
            return "ok"

        await ctx.step("check", check)
        return answer

    async with running_node(app):
        run_id = await app.trigger("agent")
        run = await app.wait_for(run_id, 10)
    assert run.status == "completed" and len(run.attempts) == 2
    # Then the retry, replaying the code after "ask", recorded none of it again: the call's cost counts once
    p = app.keys.partition_of_run(run_id)
    kinds = [fields[b"type"].decode() for _, fields in await app.redis.xrange(p.records(run_id))]
    assert sorted(kinds) == ["output", "tool_call", "usage"]
    assert len(await app.redis.xrange(p.chunks(run_id))) == 1


async def test_checkpoints_are_sequenced_and_read_by_the_next_attempt(make_app: Any) -> None:
    app = make_app()
    seen: list[Any] = []

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def resumable(ctx: RunContext, payload: Any) -> int:
        latest = await ctx.latest_checkpoint()
        seen.append(latest["state"] if latest else None)
        start = latest["state"]["i"] if latest else 0
        for i in range(start, 5):
            await ctx.checkpoint({"i": i})
            if ctx.attempt == 1 and i == 2:
                raise RuntimeError("crash midway")
        return start

    async with running_node(app):
        run = await app.wait_for(await app.trigger("resumable"), 10)
    assert seen == [None, {"i": 2}] and run.output == 2
    cps = await app.get_checkpoints(run.id)
    assert [c["sequence"] for c in cps] == list(range(1, len(cps) + 1))
    assert set(cps[0]) == {"id", "run_id", "sequence", "source", "state", "created_at"}


async def test_a_retry_does_not_store_again_the_checkpoints_and_state_an_earlier_attempt_stored(
        make_app: Any) -> None:
    # Given a job that checkpoints and publishes its state before, between and after two steps,
    # the second failing on the first attempt
    app = make_app()
    seqs: list[tuple[int, int]] = []
    seen: list[tuple[int, Any, Any]] = []

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def staged(ctx: RunContext, payload: Any) -> str:
        seqs.append((ctx.attempt, await ctx.checkpoint({"i": 0})))
        await ctx.set_state({"stage": 0})
        # what a reader sees while the retry replays: the newest the first attempt stored
        latest = await ctx.latest_checkpoint()
        seen.append((ctx.attempt, latest["state"] if latest else None, await app.query(ctx.run_id)))
        await ctx.step("a", lambda: "a")
        seqs.append((ctx.attempt, await ctx.checkpoint({"i": 1})))
        seqs.append((ctx.attempt, await ctx.checkpoint({"i": 1.5})))
        await ctx.set_state({"stage": 1})

        def b() -> str:
            if ctx.attempt == 1:
                raise RuntimeError("b fails once")
            return "b"

        await ctx.step("b", b)
        seqs.append((ctx.attempt, await ctx.checkpoint({"i": 2})))
        return "done"

    # When it runs to completion on its retry
    async with running_node(app):
        run = await app.wait_for(await app.trigger("staged"), 10)
    assert run.status == "completed" and len(run.attempts) == 2
    # Then each checkpoint is stored once, and the replayed calls answered with the first one's sequence
    cps = await app.get_checkpoints(run.id)
    assert [(c["sequence"], c["state"]) for c in cps] == [(1, {"i": 0}), (2, {"i": 1}), (3, {"i": 1.5}), (4, {"i": 2})]
    assert seqs == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (2, 4)]
    # And while the retry replayed, the newest checkpoint and the published state stayed the first attempt's last
    assert seen == [(1, {"i": 0}, {"stage": 0}), (2, {"i": 1.5}, {"stage": 1})]


async def test_a_replayed_checkpoint_that_is_not_stored_any_more_is_stored_again(make_app: Any) -> None:
    # Given a job whose first attempt checkpoints, then fails after its checkpoints were lost
    app = make_app()
    seqs: list[tuple[int, int]] = []

    @app.job(max_attempts=2, backoff=Backoff("fixed", initial_s=0.05))
    async def forgetful(ctx: RunContext, payload: Any) -> str:
        seqs.append((ctx.attempt, await ctx.checkpoint({"i": 0})))

        async def b() -> str:
            if ctx.attempt == 1:
                await app.redis.delete(app.keys.partition_of_run(ctx.run_id).checkpoints(ctx.run_id))
                raise RuntimeError("b fails once")
            return "b"

        await ctx.step("b", b)
        return "done"

    # When the retry replays the checkpoint
    async with running_node(app):
        run = await app.wait_for(await app.trigger("forgetful"), 10)
    assert run.status == "completed"
    # Then, with nothing stored at its place to answer with, it is stored again
    assert seqs == [(1, 1), (2, 2)]
    assert [(c["sequence"], c["state"]) for c in await app.get_checkpoints(run.id)] == [(2, {"i": 0})]


async def test_continue_as_new_links_both_ways(make_app: Any) -> None:
    app = make_app()

    @app.job()
    async def countdown(ctx: RunContext, payload: Any) -> Any:
        if payload > 0:
            ctx.continue_as_new(payload - 1)
        return "liftoff"

    async with running_node(app):
        first = await app.wait_for(await app.trigger("countdown", 2), 10)
        second = await app.wait_for(first.output["continued_as"], 10)
        third = await app.wait_for(second.output["continued_as"], 10)
    assert third.output == "liftoff" and third.input == 0
    assert second.raw["continuation_of"] == first.id and first.raw["continued_as"] == second.id
    assert third.raw["continuation_of"] == second.id


async def test_sync_handler_can_log_and_report_progress(make_app: Any) -> None:
    app = make_app()

    @app.job()
    def blocking(ctx: RunContext, payload: Any) -> str:
        ctx.log.info("from a thread")
        ctx.progress(5, 10)
        return "ok"

    async with running_node(app):
        run = await app.wait_for(await app.trigger("blocking"), 10)
        await asyncio.sleep(0)
    events = await app.get_events(run.id)
    assert any(e["type"] == "log" and e["data"]["message"] == "from a thread" for e in events)
    assert run.raw["progress"] == '{"current":5,"total":10,"message":null}'


async def test_a_run_paused_at_a_step_boundary_logs_each_line_once_when_resumed(make_app: Any) -> None:
    # Given a run that logs before, between and after two steps, paused while its first step runs
    app = make_app()
    release = asyncio.Event()
    started = asyncio.Event()
    starts: list[bool] = []

    @app.job()
    async def paused(ctx: RunContext, payload: Any) -> str:
        starts.append(ctx.replaying)
        ctx.log.info("before a")

        async def a() -> str:
            started.set()
            await release.wait()
            return "a"

        await ctx.step("a", a)
        ctx.log.info("between a and b")
        await ctx.step("b", lambda: "b")
        ctx.log.info("after b")
        return "done"

    async with running_node(app):
        run_id = await app.trigger("paused")
        await asyncio.wait_for(started.wait(), 10)
        assert await app.pause(run_id) == "pause_requested"
        release.set()
        await eventually(lambda: _status(app, run_id, "paused"), 10)
        # When it is resumed
        assert await app.resume(run_id) == "resumed"
        run = await app.wait_for(run_id, 10)
    # Then it went on from its pause (the code before it replayed) and logged each line once
    assert run.status == "completed" and starts == [False, True]
    logged = [e["data"]["message"] for e in await app.get_events(run_id) if e["type"] == "log"]
    assert logged == ["before a", "between a and b", "after b"]


async def _status(app: Any, run_id: str, status: str) -> bool:
    run = await app.get_run(run_id)
    return bool(run is not None and run.status == status)
