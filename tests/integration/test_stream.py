"""The submission stream: the README's redis-cli example, and malformed entries."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import orjson

from runtime import RunContext
from tests.nodes import eventually, running_node

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_xadd_args() -> list[str]:
    """The exact Redis command of the README's stream example (sent with `baton redis-cli`), as arguments."""
    text = README.read_text()
    block = re.search(r"<!-- xadd-example -->\s*```sh\nid=\$\((.*?)\)\n```", text, re.S)
    assert block, "README lost its xadd example (id=$(<command>))"
    args = shlex.split(block.group(1))
    assert args[:2] == [".venv/bin/baton", "redis-cli"], args
    return args[2:]


async def test_readme_redis_cli_example(make_app: Any, redis: Any) -> None:
    # Given the README's example job, on the default "baton" prefix of this test's server
    app = make_app(prefix="baton")

    @app.job()
    async def hello(ctx: RunContext, payload: Any) -> dict[str, str]:
        return {"greeting": f"hello, {payload['name']}"}

    # When the README's command is sent verbatim (as redis-cli would send it)
    entry_id = (await redis.execute_command(*readme_xadd_args())).decode()
    async with running_node(app):
        run = await app.wait_for(entry_id, 10)
    # Then the run's id is the entry id and it completed with all the options applied
    assert run.status == "completed" and run.output == {"greeting": "hello, Ada"}
    assert run.priority == 5 and run.idempotency_key == "greet-ada-1" and run.source == "stream"
    await redis.delete("{baton}:submit")


async def test_malformed_entries_are_rejected_and_the_rest_flows(make_app: Any, redis: Any) -> None:
    app = make_app(max_input_bytes=1000)

    @app.job()
    async def echo(ctx: RunContext, payload: Any) -> Any:
        return payload

    keys = app.keys
    bad = [
        ({"job": "echo", "input": "{not json"}, "bad_json"),
        # (orjson would read these as floats: 1.2345678901234568e+29, -9.223372036854776e+18)
        ({"job": "echo", "input": '{"n": 123456789012345678901234567890}'}, "bad_json"),
        ({"job": "echo", "input": "[-9223372036854775809]"}, "bad_json"),
        ({"job": "echo", "input": "[" * 201 + "]" * 201}, "bad_json"),
        ({"job": "ghost", "input": "{}"}, "unknown_job"),
        ({"input": "{}"}, "missing_field"),
        ({"job": "echo", "input": '"' + "x" * 2000 + '"'}, "too_large"),
        ({"job": "echo", "priority": "high"}, "bad_priority"),
        ({"job": "echo", "labels": "[1, 2]"}, "bad_labels"),
        ({"job": "echo", "colour": "blue"}, "unknown_field"),
        ({"job": "echo", "max_attempts": "0"}, "bad_max_attempts"),
        ({"job": "echo", "delay": "soon"}, "bad_delay"),
        ({"job": "echo", "id": "has spaces"}, "bad_id"),
        ({"job": b"\xff\xfe"}, "bad_encoding"),
        ({"job": "echo", "delay": "1", "delay_ms": "1000"}, "bad_delay"),  # (which one was meant?)
        ({"job": "echo", "debounce_window": "5"}, "bad_debounce"),  # (a debounce without its key)
        ({"job": "echo", "prefer_wait": "null"}, "bad_prefer_wait"),  # (a number field, as any other)
        ({"job": "echo", "prefer_wait": "nan"}, "bad_prefer_wait"),
    ]
    # Given valid entries interleaved with malformed ones
    good_ids: list[str] = []
    bad_ids: dict[str, str] = {}
    for i, (fields, reason) in enumerate(bad):
        good_ids.append((await redis.xadd(keys.submit_stream, {"job": "echo", "input": str(i)})).decode())
        bad_ids[(await redis.xadd(keys.submit_stream, fields)).decode()] = reason
    # (a field given twice: XADD keeps both, and which one was meant is unknown)
    for args in (("job", "echo", "job", "ghost"), ("job", "echo", "input", "1", "input", "2"),
                 ("event", "k", "data", "1", "data", "2")):
        bad_ids[(await redis.execute_command("XADD", keys.submit_stream, "*", *args)).decode()] = "repeated_field"
    good_ids.append((await redis.xadd(keys.submit_stream, {"job": "echo", "input": "99"})).decode())
    # (the integers at either end of what is read exactly, and long digits that are no integer, are kept)
    exact = [18446744073709551615, -9223372036854775808, "123456789012345678901234567890", 1.25e300]
    good_ids.append((await redis.xadd(keys.submit_stream, {"job": "echo", "input": orjson.dumps(exact)})).decode())
    # When a node processes the stream
    async with running_node(app):
        runs = [await app.wait_for(rid, 10) for rid in good_ids]

        async def all_rejected() -> Any:
            entries = await redis.xrange(keys.rejected_stream)
            return entries if len(entries) == len(bad_ids) else None

        rejected = await eventually(all_rejected, 10)
        pending = await redis.xpending(keys.submit_stream, keys.intake_group)
    # Then every valid run completed, every bad entry is in the rejected stream with its reason
    assert [r.output for r in runs] == [*range(len(bad)), 99, exact]
    got = {f[b"entry_id"].decode(): f[b"reason"].decode() for _, f in rejected}
    assert got == bad_ids
    first = rejected[0][1]
    assert b"error" in first and orjson.loads(first[b"fields"])  # original fields kept
    # and everything was acknowledged
    assert pending["pending"] == 0
    for rid in bad_ids:
        assert await app.get_run(rid) is None


async def test_a_run_submitted_to_an_idle_node_starts_from_its_intake_without_a_hand_off(
        make_app: Any, redis: Any) -> None:
    # Given an idle node waiting for work (registered for hand-offs in its partition)
    app = make_app()

    @app.job()
    async def echo(ctx: RunContext, payload: Any) -> Any:
        return payload

    p = app.keys.partitions[0]
    async with running_node(app):
        await eventually(lambda: redis.exists(p.waiter(app.settings.node_id)), 10)
        pushes_before = (await redis.info("commandstats")).get("cmdstat_rpush", {}).get("calls", 0)
        # When entries arrive on the submission stream one at a time, each after the last completed
        for i in range(5):
            entry = (await redis.xadd(app.keys.submit_stream, {"job": "echo", "input": orjson.dumps(i)})).decode()
            run = await app.wait_for(entry, 10)
            assert run.status == "completed" and run.output == i
            assert run.attempts[0].worker_id == app.settings.node_id
            await eventually(lambda: redis.exists(p.waiter(app.settings.node_id)), 10)
        # Then every one was leased to the node in the call that created it and started from there:
        # nothing was pushed to its hand-off list (the receiver's hop) and nothing was counted in transit
        pushes_after = (await redis.info("commandstats")).get("cmdstat_rpush", {}).get("calls", 0)
        assert pushes_after == pushes_before
        assert await redis.llen(p.handoff(app.settings.node_id)) == 0


async def test_a_lone_entry_is_acknowledged_with_the_next_read_and_a_stop_right_after_loses_nothing(
        make_app: Any, redis: Any) -> None:
    # Given a node that counts each run's executions
    app = make_app()

    @app.job()
    async def counted(ctx: RunContext, payload: Any) -> Any:
        await redis.hincrby("test:executions", ctx.run_id, 1)
        return payload

    keys = app.keys

    async def nothing_pending() -> bool:
        return (await redis.xpending(keys.submit_stream, keys.intake_group))["pending"] == 0

    entries = []
    async with running_node(app):
        # When entries arrive one at a time, each after the last completed
        for i in range(3):
            entries.append((await redis.xadd(keys.submit_stream, {"job": "counted", "input": str(i)})).decode())
            assert (await app.wait_for(entries[-1], 10)).output == i
            # Then each is acknowledged at once (its acknowledgement goes with the read after it)
            await eventually(nothing_pending, 5)
        # When the node stops right after one more entry's run completed
        entries.append((await redis.xadd(keys.submit_stream, {"job": "counted", "input": "3"})).decode())
        assert (await app.wait_for(entries[-1], 10)).output == 3
    # Then nothing is left pending, and every run ran exactly once
    assert await nothing_pending()
    executions = await redis.hgetall("test:executions")
    assert {k.decode(): int(v) for k, v in executions.items()} == dict.fromkeys(entries, 1)
