"""The embedded server of the quick start: AOF on, own session, reused after a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from runtime.cancelling import cancel_and_wait
from runtime.embedded import EmbeddedServer
from runtime.keys import Keys
from tests.nodes import ROOT, stop_process


def test_embedded_server_survives_a_killed_owner_and_is_reused(tmp_path: Path) -> None:
    # Given an embedded server started with AOF on
    first = EmbeddedServer(tmp_path / "data")
    url = first.start()
    client = redis.Redis.from_url(url)
    try:
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "always"
        client.set("k", "v")
        pid = first._proc.pid if first._proc else 0
        assert os.getpgid(pid) != os.getpgid(0)  # own session: a terminal's Ctrl-C does not reach it
        # When its owner dies without stopping it, a new owner on the same dir reuses it
        second = EmbeddedServer(tmp_path / "data")
        assert second.start() == url
        assert client.get("k") == b"v"
        second.stop()
    finally:
        client.close()
        if first._proc and first._proc.poll() is None:
            os.kill(first._proc.pid, signal.SIGKILL)
            first._proc.wait(10)
    # Then stopping it really stopped the process
    assert first._proc is not None and first._proc.wait(10) is not None


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any Redis or Baton variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "REDIS_"))}
    return {**env, "PYTHONPATH": str(ROOT), "BATON_EMBEDDED_DIR": str(tmp_path / "embedded"),
            "BATON_METRICS_PORT": "0", "BATON_LOG_FORMAT": "text", "BATON_PREFIX": "t", "BATON_EMBEDDED_PORT": "0",
            **extra}


def _baton(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``baton ARGS`` to its end (a config error ends it at once); never leaves an embedded server behind."""
    try:
        return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=ROOT, env=_env(tmp_path, **env),
                              capture_output=True, text=True, timeout=30)
    finally:
        _stop_embedded(tmp_path / "embedded")


def _stop_embedded(data_dir: Path) -> None:
    """Kill the embedded server a node recorded in ``data_dir`` (one the node under test started)."""
    state = data_dir / "server.json"
    if state.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(orjson.loads(state.read_bytes())["pid"], signal.SIGKILL)


@pytest.mark.parametrize("env", [
    {"REDIS_HOST": "10.0.0.1"},
    {"REDIS_PASSWORD": "s3cret"},
    {"BATON_REDIS_SENTINEL_MASTER": "mymaster"},
    {"BATON_REDIS_PASSWRD": "s3cret"},
    {"BATON_REDIS_URL": ""},
])
def test_a_worker_with_redis_variables_never_starts_the_embedded_server(tmp_path: Path, env: dict[str, str]) -> None:
    # When a worker starts with a Redis variable but no usable Redis URL
    done = _baton(tmp_path, "worker", "--app", "tests.apps:app", **env)
    # Then it exits non-zero with one configuration error naming the variable, and started no server
    name = next(iter(env))
    assert done.returncode == 2, done.stderr
    assert name in done.stderr and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    assert not (tmp_path / "embedded").exists()


@pytest.mark.parametrize(("command", "url"), [
    ("worker", "http://127.0.0.1:6379"),
    ("worker", "redis+sentinel://127.0.0.1:26379"),
    ("worker", "valkey://127.0.0.1:6379"),
    ("worker", "redis://ada:s3cret@127.0.0.1:99999"),
    ("api", "http://127.0.0.1:6379"),
    ("get", "redis://127.0.0.1:6379/x"),
])
def test_an_unsupported_redis_url_is_one_clear_line(tmp_path: Path, command: str, url: str) -> None:
    args = [command, "--app", "tests.apps:app"] if command != "get" else [command, "some-run"]
    done = _baton(tmp_path, *args, BATON_REDIS_URL=url)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("baton: ") and done.stderr.count("\n") == 1, done.stderr
    assert "BATON_REDIS_URL" in done.stderr and "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr


def test_a_bad_setting_stops_the_worker_with_one_line(tmp_path: Path) -> None:
    done = _baton(tmp_path, "worker", "--app", "tests.apps:app", BATON_CONCURRENCY="0")
    assert done.returncode == 2 and "BATON_CONCURRENCY" in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_without_redis_variables_the_worker_runs_on_the_embedded_server(tmp_path: Path) -> None:
    # Given no Redis variable at all (the quick start), plus a misspelt setting
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", "tests.apps:app"], cwd=ROOT,
                                env=_env(tmp_path, BATON_CONCURENCY="5"), stdout=out, stderr=subprocess.STDOUT)
    state = tmp_path / "embedded" / "server.json"
    try:
        # Then the node starts its embedded server and runs, and warns about the unknown name
        deadline = time.monotonic() + 60
        while "node " not in log.read_text() or " started" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        assert "embedded" in text and state.exists()
        assert re.search(r"WARNING .*BATON_CONCURENCY.*BATON_CONCURRENCY", text), text
        server_pid = orjson.loads(state.read_bytes())["pid"]
    finally:
        code = stop_process(proc)
        if code != 0:
            _stop_embedded(tmp_path / "embedded")
    # and a drain stops it with the server
    assert code == 0, log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)


def test_a_busy_metrics_port_is_one_clear_line(tmp_path: Path, redis_server: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _baton(tmp_path, "worker", "--app", "tests.apps:app", BATON_REDIS_URL=redis_server.url,
                      BATON_METRICS_HOST="127.0.0.1", BATON_METRICS_PORT=str(port))
    assert done.returncode == 2, done.stderr
    assert "BATON_METRICS_PORT" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("baton: ")


def test_a_busy_embedded_port_is_one_clear_line(tmp_path: Path) -> None:
    # Given another server on the embedded server's port (a Redis of one's own, say)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # When a node without Redis configuration starts
        done = _baton(tmp_path, "worker", "--app", "tests.apps:app", BATON_EMBEDDED_PORT=str(port))
    # Then it stops at once, saying which port and what to do, and writes nothing to that server
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("baton: ") and f"127.0.0.1:{port}" in last and "BATON_EMBEDDED_PORT" in last, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "embedded" / "server.json").exists()


def test_the_cli_warns_about_unknown_variables(tmp_path: Path) -> None:
    done = _baton(tmp_path, "apikey", "acme", BATON_CONCURENCY="5", BATON_API_URL="http://127.0.0.1:1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "baton: warning: ignoring BATON_CONCURENCY: not a Baton setting " \
                          "(did you mean BATON_CONCURRENCY?)\n"


def test_a_url_flag_next_to_redis_variables_runs(tmp_path: Path, redis_server: Any) -> None:
    # Given REDIS_* variables (as Kubernetes injects for a Service named redis) and the URL as a flag only:
    # the app module's own Baton() is built from the environment alone at import, and must not refuse
    log = tmp_path / "worker.log"
    env = _env(tmp_path, REDIS_PORT="tcp://10.0.0.1:6379", REDIS_SERVICE_HOST="10.0.0.1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", "tests.apps:app",
                                 "--redis-url", redis_server.url], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while " started" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        code = stop_process(proc)
    assert code == 0, log.read_text()
    assert not (tmp_path / "embedded").exists()


def _wait_for(what: str, check: Any, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> Any:
    """Poll ``check()`` until it returns something truthy; fails if the node died or time ran out."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(redis.exceptions.ConnectionError):
            found = check()
            if found:
                return found
        assert proc.poll() is None, f"the node died waiting for {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout_s}s:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def test_a_node_starts_its_killed_embedded_server_again_and_goes_on(tmp_path: Path) -> None:
    # Given the quick start's node (no Redis configured) that ran a run on its embedded server
    keys = Keys("t")
    log = tmp_path / "worker.log"
    state = tmp_path / "embedded" / "server.json"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", "examples.jobs:app"], cwd=ROOT,
                                env=_env(tmp_path), stdout=out, stderr=subprocess.STDOUT)
    clients: list[redis.Redis] = []

    def server() -> tuple[int, redis.Redis]:
        info = orjson.loads(state.read_bytes())
        client = redis.Redis(port=info["port"], socket_timeout=5)
        clients.append(client)
        return int(info["pid"]), client

    def completed(client: redis.Redis, run_id: str) -> bool:
        status = client.hget(keys.partition_of_run(run_id).run(run_id), "status")
        return status == b"completed"

    try:
        _wait_for("a started node", lambda: "started:" in log.read_text() and state.exists(), proc, log)
        pid, client = server()
        first = client.xadd(keys.submit_stream, {"job": "hello", "input": '{"name": "Ada"}'}).decode()
        _wait_for("the first run completed", lambda: completed(client, first), proc, log)
        # When the embedded server is killed
        os.kill(pid, signal.SIGKILL)
        # Then the node starts it again on the same port, from its AOF: the first run is still there
        _wait_for("a new server", lambda: state.exists() and server()[0] != pid, proc, log)
        new_pid, client = server()
        _wait_for("the first run read back", lambda: completed(client, first), proc, log)
        assert "embedded server on" in log.read_text() and "starting it again" in log.read_text()
        # And the node goes on: a run submitted now completes
        second = client.xadd(keys.submit_stream, {"job": "hello", "input": '{"name": "Grace"}'}).decode()
        _wait_for("the second run completed", lambda: completed(client, second), proc, log)
    finally:
        code = stop_process(proc)
        for c in clients:
            c.close()
        if code != 0:
            _stop_embedded(tmp_path / "embedded")
    # and its drain stops the server it started again
    assert code == 0, log.read_text()[-3000:]
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)


def test_a_second_quick_start_node_on_busy_ports_says_one_runs_already(tmp_path: Path) -> None:
    # Given a quick-start node running with its metrics on a fixed port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _env(tmp_path, BATON_METRICS_PORT=str(port))
    log = tmp_path / "first.log"
    state = tmp_path / "embedded" / "server.json"
    with open(log, "wb") as out:
        first = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", "examples.jobs:app"], cwd=ROOT,
                                 env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for("a started node", lambda: "started:" in log.read_text() and state.exists(), first, log)
        server_port = orjson.loads(state.read_bytes())["port"]
        # When a second one starts in the same checkout, with the same settings
        second = subprocess.run([sys.executable, "-m", "runtime", "worker", "--app", "examples.jobs:app"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=30)
        # Then it stops at once, in one line that names the busy port and the node already running
        assert second.returncode == 2, second.stderr
        last = second.stderr.strip().splitlines()[-1]
        assert f":{port} " in last and "a node of this checkout seems to run already" in last, last
        assert f"127.0.0.1:{server_port}" in last and "Traceback" not in second.stderr, second.stderr
        # and the first goes on, on the server it started
        assert first.poll() is None and orjson.loads(state.read_bytes())["port"] == server_port
    finally:
        code = stop_process(first)
        if code != 0:
            _stop_embedded(tmp_path / "embedded")
    assert code == 0, log.read_text()[-3000:]


def test_a_second_quick_start_node_on_other_ports_does_not_take_over_the_first_ones_server(tmp_path: Path) -> None:
    # Given a quick-start node running on its embedded server (metrics on a port the OS picks)
    log = tmp_path / "first.log"
    state = tmp_path / "embedded" / "server.json"
    with open(log, "wb") as out:
        first = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", "examples.jobs:app"], cwd=ROOT,
                                 env=_env(tmp_path), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for("a started node", lambda: "started:" in log.read_text() and state.exists(), first, log)
        server = orjson.loads(state.read_bytes())
        # When a second one starts in the same checkout on ports of its own (nothing it binds is busy)
        second = subprocess.run([sys.executable, "-m", "runtime", "worker", "--app", "examples.jobs:app"], cwd=ROOT,
                                env=_env(tmp_path), capture_output=True, text=True, timeout=30)
        # Then it stops at once, naming the node that runs and how to share its server; before, it took the
        # server over, and stopping it stopped the first node's server under it
        assert second.returncode == 2, second.stderr
        last = second.stderr.strip().splitlines()[-1]
        assert f"a node of this checkout runs already (pid {first.pid})" in last, last
        assert f"BATON_REDIS_URL=redis://127.0.0.1:{server['port']}" in last and "Traceback" not in second.stderr
        # and the first goes on, on the server it started, which still answers
        assert first.poll() is None and orjson.loads(state.read_bytes())["pid"] == server["pid"]
        os.kill(server["pid"], 0)
    finally:
        code = stop_process(first)
        if code != 0:
            _stop_embedded(tmp_path / "embedded")
    assert code == 0, log.read_text()[-3000:]


async def test_the_keeper_tries_again_after_a_restart_that_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # Given an embedded server a node keeps alive
    from runtime import embedded

    monkeypatch.setattr(embedded, "KEEP_ALIVE_S", 0.2)
    server = EmbeddedServer(tmp_path / "data")
    server.start()
    keeper = asyncio.ensure_future(server.keep_alive())
    taken = socket.socket()
    try:
        # When it is killed and its port is taken by something else before the keeper looks
        assert server._proc is not None
        os.kill(server._proc.pid, signal.SIGKILL)
        server._proc.wait(10)
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", int(server.port or 0)))
        taken.listen()
        deadline = time.monotonic() + 10
        while "could not start the embedded server again" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.05)
        # Then once the port is free again, a later try starts it (a failed start is not the end)
        taken.close()
        client = redis.Redis(port=int(server.port or 0), socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.exceptions.ConnectionError):
                if client.ping():
                    break
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.05)
        client.close()
        assert server._proc is not None and server._proc.poll() is None
    finally:
        taken.close()
        await cancel_and_wait([keeper])
        server.stop()
