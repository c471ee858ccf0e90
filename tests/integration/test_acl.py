"""The shipped Redis ACL users (deploy/redis/users.acl): a real worker and ``baton api`` run a full
workload under them with no NOPERM anywhere, and the API's user cannot run arbitrary commands."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import NoPermissionError, ResponseError

from runtime.api import hash_key, new_key
from tests.nodes import ROOT, eventually, stop_process
from tests.servers import RedisProcess, free_port

USERS = ROOT / "deploy" / "redis" / "users.acl"
ADMIN = ("admin", "admin-pw-0")
PASSWORDS = {"baton-worker": "worker-pw-1", "baton-api": "api-pw-2", "baton-producer": "producer-pw-3"}
TERMINAL = {"completed", "failed", "canceled", "dead_letter", "expired"}


def acl_server(tmp_path: Path) -> RedisProcess:
    """A server whose users are the shipped ones (with passwords added), an admin for the test, default off."""
    lines = ["user default off", f"user {ADMIN[0]} on >{ADMIN[1]} ~* &* +@all"]
    for line in USERS.read_text().splitlines():
        lines.append(f"{line} >{PASSWORDS[line.split()[1]]}")
    acl = tmp_path / "users.acl"
    acl.write_text("\n".join(lines) + "\n")
    return RedisProcess(args=["--aclfile", str(acl), "--acllog-max-len", "1000"], auth=ADMIN)


def url(server: RedisProcess, user: str) -> str:
    return f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:{server.port}"


def baton(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``baton ARGS`` as a child process with only these Baton/Redis variables; output to ``log``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "REDIS_"))}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "runtime", *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env={**base, "PYTHONPATH": str(ROOT), **env})


class Api:
    """A tiny client of the API process."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str) -> None:
        self.session, self.base, self.headers = session, base, {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        async with self.session.request(method, self.base + path, json=body, headers=self.headers) as resp:
            data = await resp.json(content_type=None)
            assert resp.status in ok, (method, path, resp.status, data)
            return data

    async def trigger(self, job: str, payload: Any = None, **options: Any) -> str:
        return str((await self.call("POST", f"/v1/jobs/{job}/trigger", {"input": payload, **options}))["id"])

    async def status(self, run_id: str) -> str:
        return str((await self.call("GET", f"/v1/runs/{run_id}"))["status"])

    async def until(self, run_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            run = await self.call("GET", f"/v1/runs/{run_id}", ok=(200, 404))  # 404 until the intake made it
            return run if run.get("status") in statuses else None

        found: dict[str, Any] = await eventually(reached, timeout, interval=0.1)
        return found


@pytest.fixture
async def acl_node(tmp_path: Path) -> AsyncIterator[tuple[RedisProcess, Api, list[Path]]]:
    """The server, a worker as baton-worker and ``baton api`` as baton-api; both drained at the end."""
    server = acl_server(tmp_path)
    key = new_key()
    port = free_port()
    common = {"BATON_METRICS_PORT": "0", "BATON_LOG_FORMAT": "text", "BATON_SHUTDOWN_GRACE_S": "5"}
    worker_log, api_log = tmp_path / "worker.log", tmp_path / "api.log"
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    worker = baton(["worker", "--app", "tests.integration.acl_jobs:app"], {
        **common, "BATON_REDIS_URL": url(server, "baton-worker"), "BATON_LEASE_TTL_MS": "2000",
        "BATON_RENEW_INTERVAL_MS": "500", "BATON_REAP_INTERVAL_MS": "200", "BATON_IDLE_POLL_MS": "500",
        "BATON_OBSERVE_INTERVAL_MS": "200", "BATON_RECONCILE_INTERVAL_MS": "500",
    }, worker_log)
    api = baton(["api"], {**common, "BATON_REDIS_URL": url(server, "baton-api"), "BATON_API_PORT": str(port),
                          "BATON_API_HOST": "127.0.0.1", "BATON_API_KEYS": f"default:{hash_key(key)}"}, api_log)
    try:
        async with aiohttp.ClientSession() as session:
            client = Api(session, f"http://127.0.0.1:{port}", key)

            async def up() -> bool:
                assert worker.poll() is None, worker_log.read_text()
                assert api.poll() is None, api_log.read_text()
                if "started" not in worker_log.read_text():
                    return False
                try:
                    jobs = await client.call("GET", "/v1/jobs")
                except aiohttp.ClientError:
                    return False
                return "echo" in str(jobs)

            await eventually(up, 60, interval=0.2)
            yield server, client, [worker_log, api_log]
    finally:
        codes = [stop_process(api), stop_process(worker)]
        server.stop()
    assert codes == [0, 0], [p.read_text()[-3000:] for p in (api_log, worker_log)]


async def test_worker_and_api_work_under_their_acl_users(acl_node: tuple[RedisProcess, Api, list[Path]]) -> None:
    server, api, logs = acl_node
    admin = aioredis.from_url(f"redis://{ADMIN[0]}:{ADMIN[1]}@127.0.0.1:{server.port}")
    # (redis-py's CLIENT SETINFO on connect is not in the producer's rights: off, as Baton's own clients do)
    producer = aioredis.from_url(url(server, "baton-producer"), driver_info=None)
    try:
        # Given a producer that may only XADD to the submission stream: a valid and a bad entry
        entry = (await producer.xadd("{baton}:submit", {"job": "echo", "input": '{"n": 1}'})).decode()
        await producer.xadd("{baton}:submit", {"job": "ghost", "input": "{}"})
        # Then the worker creates and runs the valid one and rejects the other
        assert (await api.until(entry, *TERMINAL))["status"] == "completed"
        await eventually(lambda: admin.xlen("{baton}:rejected"), 20)

        # A retry (through the delayed set) completes on attempt 2
        flaky = await api.trigger("flaky", {})
        run = await api.until(flaky, *TERMINAL)
        assert run["status"] == "completed" and run["output"] == {"attempt": 2}, run

        # Steps, checkpoint, output, child run, durable sleep and an event sent through the API
        busy = await api.trigger("busy", {"event": "go"})
        await api.until(busy, "waiting")
        await api.call("POST", "/v1/events", {"key": "go", "data": {"ok": True}})
        run = await api.until(busy, *TERMINAL)
        assert run["status"] == "completed" and run["output"]["event"] == {"ok": True}, run
        for view in ("steps", "events", "checkpoints", "children", "usage", "outputs", "state", "debug-bundle",
                     "lineage", "dependency-status"):
            await api.call("GET", f"/v1/runs/{busy}/{view}")
        async with api.session.get(f"{api.base}/v1/runs/{busy}/stream", headers=api.headers) as resp:
            assert resp.status == 200
            assert await asyncio.wait_for(resp.content.readline(), 10)

        # A signal sent before the run waits (the run's signal buffer), its published state, a waitpoint token
        messenger = await api.trigger("messenger", {})
        await api.call("POST", f"/v1/runs/{messenger}/signals", {"name": "go", "data": 1})

        async def published() -> Any:
            return (await api.call("GET", f"/v1/runs/{messenger}/query"))["state"]

        token = (await eventually(published, 20, interval=0.1))["token"]
        assert [t["id"] for t in (await api.call("GET", "/v1/tokens?status=waiting"))["data"]] == [token]
        await api.call("POST", f"/v1/tokens/{token}/complete", {"ok": True})
        run = await api.until(messenger, *TERMINAL)
        assert run["output"] == {"signal": 1, "token": {"ok": True}}, run

        # Cancellation of an executing run (pub/sub to the worker)
        sleepy = await api.trigger("sleepy", {})
        await api.until(sleepy, "executing")
        await api.call("DELETE", f"/v1/runs/{sleepy}")
        assert (await api.until(sleepy, *TERMINAL))["status"] == "canceled"

        # Pause, resume and cancel a delayed run; replay a finished one
        later = await api.trigger("echo", {"later": True}, delay=600, idempotency_key="later-1")
        await api.call("POST", f"/v1/runs/{later}/reschedule", {"delay": 300})
        await api.call("DELETE", f"/v1/runs/{later}/idempotency-key")
        await api.call("POST", f"/v1/runs/{later}/pause")
        await api.until(later, "paused")
        await api.call("POST", f"/v1/runs/{later}/resume")
        await api.call("DELETE", f"/v1/runs/{later}")
        assert (await api.until(later, *TERMINAL))["status"] == "canceled"
        replay = await api.call("POST", f"/v1/runs/{entry}/replay")
        assert (await api.until(str(replay["id"]), *TERMINAL))["status"] == "completed"
        restarted = await api.call("POST", f"/v1/runs/{flaky}/restart")
        await api.call("POST", f"/v1/runs/{busy}/debug", {"debug_mode": True})
        items = [{"job": "echo", "input": {"i": i}} for i in range(3)]
        batch = await api.call("POST", "/v1/runs/batch", {"runs": items})
        for run_id in [str(restarted["id"]), *(str(r["id"]) for r in batch["runs"])]:
            assert (await api.until(run_id, *TERMINAL))["status"] == "completed"
        held = await api.trigger("echo", {}, delay=600)
        await api.call("POST", "/v1/runs/bulk-cancel", {"run_ids": [held]})
        assert (await api.until(held, *TERMINAL))["status"] == "canceled"

        # A webhook delivered and recorded (the notifier's delivery record is a WATCHed transaction)
        heard: list[bytes] = []

        async def receive(request: web.Request) -> web.Response:
            heard.append(await request.read())
            return web.Response(status=204)

        hook_app = web.Application()
        hook_app.router.add_post("/hook", receive)
        runner = web.AppRunner(hook_app)
        await runner.setup()
        hook_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", hook_port).start()
        try:
            hook = await api.call("POST", "/v1/webhooks", {"url": f"http://127.0.0.1:{hook_port}/hook",
                                                           "events": ["run.completed"]})
            told = await api.trigger("echo", {"hook": True})
            await api.until(told, *TERMINAL)

            async def delivered() -> Any:
                page = await api.call("GET", f"/v1/webhooks/{hook['id']}/deliveries?status=delivered")
                return page["data"]

            [delivery] = await eventually(delivered, 20, interval=0.1)
            assert delivery["attempts"] == 1 and len(heard) == 1, (delivery, heard)
        finally:
            await runner.cleanup()

        # Listings
        listed = await api.call("GET", "/v1/runs?status=completed&limit=100")
        assert {entry, flaky, busy} <= {r["id"] for r in listed["data"]}, listed
        await api.call("GET", "/v1/runs/dlq")
        await api.call("GET", "/ready")

        # Then nothing was refused: the server's ACL log is empty and no log line mentions NOPERM
        # (the workload took seconds: the reaper, renewals, observer and reconcile, every 200-500 ms, ran often)
        denied = [(e[b"username"], e[b"object"]) for e in await admin.execute_command("ACL", "LOG")]
        assert denied == [], denied
        for log in logs:
            assert "NOPERM" not in log.read_text(), log.read_text()[-3000:]
    finally:
        await producer.aclose()
        await admin.aclose()


async def test_api_user_cannot_run_arbitrary_commands(tmp_path: Path) -> None:
    server = acl_server(tmp_path)
    api = aioredis.from_url(url(server, "baton-api"))
    worker = aioredis.from_url(url(server, "baton-worker"))
    producer = aioredis.from_url(url(server, "baton-producer"))
    try:
        server.start()
        # The API's own work is allowed
        await api.hset("{baton:p0}:run:x", "status", "queued")
        assert await api.hget("{baton:p0}:run:x", "status") == b"queued"
        # Commands outside its list, and keys and channels outside the prefix, are refused
        refused: list[tuple[Any, tuple[Any, ...]]] = [
            (api, ("FLUSHALL",)), (api, ("FLUSHDB",)), (api, ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")),
            (api, ("CONFIG", "GET", "*")), (api, ("KEYS", "*")), (api, ("SCAN", "0")), (api, ("GET", "{other}:x")),
            (api, ("SET", "other:x", "1")), (api, ("DEL", "{other:p0}:run:x")), (api, ("EVAL", "return 1", "0")),
            (api, ("ACL", "LIST")), (api, ("SHUTDOWN",)), (api, ("SCRIPT", "FLUSH")),
            (api, ("INFO",)), (api, ("DBSIZE",)), (api, ("PUBLISH", "other:wake", "x")),
            (api, ("BLPOP", "{baton}:x", "1")),
            (api, ("XREADGROUP", "GROUP", "baton-intake", "c", "STREAMS", "{baton}:submit", ">")),
            (worker, ("FLUSHALL",)), (worker, ("CONFIG", "GET", "requirepass")), (worker, ("GET", "{other}:x")),
            (producer, ("XRANGE", "{baton}:submit", "-", "+")), (producer, ("XADD", "{baton}:rejected", "*", "a", "b")),
            (producer, ("HGET", "{baton:p0}:run:x", "status")),
        ]
        for client, command in refused:
            with pytest.raises(NoPermissionError):
                await client.execute_command(*command)
        assert await api.hget("{baton:p0}:run:x", "status") == b"queued"  # nothing was flushed
        # Code loaded by the API user runs with the API user's rights: it cannot do more than the user
        for i, body in enumerate(("return redis.call('FLUSHALL')", "return redis.call('SET', '{other}:x', '1')",
                                  "return redis.call('KEYS', '*')",
                                  "return redis.call('PUBLISH', 'other:wake', 'x')")):
            await api.function_load(f"#!lua name=probe{i}\nredis.register_function('probe{i}', function() {body} end)")
            with pytest.raises(ResponseError, match=r"(?i)user executing the script can't|no permissions"):
                await api.fcall(f"probe{i}", 0)
        # and scripts are not among its commands (Baton's Lua runs as functions)
        with pytest.raises(NoPermissionError):
            await api.script_load("return 1")
    finally:
        for c in (api, worker, producer):
            await c.aclose()
        server.stop()

