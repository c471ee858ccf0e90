"""Size limits on what a handler writes: each is enforced where the value is produced, through a real node,
and Redis never holds a value over its limit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from runtime import Baton, RunContext
from runtime.records import Run
from tests.nodes import running_node

#: small limits, so that the oversized values stay cheap; BIG is over every one of them
LIMITS = {"max_output_bytes": 4096, "max_checkpoint_bytes": 3072, "max_metadata_bytes": 2048,
          "max_record_bytes": 1024}
BIG = "é" * 3000  # 6000 bytes of UTF-8 but only 3000 characters: the limits count bytes

Handler = Callable[[RunContext, Any], Awaitable[Any]]


async def _return(ctx: RunContext, _: Any) -> Any:
    return BIG


async def _step(ctx: RunContext, _: Any) -> Any:
    return await ctx.step("big", lambda: BIG)


async def _output(ctx: RunContext, _: Any) -> Any:
    ctx.output("answer", BIG)


async def _checkpoint(ctx: RunContext, _: Any) -> Any:
    await ctx.checkpoint({"state": BIG})


async def _metadata(ctx: RunContext, _: Any) -> Any:
    ctx.set_metadata(small=1)
    ctx.set_metadata(blob=BIG)


async def _many_tags(ctx: RunContext, _: Any) -> Any:
    ctx.add_tags(*(f"t{i}" for i in range(11)))


async def _long_tag(ctx: RunContext, _: Any) -> Any:
    ctx.add_tags("x" * 129)


async def _usage(ctx: RunContext, _: Any) -> Any:
    ctx.record_usage("provider", BIG)


async def _tool_call(ctx: RunContext, _: Any) -> Any:
    ctx.record_tool_call("search", {"q": BIG})


async def _chunk(ctx: RunContext, _: Any) -> Any:
    ctx.stream(BIG)


async def _progress(ctx: RunContext, _: Any) -> Any:
    ctx.progress(1, 2, BIG)


#: job -> (handler, error type, limit named in the message)
FAILING: dict[str, tuple[Handler, str, str]] = {
    "big_return": (_return, "OutputTooLarge", "max_output_bytes"),
    "big_step": (_step, "OutputTooLarge", "max_output_bytes"),
    "big_output": (_output, "OutputTooLarge", "max_output_bytes"),
    "big_checkpoint": (_checkpoint, "ValueTooLarge", "max_checkpoint_bytes"),
    "big_metadata": (_metadata, "ValueTooLarge", "max_metadata_bytes"),
    "many_tags": (_many_tags, "ValueTooLarge", "MAX_TAGS"),
    "long_tag": (_long_tag, "ValueTooLarge", "MAX_TAG_LEN"),
    "big_usage": (_usage, "ValueTooLarge", "max_record_bytes"),
    "big_tool_call": (_tool_call, "ValueTooLarge", "max_record_bytes"),
    "big_chunk": (_chunk, "ValueTooLarge", "max_record_bytes"),
    "big_progress": (_progress, "ValueTooLarge", "max_record_bytes"),
}


async def _largest_values(redis: Any, prefix: str) -> list[tuple[int, str]]:
    """(bytes, where) of every value stored under the prefix: strings, hash fields, stream entry fields."""
    sizes: list[tuple[int, str]] = []
    async for key in redis.scan_iter(match=f"*{prefix}*", count=1000):
        kind = (await redis.type(key)).decode()
        name = key.decode()
        if kind == "string":
            sizes.append((len(await redis.get(key)), name))
        elif kind == "hash":
            sizes.extend((len(v), f"{name}.{k.decode()}") for k, v in (await redis.hgetall(key)).items())
        elif kind == "stream":
            for eid, fields in await redis.xrange(key):
                sizes.extend((len(v), f"{name}/{eid.decode()}.{k.decode()}") for k, v in fields.items())
    return sorted(sizes, reverse=True)


@pytest.fixture
async def limited(make_app: Any) -> Baton:
    app: Baton = make_app(**LIMITS)
    for name, (handler, _error, _limit) in FAILING.items():
        app.job(name=name, max_attempts=3)(handler)

    @app.job(max_attempts=1)
    async def loud(ctx: RunContext, _: Any) -> str:
        ctx.log.info(BIG, blob=BIG)
        logging.getLogger("someone.else").warning("%s", BIG)
        return "done"

    @app.job(max_attempts=1)
    async def within(ctx: RunContext, _: Any) -> str:
        # just under every limit: everything is written
        ctx.set_metadata(blob="m" * 1900)
        ctx.add_tags(*(f"t{i}" for i in range(9)), "x" * 128)
        await ctx.checkpoint("c" * 3000)
        ctx.output("answer", "o" * 3600)
        ctx.stream("s" * 900)
        return "r" * 4000

    return app


async def test_each_limit_fails_the_attempt_permanently_and_nothing_oversized_is_stored(
        limited: Baton, redis: Any) -> None:
    app = limited
    async with running_node(app):
        # Given a run of each job that writes one value over its limit, one that logs huge lines, and one
        # that writes values just under every limit
        ids = {name: await app.trigger(name, None) for name in [*FAILING, "loud", "within"]}
        runs: dict[str, Run] = {name: await app.wait_for(run_id, 30) for name, run_id in ids.items()}
    # Then each over-limit run failed at its first attempt (not retried: another would write the same value),
    # with the typed error naming the limit and the size
    for name, (_handler, error_type, limit_name) in FAILING.items():
        run = runs[name]
        assert run.status == "failed" and run.attempt == 1, (name, run.status, run.attempt, run.error)
        assert run.error is not None and run.error["type"] == error_type, (name, run.error)
        assert limit_name in run.error["message"] and str(LIMITS.get(limit_name, "")) in run.error["message"]
    assert "6002 bytes" in str(runs["big_return"].error)  # the JSON text: quotes and 3000 two-byte characters
    # And the huge log lines did not fail their run: each entry was cut to the record limit and says so
    assert runs["loud"].status == "completed", str(runs["loud"].error)[:600]
    logs = [e for e in await app.get_events(ids["loud"]) if e["type"] == "log"]
    cut = [e for e in logs if "log entry cut" in str(e["data"]["message"])]
    assert len(cut) == 2 and all(len(orjson.dumps(e["data"])) <= LIMITS["max_record_bytes"] for e in cut)
    # And values within the limits were all written
    within = runs["within"]
    assert within.status == "completed" and within.output == "r" * 4000 and len(within.tags) == 10
    assert (await app.latest_checkpoint(ids["within"]) or {}).get("state") == "c" * 3000
    # And no value in Redis is over the largest limit (no oversized value was stored anywhere)
    largest = await _largest_values(redis, app.settings.prefix)
    assert largest and largest[0][0] <= max(LIMITS.values()) + 512, largest[:3]


async def test_a_huge_exception_message_is_cut_to_the_record_limit(make_app: Any) -> None:
    # Given a handler that raises with a 5 MB message
    app = make_app(max_record_bytes=64 * 1024)

    @app.job(max_attempts=1)
    async def shouts(ctx: RunContext, payload: Any) -> None:
        raise ValueError("x" * 5_000_000)

    async with running_node(app):
        run = await app.wait_for(await app.trigger("shouts"), 20)
    # Then the attempt's error is stored, cut to the limit, and says so
    error = run.attempts[0].error
    assert error is not None and error["type"] == "ValueError"
    assert len(error["message"]) <= 64 * 1024 // 4 and "max_record_bytes" in error["message"]
    assert len(error["stack"]) <= 64 * 1024 // 4
