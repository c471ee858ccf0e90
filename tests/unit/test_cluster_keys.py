"""KnownKeysCluster finds the first key of FCALL and XREAD(GROUP) from the arguments alone."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.connection import _first_key


@pytest.mark.parametrize(("command", "args", "key"), [
    ("FCALL", ("baton_runs_claim_x", 1, "{b:p0}:queues", "{b:p0}:", "n1"), "{b:p0}:queues"),
    ("fcall_ro", (b"f", b"2", b"{a}:x", b"{a}:y"), b"{a}:x"),
    ("FCALL", ("f", 0, "arg"), None),  # no key: redis-py picks any node
    ("XREADGROUP", ("GROUP", "g", "c", "COUNT", 10, "BLOCK", 5000, "STREAMS", "{b}:submit", ">"), "{b}:submit"),
    ("XREAD", ("COUNT", 5, "BLOCK", 0, "streams", b"{b:p1}:ev:r", b"0-0"), b"{b:p1}:ev:r"),
    ("XREAD", ("COUNT", 5), None),  # malformed: left to redis-py (and the server's error)
    ("XREAD", ("STREAMS",), None),
    ("GET", ("k",), None),  # any other command: redis-py's way
])
def test_first_key(command: str, args: tuple[Any, ...], key: Any) -> None:
    assert _first_key(command, args) == key
