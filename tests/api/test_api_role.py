"""`baton api` as its own process: metrics on their own port, and a SIGTERM that loses no request in flight."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.api import hash_key
from tests.nodes import ROOT
from tests.servers import RedisProcess, free_port

KEY = "bk_" + "r" * 30


@dataclass
class ApiProcess:
    """A `baton api` child process and its two ports."""

    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log: Path

    def get(self, path: str, port: int | None = None) -> tuple[int, str]:
        """GET a path; (status, body)."""
        url = f"http://127.0.0.1:{port or self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def _wait(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout}s")


@pytest.fixture
def api_process(redis_server: RedisProcess, prefix: str, tmp_path: Path) -> Iterator[ApiProcess]:
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATON_REDIS_URL": redis_server.url, "BATON_PREFIX": prefix,
           "BATON_API_PORT": str(port), "BATON_API_HOST": "127.0.0.1", "BATON_API_KEYS": f"default:{hash_key(KEY)}",
           "BATON_METRICS_PORT": str(metrics_port), "BATON_METRICS_HOST": "127.0.0.1", "BATON_LOG_FORMAT": "json",
           "BATON_API_DRAIN_S": "2"}
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "runtime", "api"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    api = ApiProcess(proc, port, metrics_port, log)
    try:
        # (a process that died at start, a port taken meanwhile say, fails here at once, with its log)
        _wait(lambda: proc.poll() is not None or api.get("/ready")[0] == 200, 30)
        assert proc.poll() is None, f"baton api exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        yield api
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_metrics_are_on_their_own_port_not_the_public_one(api_process: ApiProcess) -> None:
    # Given `baton api` with BATON_METRICS_PORT, after one API request
    api_process.get("/openapi.json")
    # When both ports are asked for /metrics
    public = api_process.get("/metrics")
    status, text = api_process.get("/metrics", port=api_process.metrics_port)
    # Then the metrics port serves the API's request metrics, and the public port does not serve them
    assert status == 200 and 'baton_api_requests_total{operation="openapi",status="200"} 1.0' in text
    assert public[0] == 404 and '"metrics_elsewhere"' in public[1]


def test_sigterm_finishes_requests_in_flight_and_answers_while_draining(api_process: ApiProcess) -> None:
    # Given a request whose body is still being sent
    body = b'{"run_ids": ["no-such-run"]}'
    conn = socket.create_connection(("127.0.0.1", api_process.port), timeout=10)
    conn.sendall(b"POST /v1/runs/bulk-cancel HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + KEY.encode()
                 + b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body[:7])
    time.sleep(0.2)  # the server has read the headers
    # When the process gets SIGTERM (a rollout), and the rest of the body arrives after it
    stopped_at = time.monotonic()
    os.kill(api_process.proc.pid, signal.SIGTERM)
    _wait(lambda: api_process.get("/ready")[0] == 503, 5)
    conn.sendall(body[7:])
    reply = b""
    while chunk := conn.recv(65536):
        reply += chunk
    conn.close()
    # Then that request is answered in full
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    assert b'"no-such-run"' in reply
    # and while it drains, readiness says 503 but other requests are still answered
    assert api_process.get("/health") == (200, '{"status":"ok"}')
    # and it exits cleanly once the drain is over, not before
    assert api_process.proc.wait(20) == 0
    assert time.monotonic() - stopped_at >= 2.0


def test_the_access_log_is_one_structured_line_per_request(api_process: ApiProcess) -> None:
    # Given `baton api` logging JSON, when a request is answered
    status, _ = api_process.get("/v1/runs/no-such-run")
    assert status == 401

    def access_lines() -> list[dict[str, object]]:
        lines = [json.loads(x) for x in api_process.log.read_text().splitlines() if x.startswith("{")]
        return [x for x in lines if x["logger"] == "baton.api.access" and x.get("http_path") == "/v1/runs/no-such-run"]

    _wait(access_lines, 10)
    # Then its access log line carries the request as fields a log pipeline can filter on
    (line,) = access_lines()
    assert (line["http_method"], line["http_status"], line["msg"].split()[:3]) == (
        "GET", 401, ["GET", "/v1/runs/no-such-run", "401"])
    assert isinstance(line["duration_ms"], float) and len(str(line["request_id"])) == 32
    assert line["remote"] == "127.0.0.1" and line["user_agent"].startswith("Python-urllib")


#: what each case sets to make the start fail, the command it starts, and what the error names
CANNOT_START = {
    "bad setting": ({"BATON_LEASE_TTL_MS": "soon"}, "worker", "BATON_LEASE_TTL_MS"),
    "metrics port taken": ({"BATON_METRICS_PORT": "{taken}"}, "worker", "cannot serve metrics on 127.0.0.1:{taken}"),
    "API port taken": ({"BATON_API_PORT": "{taken}"}, "worker", "cannot serve the API on 127.0.0.1:{taken}"),
    "API port taken, API role": ({"BATON_API_PORT": "{taken}"}, "api", "cannot serve the API on 127.0.0.1:{taken}"),
}


@pytest.mark.parametrize("problem", list(CANNOT_START))
def test_a_process_that_cannot_start_says_why_in_one_json_line(redis_server: RedisProcess, problem: str) -> None:
    # Given a worker or API process whose configuration cannot work: a malformed setting, or a port it
    # serves on (metrics, API) already bound by another process
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])
    setting, command, named = CANNOT_START[problem]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATON_REDIS_URL": redis_server.url, "BATON_LOG_FORMAT": "json",
           "BATON_METRICS_HOST": "127.0.0.1", "BATON_METRICS_PORT": "0", "BATON_API_HOST": "127.0.0.1",
           "BATON_API_DEV_KEY": "auto", **{k: v.format(taken=port) for k, v in setting.items()}}
    try:
        # When it starts
        out = subprocess.run([sys.executable, "-m", "runtime", command, "--app", "examples.jobs:app"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    # Then it exits with 2, and its last stderr line is one JSON object saying why
    assert out.returncode == 2, out.stderr
    last = json.loads(out.stderr.strip().splitlines()[-1])
    assert (last["level"], last["logger"], last["event"], last["error"]) == (
        "critical", "baton.startup", "startup_failed", "ConfigError")
    assert named.format(taken=port) in last["msg"], last["msg"]
    # before it did any work: no node started, no actor ran
    assert " started" not in out.stderr and "actor" not in out.stderr, out.stderr
