"""No API key and no Redis password in any log line, error body, header or metric: an API node and a worker
run against a Redis server with a password, good and bad requests are made (wrong and malformed keys, bad
bodies, unknown runs, Redis URLs with the password that fail), and everything they produced is searched."""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from runtime import Settings
from runtime.api import hash_key, new_key
from tests.nodes import ROOT, eventually, spawn_worker, stop_process
from tests.servers import RedisProcess, free_port

PASSWORD = "pw-" + secrets.token_hex(12)
KEY = new_key()


@pytest.fixture
def locked_redis() -> Iterator[RedisProcess]:
    """A server of our own that needs the password."""
    server = RedisProcess(args=["--requirepass", PASSWORD], auth=("default", PASSWORD)).start()
    yield server
    server.stop()


def _env(server: RedisProcess, prefix: str, **extra: str) -> dict[str, str]:
    return {"BATON_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{server.port}", "BATON_PREFIX": prefix,
            "BATON_API_KEYS": f"alpha:{hash_key(KEY)}", "BATON_LOG_LEVEL": "DEBUG", "BATON_SHUTDOWN_GRACE_S": "2",
            "BATON_METRICS_PORT": "0", **extra}


async def _texts(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, str]:
    """Status and everything a client sees of a response: headers and body."""
    async with http.request(method, url, **kwargs) as resp:
        headers = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
        return resp.status, headers + "\n" + await resp.text()


def _cli(env: dict[str, str], *args: str) -> str:
    """A `baton` CLI command's exit code, stdout and stderr."""
    done = subprocess.run([sys.executable, "-m", "runtime", *args], cwd=ROOT, capture_output=True, timeout=60,
                          env={**env, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return f"{done.returncode}\n{done.stdout.decode(errors='replace')}\n{done.stderr.decode(errors='replace')}"


async def test_no_secret_in_logs_bodies_or_metrics(locked_redis: RedisProcess, tmp_path: Path) -> None:
    prefix = f"sec{uuid.uuid4().hex[:8]}"
    api_port, api_metrics, worker_metrics = free_port(), free_port(), free_port()
    logs = {"api": tmp_path / "api.log", "worker": tmp_path / "worker.log"}
    procs = [
        spawn_worker("examples.jobs:app", _env(locked_redis, prefix, BATON_API_PORT=str(api_port),
                                                BATON_API_HOST="127.0.0.1", BATON_METRICS_PORT=str(api_metrics)),
                     logs["api"]),
        spawn_worker("examples.jobs:app", _env(locked_redis, prefix, BATON_METRICS_PORT=str(worker_metrics)),
                     logs["worker"]),
    ]
    seen: list[str] = []  # everything a client or an operator saw
    base = f"http://127.0.0.1:{api_port}"
    good = {"Authorization": f"Bearer {KEY}"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            async def ready() -> bool:
                # both nodes started (a SIGTERM to a process still importing ends it with -15)
                assert all(p.poll() is None for p in procs), [p.read_text()[-2000:] for p in logs.values()]
                try:
                    answers = [(await _texts(http, "GET", url))[0] for url in (
                        f"{base}/ready", f"http://127.0.0.1:{api_metrics}/readyz",
                        f"http://127.0.0.1:{worker_metrics}/readyz")]
                except aiohttp.ClientError:
                    return False
                return answers == [200, 200, 200]

            await eventually(ready, 30, interval=0.1)
            # Given good requests: runs triggered, read, listed and streamed (some fail and retry: "flaky")
            ids = []
            for job, payload in (("hello", {"name": "ada"}), ("flaky", {"fail_times": 1}), ("hello", None)):
                status, text = await _texts(http, "POST", f"{base}/v1/jobs/{job}/trigger", headers=good,
                                            json={"input": payload})
                seen.append(text)
                assert status == 201, text
                ids.append(text.split('"id":"')[1].split('"')[0])
            for run_id in ids:
                async def finished(run_id: str = run_id) -> bool:
                    status, text = await _texts(http, "GET", f"{base}/v1/runs/{run_id}", headers=good)
                    return status == 200 and any(f'"status":"{s}"' in text for s in ("completed", "failed",
                                                                                     "dead_letter"))
                await eventually(finished, 30, interval=0.1)
                for path in ("", "/state", "/debug-bundle", "/events", "/stream"):
                    seen.append((await _texts(http, "GET", f"{base}/v1/runs/{run_id}{path}", headers=good))[1])
            seen.append((await _texts(http, "GET", f"{base}/v1/runs", headers=good))[1])
            # And bad ones: wrong and malformed keys, the key where no key goes, bad bodies, unknown runs
            for auth in (f"Bearer {KEY[:-1]}", f"Bearer {KEY}x", f"Basic {KEY}", KEY, f"Bearer {KEY} {KEY}",
                         f"Bearer {PASSWORD}", "Bearer", f"Token {KEY}"):
                status, text = await _texts(http, "GET", f"{base}/v1/runs", headers={"Authorization": auth})
                assert status == 401, (auth, text)
                seen.append(text)
            for method, path, kwargs in (
                    ("POST", "/v1/jobs/hello/trigger", {"data": b"{not json"}),
                    ("POST", "/v1/jobs/hello/trigger", {"json": {"input": 1, "delay": "soon"}}),
                    ("POST", "/v1/jobs/hello/trigger", {"json": {"input": 1, "priority": 10**30}}),
                    ("POST", "/v1/jobs/nope/trigger", {"json": {"input": 1}}),
                    ("POST", "/v1/jobs/hello/trigger", {"data": b"x" * (2 * 1024 * 1024)}),
                    ("GET", "/v1/runs/nope", {}), ("DELETE", "/v1/runs/nope", {}),
                    ("GET", "/v1/runs?cursor=garbage", {}), ("GET", "/v1/runs?nope=1", {}),
                    ("GET", f"/v1/runs/{ids[0]}/stream?last_event_id=99999999999999999999-0", {}),
                    ("PATCH", "/v1/runs", {}), ("GET", "/nope", {})):
                status, text = await _texts(http, method, base + path, headers=good, **kwargs)
                assert 400 <= status < 500, (method, path, status, text)
                seen.append(text)
            # And every metrics page: both nodes' (the public API port does not serve them)
            for url in (f"http://127.0.0.1:{api_metrics}/metrics", f"http://127.0.0.1:{worker_metrics}/metrics"):
                status, text = await _texts(http, "GET", url)
                assert status == 200 and "baton_" in text, url
                seen.append(text)
            status, text = await _texts(http, "GET", f"{base}/metrics")
            assert status == 404 and "metrics_elsewhere" in text, text
            seen.append(text)
    finally:
        codes = [stop_process(p) for p in procs]
    assert codes == [0, 0], [p.read_text()[-3000:] for p in logs.values()]
    # And Redis URLs carrying the password that fail: a wrong user, a closed port, a malformed port
    closed = free_port()
    for url in (f"redis://nobody:{PASSWORD}@127.0.0.1:{locked_redis.port}",
                f"redis://:{PASSWORD}@127.0.0.1:{closed}", f"redis://:{PASSWORD}@127.0.0.1:notaport",
                f"http://:{PASSWORD}@127.0.0.1:{locked_redis.port}"):
        env = {"BATON_REDIS_URL": url, "BATON_PREFIX": prefix, "BATON_LOG_LEVEL": "DEBUG"}
        out = _cli(env, "get", "nope")
        assert not out.startswith("0\n"), out  # the command failed
        seen.append(out)
    # And the CLI's API client with the key, against an API that is not there and one that refuses the key
    for api_url in (f"http://127.0.0.1:{closed}", f"http://:{PASSWORD}@127.0.0.1:{closed}"):
        out = _cli({"BATON_API_URL": api_url, "BATON_API_KEY": KEY}, "runs", "ls")
        assert not out.startswith("0\n"), out
        seen.append(out)
    # Then neither secret appears anywhere: not in a log line, a response header or body, or a metric
    everything = "\n".join([*seen, *(p.read_text(errors="replace") for p in logs.values())])
    for name, secret in (("API key", KEY), ("Redis password", PASSWORD)):
        at = everything.find(secret)
        assert at < 0, f"{name} leaked: ...{everything[max(at - 300, 0):at + 100]}..."
    # And the logs are not empty: the search would find nothing in nothing
    assert all(len(p.read_text()) > 200 for p in logs.values())


def test_settings_never_show_the_redis_password_or_the_dev_key() -> None:
    # Given settings with a password in the Redis URL and a plaintext development key
    settings = Settings(redis_url=f"redis://user:{PASSWORD}@127.0.0.1:1/0?password={PASSWORD}", api_dev_key=KEY)
    # Then neither appears when the settings are shown (a log line or an error that formats them)
    for shown in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        assert PASSWORD not in shown and KEY not in shown, shown
