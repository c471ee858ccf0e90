"""A process asked to stop before it serves exits 0 at once (Kubernetes stops pods whose Redis is not
reachable yet, and pods still starting).

Before, `baton worker` and `baton api` installed their SIGTERM handlers only once Redis had answered:
a SIGTERM while the node waited for its Redis killed it outright (exit -15, 143 in a shell) and, with
the embedded server, left that server running. A check in flight against a black-holed server would
also have held the stop for the client's connect timeout times its retries.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.stop_signals import StopSignals, unless_stopped
from tests.nodes import ROOT
from tests.servers import free_port

#: a stop must end the process within this, whatever its Redis does
STOP_WITHIN_S = 5.0


class BlackHole:
    """A TCP server that takes connections and never answers (a Redis behind a dropped route)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def _start(command: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    role = ["worker", "--app", "examples.jobs:app"] if command == "worker" else ["api", "--api-port", str(free_port())]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATON_LOG_FORMAT": "text"}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "runtime", *role, "--redis-url", f"redis://127.0.0.1:{port}",
                                 "--metrics-port", "0"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def _wait_until(check: object, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"not waiting for its Redis after {timeout}s:\n{log.read_text()[-2000:]}"
        time.sleep(0.05)


def _stopped(proc: subprocess.Popen[bytes], log: Path) -> float:
    """SIGTERM the process; how long it took to exit (fails unless it exits 0 within STOP_WITHIN_S)."""
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"still running {STOP_WITHIN_S}s after SIGTERM:\n{log.read_text()[-2000:]}") from None
    assert code == 0, f"exit {code}:\n{log.read_text()[-2000:]}"
    return time.monotonic() - began


@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_process_waiting_for_a_redis_that_refuses_connections_stops_with_0(tmp_path: Path, command: str) -> None:
    # Given `baton worker` / `baton api` started against an address where nothing listens
    log = tmp_path / "out.log"
    proc = _start(command, free_port(), log)
    try:
        # When it has said it waits for Redis (the worker) or could not check it (the API: it serves anyway),
        # and is sent SIGTERM
        said = "at start" if command == "worker" else "HTTP API on"
        _wait_until(lambda: said in log.read_text(), proc, log)
        _stopped(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # Then it exited 0 (checked above), saying so for a node that never started
    if command == "worker":
        assert "stopped before it started" in log.read_text()


@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_process_whose_start_check_hangs_on_a_black_holed_redis_stops_at_once(
        tmp_path: Path, command: str, black_hole: BlackHole) -> None:
    # Given `baton worker` / `baton api` started against a server that takes connections and never answers
    log = tmp_path / "out.log"
    proc = _start(command, black_hole.port, log)
    try:
        # When its start check is under way (it has connected) and it is sent SIGTERM
        _wait_until(lambda: bool(black_hole.held), proc, log)
        took = _stopped(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # Then it exited 0 within STOP_WITHIN_S (before, after the client's timeouts: 10 s a read, 7 tries)
    assert took < STOP_WITHIN_S


def test_a_sigterm_before_the_loop_runs_is_kept_until_it_does() -> None:
    # Given the stop signals made as a process starts (pytest runs tests in the main thread)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        signals = StopSignals()
        # When a SIGTERM comes before any event loop runs
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.requested
        # Then once the loop runs, the attached stop is called, and the signal-time callback at once
        calls: list[str] = []

        async def attached() -> None:
            signals.attach(lambda: calls.append("stop"), lambda: calls.append("at signal"))
            assert calls == ["at signal"]
            await asyncio.sleep(0.01)

        asyncio.run(attached())
        assert calls == ["at signal", "stop"]
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


async def test_unless_stopped_cancels_work_a_stop_comes_before() -> None:
    stopping = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs() -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    async def quick() -> int:
        return 7

    asyncio.get_running_loop().call_later(0.05, stopping.set)
    assert await unless_stopped(hangs(), stopping) is None
    assert cancelled.is_set()
    done = await unless_stopped(quick(), asyncio.Event())
    assert done is not None and done.result() == 7
