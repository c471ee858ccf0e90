"""Which errors end an intake batch (read again later) and which reject one entry.

Error replies are built by the Redis client's own parser, as a failed call raises them.
"""

from __future__ import annotations

import pytest
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from actors.entry_runs import ends_batch


def reply(text: str) -> Exception:
    """The exception the client raises for an error reply ``text``."""
    error: Exception = BaseParser.parse_error(text)
    return error


@pytest.mark.parametrize("error", [
    RedisConnectionError("Connection reset by peer"), RedisTimeoutError("Timeout reading"), OSError("EPIPE"),
    TimeoutError(), ConnectionResetError(),
    reply("OOM command not allowed when used memory > 'maxmemory'. script: 4c1d, on @user_script:133."),
    reply("READONLY You can't write against a read only replica. script: 4c1d, on @user_script:133."),
    reply("NOSCRIPT No matching script. Please use EVAL."), reply("LOADING Redis is loading the dataset"),
    reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
    reply("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."),
    reply("ERR wrong number of arguments for 'xadd' command"),
])
def test_errors_about_redis_or_the_connection_end_the_batch(error: Exception) -> None:
    # Given an error about the server or the link, then the batch ends and nothing is rejected
    assert ends_batch(error)


@pytest.mark.parametrize("error", [
    reply("ERR invalid expire time in 'set' command script: 4c1d, on @user_script:133."),
    reply("ERR user_script:57: attempt to compare nil with number script: 4c1d, on @user_script:57."),
    ValueError("bad registry record"), TypeError("Integer exceeds 64-bit range"), KeyError("x"),
])
def test_errors_about_one_entry_reject_that_entry(error: Exception) -> None:
    # Given a script that failed on the data or a bug, then only the entry it happened on is rejected
    assert not ends_batch(error)
