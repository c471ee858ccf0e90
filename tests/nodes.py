"""Helpers to run Baton nodes inside a test's event loop or as child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from actors.supervisor import Supervisor
from runtime import Baton
from runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def running_node(app: Baton, intake: bool = True) -> AsyncIterator[Supervisor]:
    """Run a node in this loop; drain it on exit."""
    sup = Supervisor(app, Metrics(), intake=intake)
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(sup.started.wait(), 10)
    try:
        yield sup
    finally:
        sup.request_shutdown()
        await asyncio.wait_for(task, 30)


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Wait until ``check()`` (sync or async) returns a truthy value; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


def spawn_worker(app_spec: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``baton worker`` as a child process (its output goes to log_path)."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "runtime", "worker", "--app", app_spec],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal a child we started and wait for it; returns its exit code."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode
