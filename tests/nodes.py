"""Helpers to run Baton nodes inside a test's event loop or as child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp

from actors.supervisor import Supervisor
from runtime import Baton
from runtime.api import hash_key
from runtime.metrics import Metrics
from tests.servers import free_port

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


def api_settings(keys: dict[str, str]) -> dict[str, Any]:
    """Settings of a node serving the API on a free loopback port, with these project -> key entries."""
    return {"api_port": free_port(), "api_host": "127.0.0.1",
            "api_keys": ",".join(f"{project}:{hash_key(key)}" for project, key in keys.items())}


@contextlib.asynccontextmanager
async def serving_api(app: Baton) -> AsyncIterator[tuple[Supervisor, str, aiohttp.ClientSession]]:
    """Run a node of ``app`` (made with api_settings) until its API listens: (node, base URL, HTTP client)."""
    async with running_node(app) as node:
        assert node.api is not None
        await asyncio.wait_for(node.api.listening.wait(), 10)
        async with aiohttp.ClientSession() as http:
            yield node, f"http://127.0.0.1:{app.settings.api_port}", http


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Wait until ``check()`` (sync or async) returns a truthy value; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        _check_workers_alive()
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


#: worker processes started by spawn_worker that the test has not stopped or killed on purpose
_workers: dict[int, tuple[subprocess.Popen[bytes], Path]] = {}


async def lease_starts(app: Baton, run_ids: list[str]) -> list[int]:
    """When each run's (last) lease began, by the Redis clock at the claim, sorted: what a rate limit
    spaces. A handler's own start time adds its process's delay between lease and start."""
    runs = [await app.get_run(run_id) for run_id in run_ids]
    return sorted(r.attempt_started_at_ms for r in runs if r is not None and r.attempt_started_at_ms is not None)


def _check_workers_alive() -> None:
    """Fail at once, with its log, when a worker died that the test did not end (not after a timeout)."""
    for pid, (proc, log_path) in list(_workers.items()):
        if proc.poll() is not None:
            del _workers[pid]
            raise AssertionError(f"worker process {pid} exited with {proc.returncode} while the test waited:\n"
                                 f"{_tail(log_path, 3000)}")


def spawn_worker(app_spec: str, env: dict[str, str], log_path: Path,
                 args: tuple[str, ...] = (), python: str = sys.executable) -> subprocess.Popen[bytes]:
    """Start ``baton worker`` as a child process (its output goes to log_path), run by ``python``.

    ``eventually`` fails at once if it dies before the test stops it (stop_process) or kills it
    on purpose (kill_process).
    """
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [python, "-m", "runtime", "worker", "--app", app_spec, *args],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )
    _workers[proc.pid] = (proc, log_path)
    spawned_logs.append(log_path)
    return proc


#: the log of every worker spawn_worker started in the current test: a failing test's report
#: carries their tails (tests/conftest.py), since a test's tmp_path is not kept on CI
spawned_logs: list[Path] = []


def log_tails(limit: int = 4000) -> str:
    """The last ``limit`` characters of each log in spawned_logs, headed by its file name."""
    return "\n".join(f"--- {path.name} ---\n{_tail(path, limit)}" for path in spawned_logs)


def _tail(log_path: Path, limit: int) -> str:
    """The last ``limit`` characters of a worker's log ("(no log)" when it made none)."""
    return log_path.read_text(errors="replace")[-limit:] if log_path.exists() else "(no log)"


def kill_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Kill a child we started, on purpose (the fault a test injects), and reap it."""
    _workers.pop(proc.pid, None)
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        proc.wait(10)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal a child we started and wait for it; returns its exit code."""
    _workers.pop(proc.pid, None)
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


async def tear_down(worker: subprocess.Popen[bytes], closes: Iterable[Callable[[], Awaitable[object]]],
                    stop_servers: Callable[[], None]) -> int:
    """Stop a worker we started (off the loop: its drain may go through something that runs on it,
    a proxy), close the clients, then stop the servers by pid whatever a close raised; returns
    the worker's exit code."""
    try:
        code = await asyncio.to_thread(stop_process, worker)
        for close in closes:
            await close()
    finally:
        stop_servers()
    return code
