"""Every part of a node tells a Redis outage from a refused command the same way (runtime/redis_faults.py).

Error replies are built by the Redis client's own parser, as a failed call raises them: the client
maps some codes to classes of their own and strips the code from the message, so a check of the
text alone misses them (the API answered a Redis out of memory with a 500, and the supervisor
spent its restart budget on it and stopped the node).
"""

from __future__ import annotations

import pytest
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError

from actors.entry_runs import ends_batch
from runtime.api.errors import redis_transient
from runtime.errors import NotReplicated
from runtime.redis_faults import SERVER_STATE_CODES, command_refused, described, is_outage, server_state


def reply(text: str) -> Exception:
    """The exception the client raises for an error reply ``text``."""
    error: Exception = BaseParser.parse_error(text)
    return error


#: each code as a command gets it, and as a script's call inside FCALL gets it
STATES = [reply(f"{code} the server cannot serve this now") for code in sorted(SERVER_STATE_CODES)] + [
    reply(f"{code} the server cannot serve this now script: 4c1d, on @user_script:133.")
    for code in sorted(SERVER_STATE_CODES)
]


@pytest.mark.parametrize("error", STATES, ids=lambda e: f"{type(e).__name__}:{str(e)[-12:]}")
def test_a_server_that_cannot_serve_now_is_an_outage_everywhere(error: Exception) -> None:
    # Given the error of a server that is there but cannot serve the command now (memory, failover ...)
    # Then the supervisor rides it out, the intake reads the batch again, and the API answers 503
    assert server_state(error) and is_outage(error)
    assert ends_batch(error)
    assert redis_transient(error)


@pytest.mark.parametrize("error", [RedisConnectionError("Connection refused"), NotReplicated("1 of 2 replicas")])
def test_a_lost_link_is_an_outage_everywhere(error: Exception) -> None:
    assert is_outage(error) and ends_batch(error) and redis_transient(error)
    assert not server_state(error)


@pytest.mark.parametrize("text", [
    "ERR wrong number of arguments for 'xadd' command",
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "NOPERM User worker has no permissions to run the 'flushall' command",
    "BUSYGROUP Consumer Group name already exists",
    "ERR user_script:57: attempt to compare nil with number script: 4c1d, on @user_script:57.",
    # the client raises these as a lost link (ConnectionError), but waiting does not heal them
    "WRONGPASS invalid username-password pair or user is disabled.",
    "NOAUTH Authentication required.",
])
def test_a_refused_command_is_not_an_outage(text: str) -> None:
    # Given a command Baton should not have sent (or a script that failed on its data)
    error = reply(text)
    # Then it is nobody's outage to wait out: the restart budget counts it and the API answers 500
    assert not server_state(error) and not is_outage(error)
    assert not redis_transient(error)


def test_a_logged_redis_error_keeps_its_message() -> None:
    # Given an error the client prints as "server:OutOfMemoryError" through repr
    error = reply("OOM command not allowed when used memory > 'maxmemory'.")
    # Then its description names the type and the server's message
    assert described(error) == "OutOfMemoryError: command not allowed when used memory > 'maxmemory'."
    assert described(TimeoutError()) == "TimeoutError"


#: how servers refuse a command they do not have or a user may not run, as the client raises it
REFUSALS = [
    ("ERR unknown command 'blmpop', with args beginning with: '1' '1' ", "blmpop"),  # Redis 7
    ("ERR unknown command `BLMPOP`, with args beginning with: `1`, `1`, ", "blmpop"),  # Redis 6
    ("NOPERM User baton-worker has no permissions to run the 'blmpop' command", "blmpop"),  # Redis 7.2
    ("NOPERM this user has no permissions to run the 'blmpop' command or its subcommand", "blmpop"),  # 7.0
    ("ERR unknown command `FCALL`, with args beginning with: `baton_runs_claim`, ", "fcall"),
    ("NOPERM User w has no permissions to run the 'function|load' command", "function"),
]


@pytest.mark.parametrize(("text", "command"), REFUSALS)
def test_a_refused_command_is_told_from_a_failed_one(text: str, command: str) -> None:
    error = reply(text)
    assert command_refused(error, command)
    assert not command_refused(error, "xreadgroup")  # (another command's refusal)
    assert not is_outage(error)


@pytest.mark.parametrize("text", [
    "NOPERM No permissions to access a key",  # a key, not the command
    "ERR wrong number of arguments for 'blmpop' command",
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "OOM command not allowed when used memory > 'maxmemory'.",
])
def test_a_command_that_failed_is_not_refused(text: str) -> None:
    assert not command_refused(reply(text), "blmpop")
