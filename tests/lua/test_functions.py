"""Baton's Lua as Redis Functions: every library loads, is loaded again when missing, versions
clean up after each other, a server without functions gets scripts, and no state outlives a call.

These tests load, flush and delete libraries, so each uses a server of its own."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from runtime.keys import Keys
from runtime.lua_source import LIBRARY_PREFIX, LUA_DIR, Library, library, load_source
from runtime.scripts import SCRIPT_NAMES, Scripts
from runtime.settings import Settings
from tests.lua.support import Lua
from tests.servers import RedisProcess


@pytest.fixture(scope="module")
def own_server() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture
async def own(own_server: RedisProcess) -> AsyncIterator[Any]:
    client = aioredis.from_url(own_server.url)
    await client.function_flush()
    yield client
    await client.aclose()


def make_lua(client: Any, settings: Settings, **changes: Any) -> Lua:
    settings = settings.with_changes(**changes)
    keys = Keys(settings.prefix, 1)
    return Lua(redis=client, settings=settings, keys=keys, scripts=Scripts(client, keys, settings))


async def calls(client: Any, command: str) -> int:
    return int((await client.info("commandstats")).get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_every_script_loads_as_a_library_and_as_a_script(own: Any) -> None:
    # Every operation, in both forms, is accepted by the server (a library's top level may use
    # no global function: a load error here is such a use)
    for name in SCRIPT_NAMES:
        lib = library(name)
        assert lib.name.startswith(f"{LIBRARY_PREFIX}{name}_")
        assert await own.function_load(lib.source) == lib.name.encode()
        await own.script_load(load_source(name))
    listed = await own.execute_command("FUNCTION", "LIST", "LIBRARYNAME", f"{LIBRARY_PREFIX}*")
    assert len(listed) == len(SCRIPT_NAMES)


async def test_a_missing_library_is_loaded_on_first_call_and_again_after_a_flush(own: Any, settings: Settings) -> None:
    # Given a server with no Baton library
    lua = make_lua(own, settings)
    before = await calls(own, "evalsha")
    run_id = await lua.create_one()
    assert await lua.run(run_id)
    # When the server loses its functions (a restart without persistence, say)
    await own.function_flush()
    # Then the next call loads the library again and works, through FCALL, never EVALSHA
    second = await lua.create_one(input={"again": True})
    assert (await lua.run(second))["status"] == "queued"
    assert await calls(own, "fcall") >= 2
    assert await calls(own, "evalsha") == before
    assert lua.scripts.lua.functions


async def test_redis_functions_off_runs_scripts(own: Any, settings: Settings) -> None:
    lua = make_lua(own, settings, redis_functions=False)
    fcalls = await calls(own, "fcall")
    run_id = await lua.create_one()
    assert (await lua.run(run_id))["status"] == "queued"
    assert await calls(own, "fcall") == fcalls  # scripts only
    assert await own.execute_command("FUNCTION", "LIST") == []


async def test_a_user_refused_functions_falls_back_to_scripts(
        own: Any, own_server: RedisProcess, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # Given an ACL user that may run scripts but not functions (as a server without FUNCTION)
    await own.execute_command("ACL", "SETUSER", "nofn", "on", ">pw", "~*", "&*", "+@all", "-fcall", "-function")
    user = aioredis.from_url(own_server.url.replace("redis://", "redis://nofn:pw@"))
    try:
        lua = make_lua(user, settings)
        # When it calls: a warning, then scripts, and the call works
        with caplog.at_level(logging.WARNING, logger="baton.lua"):
            run_id = await lua.create_one()
        assert (await lua.run(run_id))["status"] == "queued"
        assert not lua.scripts.lua.functions
        assert any("refuses Redis Functions" in r.getMessage() for r in caplog.records)
        # and later calls go straight to scripts
        await lua.create_one()
    finally:
        await user.aclose()
        await own.execute_command("ACL", "DELUSER", "nofn")


async def test_a_node_removes_other_versions_and_an_old_node_loads_its_own_again(own: Any, settings: Settings) -> None:
    # Given a node of this version and one of an "older" one (same operations, other code, other names)
    new = make_lua(own, settings)
    old = make_lua(own, settings)
    for name, lib in list(old.scripts.lua.libraries.items()):
        code = lib.source.split("\n", 1)[1].replace(lib.name, lib.name + "old")
        old.scripts.lua.libraries[name] = Library(lib.name + "old", f"#!lua name={lib.name}old\n-- older\n{code}")
    # and a library that is not Baton's
    await own.function_load("#!lua name=someone_else\nredis.register_function('someone_f', function() return 1 end)")
    await new.create_one()
    await old.create_one()
    old_names = {lib.name for lib in old.scripts.lua.libraries.values()}
    assert {n for n in old_names if n.startswith("baton_runs_create")} <= set(await library_names(own))
    # When the new node starts (removes the libraries of other versions)
    removed = await new.scripts.lua.remove_other_versions()
    # Then the old version's are gone, its own and the foreign one stay
    assert removed and set(removed) <= old_names
    names = set(await library_names(own))
    assert not names & old_names
    assert "someone_else" in names and library("runs_create").name in names
    # and the old node, still running, loads its own again on its next call
    run_id = await old.create_one(input={"still": "works"})
    assert (await old.run(run_id))["status"] == "queued"
    await old.scripts.lua.remove_other_versions()
    # (each removes the other's: the old node loaded only its runs_create again)
    assert await new.scripts.lua.remove_other_versions() == [n for n in old_names if n.startswith("baton_runs_create_")]


async def library_names(client: Any) -> list[str]:
    entries = [dict(zip(entry[::2], entry[1::2], strict=True)) for entry in await client.function_list()]
    return [entry[b"library_name"].decode() for entry in entries]


async def test_no_per_call_state_outlives_a_call(own: Any, settings: Settings) -> None:
    # Given a shared concurrency pool read (and cached for the call) by a claim
    lua = make_lua(own, settings)
    await lua.redis.hset(lua.part.shared_limits, "pool", "1,0,0")
    await lua.redis.hset(lua.part.jobs, "work", "0,0,0,0,0,0,pool")
    first = await lua.create_one()
    second = await lua.create_one()
    claimed, _ = await lua.scripts.claim(lua.part, "n1", 5, ["default"], ["work"], 0)
    assert [c.run_id for c in claimed] == [first]
    # When the pool grows between two calls, then the next call sees the new size (a value
    # cached by an earlier call of the same loaded function would still say 1)
    await lua.redis.hset(lua.part.shared_limits, "pool", "2,0,0")
    claimed, _ = await lua.scripts.claim(lua.part, "n1", 5, ["default"], ["work"], 0)
    assert [c.run_id for c in claimed] == [second]


def test_include_state_filled_by_a_function_is_marked_per_call() -> None:
    # A top-level table or value of an include that a function changes must be set afresh
    # on each call (a library's top level runs once): such a local is marked --@per-call.
    problems = []
    for path in sorted((LUA_DIR / "includes").glob("*.lua")):
        text = path.read_text()
        for match in re.finditer(r"^local ([A-Za-z_]\w*) = (.*)$", text, re.M):
            name, rest = match.groups()
            if "--@per-call" in rest:
                continue
            bodies = "\n".join(re.findall(r"^(?:local )?function [^\n]*\n(?:[ \t][^\n]*\n|\n)*?end$", text, re.M))
            changed = re.search(rf"(?<![\w.]){name}\s*\[[^\]]*\]\s*=[^=]|(?<![\w.]){name}\s*=[^=]|"
                                rf"table\.insert\(\s*{name}\b", bodies)
            if changed:
                problems.append(f"{path.name}: {name} is changed by a function ({changed.group(0).strip()})")
    assert not problems, problems


def test_the_per_call_marks_become_resets_at_the_start_of_each_call() -> None:
    lib = library("runs_claim")
    assert "local call = redis.call" not in lib.source and "\nlocal call\n" in lib.source
    header = next(line for line in lib.source.splitlines() if line.startswith("redis.register_function("))
    assert "call = redis.call" in header and "INT_TEXTS = {}" in header and "shared_values = {}" in header
    # the script form keeps them as they are: its top level runs on every call anyway
    assert "local call = redis.call  --@per-call" in load_source("runs_claim")


def test_library_names_follow_the_code() -> None:
    assert library("runs_claim") == library("runs_claim")
    assert len({library(n).name for n in SCRIPT_NAMES}) == len(SCRIPT_NAMES)
    assert re.fullmatch(r"baton_runs_claim_[0-9a-f]{12}", library("runs_claim").name)


async def test_a_node_start_loads_the_libraries_its_server_lacks(own: Any, own_server: RedisProcess,
                                                                  settings: Settings) -> None:
    # Given a server that has one of this version's libraries and not the others
    await own.config_resetstat()
    created = library("runs_create").name
    await own.function_load(library("runs_create").source)
    # When a node starts on it (its supervisor's start-up steps)
    from actors.node_start import update_libraries
    from runtime import Baton
    app = Baton(settings.with_changes(redis_url=own_server.url))
    try:
        await update_libraries(app, logging.getLogger("tests.functions"))
        # Then every library is there, each loaded once, the one it had left as it was
        assert set(await library_names(own)) == {library(name).name for name in SCRIPT_NAMES}
        assert await calls(own, "function|load") == len(SCRIPT_NAMES)  # (one by the test itself)
        # And a second start loads nothing
        assert await app.scripts.lua.load_missing() == []
        # And the first calls of a run's life find their functions: no miss, so no load on the way
        await own.config_resetstat()
        lua = make_lua(own, settings)
        claimed = await lua.claim_one(await lua.create_one())
        assert await lua.finish(claimed, "completed") == "completed"
        assert await calls(own, "function|load") == 0
        assert created in set(await library_names(own))
    finally:
        await app.close()


async def test_no_library_is_loaded_ahead_when_functions_are_off_or_refused(
        own: Any, own_server: RedisProcess, settings: Settings) -> None:
    # Given functions turned off, Then nothing is loaded ahead
    assert await make_lua(own, settings, redis_functions=False).scripts.lua.load_missing() == []
    assert await library_names(own) == []
    # Given a user that may not list or load functions, Then nothing is loaded and nothing raises
    await own.execute_command("ACL", "SETUSER", "nofn2", "on", ">pw", "~*", "&*", "+@all", "-function")
    user = aioredis.from_url(own_server.url.replace("redis://", "redis://nofn2:pw@"))
    try:
        assert await make_lua(user, settings).scripts.lua.load_missing() == []
        assert await library_names(own) == []
    finally:
        await user.aclose()
        await own.execute_command("ACL", "DELUSER", "nofn2")


async def test_a_client_builds_only_the_libraries_it_calls(own: Any, settings: Settings) -> None:
    # Given a new client (a producer's app): building all 31 libraries takes ~130 ms, which its
    # first trigger would wait for
    lua = make_lua(own, settings)
    # When it creates a run, Then it has built runs_create's library alone
    await lua.create_one()
    assert set(lua.scripts.lua._libraries) == {"runs_create"}
    # And every one is built when all are asked for (a node's start-up: load_missing)
    assert set(lua.scripts.lua.libraries) == set(SCRIPT_NAMES)
