"""The test helpers notice what they wait on: a worker that died fails a wait at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.nodes import eventually, spawn_worker, stop_process


async def test_eventually_fails_at_once_when_a_worker_dies(tmp_path: Path) -> None:
    # Given a worker process that cannot start (its app does not exist)
    proc = spawn_worker("tests.no_such_module:app", {}, tmp_path / "w.log")
    started = time.monotonic()
    try:
        # When a test waits on a condition that will never hold, with a long timeout
        with pytest.raises(AssertionError) as failure:
            await eventually(lambda: False, timeout=60)
    finally:
        stop_process(proc)
    # Then the wait ends as soon as the worker is gone, with its exit code and log
    assert time.monotonic() - started < 30
    assert "exited with" in str(failure.value) and "no_such_module" in str(failure.value)
