"""A run record leaves out max_attempts and timeout_ms when they are RECORD_DEFAULTS's, and ready_at
while the run is ready since its creation: every reader, Lua and Python, takes them."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from runtime.jobs import JobOptions
from runtime.records import Run
from runtime.submission import RECORD_DEFAULTS
from tests.lua.support import Lua

ERROR = orjson.dumps({"message": "boom", "type": "ValueError", "stack": ""}).decode()
DEFAULT_JOB = JobOptions(timeout_s=RECORD_DEFAULTS.timeout_ms / 1000)
LUA_DIR = Path(__file__).resolve().parents[2] / "runtime" / "lua"
#: record fields a record may leave out, and what a raw read of one must name to make up for it
LEFT_OUT = {"max_attempts": "RECORD_DEFAULT", "timeout_ms": "RECORD_DEFAULT", "ready_at": "created_at"}


async def test_a_run_with_the_defaults_stores_none_of_them_and_reads_them_back(lua: Lua) -> None:
    # Given a run created with the default attempts and timeout (the suite's settings
    # give runs 30 s: this job has the record default)
    lua.jobs["work"] = DEFAULT_JOB
    run_id = await lua.create_one()
    raw = await lua.redis.hgetall(lua.part.run(run_id))
    fields = {k.decode() for k in raw}
    # Then its record holds none of them, nor a ready time (it is ready since created)
    assert not fields & set(LEFT_OUT), fields
    # And the Python reader gives the defaults
    run = Run.from_hash(raw, run_id=run_id)
    assert (run.max_attempts, run.timeout_ms) == (RECORD_DEFAULTS.max_attempts, RECORD_DEFAULTS.timeout_ms)
    # And the claim carries the default timeout, and the creation as the time it became ready
    [c] = await lua.claim(1)
    assert c.timeout_ms == RECORD_DEFAULTS.timeout_ms
    assert c.ready_at_ms == int(raw[b"created_at"])


async def test_a_run_with_the_default_attempts_is_retried_until_the_default_is_spent(lua: Lua) -> None:
    # Given a run with the default max_attempts (stored as nothing)
    lua.jobs["work"] = DEFAULT_JOB
    run_id = await lua.create_one()
    statuses: list[str | int] = []
    # When each of its attempts fails (each retry made due at once)
    for _ in range(RECORD_DEFAULTS.max_attempts):
        if statuses:
            await lua.redis.zadd(lua.part.delayed, {run_id: 0})
            assert (await lua.scripts.promote(lua.part))[0] == 1
        claimed = await lua.claim_one(run_id)
        statuses.append(await lua.finish(claimed, "failed", error_json=ERROR))
    # Then it was retried until the default number of attempts was charged
    assert statuses == ["delayed"] * (RECORD_DEFAULTS.max_attempts - 1) + ["dead_letter"], statuses


async def test_values_other_than_the_defaults_are_stored(lua: Lua) -> None:
    # Given a run with its own attempts and timeout (and queue, which is always stored)
    await lua.redis.sadd(lua.part.queues, "other")
    run_id = await lua.create_one(queue="other", max_attempts=7, timeout_s=9)
    # Then the record holds each of them
    run = await lua.run(run_id)
    assert (run["queue"], run["max_attempts"], run["timeout_ms"]) == ("other", "7", "9000")
    # And the claim carries its timeout
    [c] = await lua.claim(1, queues=["other"])
    assert c.timeout_ms == 9000


def test_every_raw_read_of_a_left_out_field_makes_up_for_it() -> None:
    # A script reading one of these fields with HGET/HMGET directly (not through read_fields or
    # read_all, which fill the defaults) names the default, or created_at, within a few lines
    offenders = []
    for path in sorted(LUA_DIR.rglob("*.lua")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not re.search(r"call\('HM?GET'", line):
                continue
            read = line + (lines[i + 1] if i + 1 < len(lines) and not re.search(r"call\(", lines[i + 1]) else "")
            window = "\n".join(lines[i:i + 5])
            for name, remedy in LEFT_OUT.items():
                if f"'{name}'" in read and remedy not in window:
                    offenders.append(f"{path.relative_to(LUA_DIR)}:{i + 1} reads {name} without {remedy}")
    assert offenders == []
