"""A leaser duty tries every partition whatever became of the others (actors/leaser.py in_each)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from actors.leaser import in_each
from runtime.errors import RedisUnavailable


async def test_a_failing_partition_does_not_stop_the_others() -> None:
    # Given three partitions, the first two of whose masters refuse the connection
    done: list[int] = []

    async def work(index: int) -> None:
        if index < 2:
            raise RedisConnectionError(f"partition {index}: connection refused")
        done.append(index)

    # When a duty runs over them, Then the third is still served, and the first error is raised after
    with pytest.raises(RedisConnectionError, match="partition 0"):
        await in_each([0, 1, 2], work, 5.0)
    assert done == [2]


async def test_an_error_that_is_not_redis_stops_the_duty_at_once() -> None:
    # (a bug is not a partition's outage: it is raised where it happens)
    done: list[int] = []

    async def work(index: int) -> None:
        if index == 0:
            raise KeyError("bug")
        done.append(index)

    with pytest.raises(KeyError):
        await in_each([0, 1], work, 5.0)
    assert done == [1]  # (the others were under way: they end too)


async def test_a_partition_that_does_not_answer_is_cut_off_and_holds_up_no_other() -> None:
    # Given three partitions, the first of whose masters never answers (black-holed)
    done: list[int] = []

    async def work(index: int) -> None:
        if index == 0:
            await asyncio.Event().wait()
        done.append(index)

    began = time.monotonic()
    # When a duty runs over them with a bound of 0.3 s
    with pytest.raises(RedisUnavailable, match=r"no answer within 0\.3s"):
        await in_each([0, 1, 2], work, 0.3)
    # Then the others were served, and the duty ended at the bound
    assert sorted(done) == [1, 2]
    assert time.monotonic() - began < 2.0
