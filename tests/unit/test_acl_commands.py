"""The shipped ACL users may run every command Baton's Lua scripts call.

A script that calls a command its caller's ACL user lacks fails at run time with a NOPERM
error, on whichever path first reaches that line (a replay of a dependent, say): the
end-to-end ACL test cannot walk every path, so every command any script names is checked
against the users that call scripts."""

from __future__ import annotations

import re

from runtime.lua_source import LUA_DIR
from tests.nodes import ROOT

USERS = ROOT / "deploy" / "redis" / "users.acl"
#: the users that run Baton's Lua (FCALL, FUNCTION LOAD; runtime/lua_calls.py): workers and the API
SCRIPT_USERS = ("baton-worker", "baton-api")


def script_commands() -> set[str]:
    """Every command named in a redis.call of a script or include (lower case)."""
    found: set[str] = set()
    for path in LUA_DIR.rglob("*.lua"):
        found |= {m.lower() for m in re.findall(r"call\('([A-Za-z]+)'", path.read_text())}
    return found


def granted(user: str) -> set[str]:
    """The commands ``user`` is granted in users.acl (+cmd and +cmd|sub, lower case)."""
    [line] = [line for line in USERS.read_text().splitlines() if line.split()[:2] == ["user", user]]
    return {token[1:].split("|")[0].lower() for token in line.split() if token.startswith("+")}


def test_the_script_users_may_run_every_command_the_scripts_call() -> None:
    commands = script_commands()
    assert {"hset", "zadd", "xadd"} <= commands  # the scan finds the scripts' calls
    for user in SCRIPT_USERS:
        assert commands - granted(user) == set(), f"{user} lacks commands the Lua scripts call"


def test_the_script_users_may_call_and_load_functions() -> None:
    # runtime/lua_calls.py sends FCALL and, for a missing library, FUNCTION LOAD; a worker
    # starting lists and deletes the libraries of other versions
    line = {user: next(line for line in USERS.read_text().splitlines() if line.split()[:2] == ["user", user])
            for user in SCRIPT_USERS}
    for user in SCRIPT_USERS:
        assert {"+fcall", "+function|load"} <= set(line[user].split()), user
    assert {"+function|list", "+function|delete"} <= set(line["baton-worker"].split())
