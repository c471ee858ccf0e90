"""Direct calls pack commands with hiredis: the bytes must be exactly redis-py's, whatever the arguments."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from runtime.direct_calls import _pack

ARG = st.one_of(st.text(), st.binary(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                st.floats(allow_nan=False, allow_infinity=False))


@given(st.lists(ARG, max_size=12))
def test_hiredis_packing_matches_redis_py_byte_for_byte(args: list[Any]) -> None:
    conn = Connection()
    command = ("EVALSHA", *args)
    assert _pack(conn, command) == b"".join(conn.pack_command(*command))


def test_an_argument_hiredis_refuses_gets_redis_py_s_error() -> None:
    with pytest.raises(DataError):
        _pack(Connection(), ("SET", "k", True))
