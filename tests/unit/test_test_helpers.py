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


def test_a_server_replaced_by_a_restart_leaves_its_directory_to_the_session_end() -> None:
    from tests.servers import MADE_DIRS, RedisProcess

    # Given a server, killed and replaced by another on its port (a restart), the replacement then stopped
    first = RedisProcess().start()
    first.kill()
    second = RedisProcess(port=first.port).start()
    second.stop()
    # Then the replacement's directory is gone, and the first's, which no stop() removed, is kept for the
    # session's end to remove (stop_leftovers: 83 such directories had piled up in /tmp)
    assert not second.dir.exists() and second.dir not in MADE_DIRS
    assert first.dir.exists() and first.dir in MADE_DIRS
    first.stop()
    assert not first.dir.exists() and first.dir not in MADE_DIRS
