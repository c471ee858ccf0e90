"""The CLI against a live API: `baton runs ls/get/cancel/replay/tail`, `baton dlq`, `submit`, `apikey`, `api`."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from runtime.api import hash_key
from runtime.api.hatchet_public import tenant_of
from tests.api.conftest import ApiNode
from tests.nodes import ROOT, eventually
from tests.servers import RedisProcess, free_port


async def baton(api: ApiNode | None, *args: str, project: str = "alpha",
                env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `baton ARGS` as a child process against the test API; returns (exit code, stdout, stderr)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if api is not None:
        full_env.update({"BATON_API_URL": api.url, "BATON_API_KEY": api.keys[project]})
    full_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "runtime", *args, cwd=ROOT, env=full_env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_submit_ls_get_cancel_and_replay(api: ApiNode) -> None:
    # When a run is submitted through the API and waited for
    code, out, err = await baton(api, "submit", "echo", "--input", '{"a": 1}', "--wait", "20")
    # Then it prints the finished run, created in the key's project by hand
    assert code == 0, err
    run = orjson.loads(out)
    assert (run["status"], run["output"], run["project"], run["triggered_by"]) == ("completed", {"a": 1}, "alpha",
                                                                                   "manual")
    # When the runs are listed as a table and as JSON in the strait view
    code, table, err = await baton(api, "runs", "ls", "--job", "echo")
    assert code == 0, err
    header, *rows = table.splitlines()
    assert header.split()[:4] == ["ID", "JOB", "STATUS", "ATTEMPT"] and rows[0].split()[:3] == [run["id"], "echo",
                                                                                                 "completed"]
    code, out, err = await baton(api, "runs", "ls", "--json", "--view", "strait")
    # (the strait view lists as Strait does: a bare array)
    assert code == 0 and orjson.loads(out)[0]["project_id"] == "alpha"
    # And one run is shown for people and as JSON
    code, out, err = await baton(api, "runs", "get", run["id"])
    assert code == 0 and f"id:           {run['id']}" in out and "status:       completed" in out
    code, out, err = await baton(api, "runs", "get", run["id"], "--json", "--view", "trigger")
    assert code == 0 and orjson.loads(out)["status"] == "COMPLETED_SUCCESSFULLY"
    # When a delayed run is canceled and the finished one replayed
    delayed = await api.trigger("echo", 2, delay=60)
    code, out, err = await baton(api, "runs", "cancel", delayed)
    assert code == 0 and delayed in out and "canceled" in out
    assert (await api.run(delayed))["status"] == "canceled"
    # and a run that cannot be canceled (it has finished) is reported in the table, and as an error
    code, out, err = await baton(api, "runs", "cancel", delayed, run["id"])
    assert code == 1 and run["id"] in out and "already finished" in out, (out, err)
    assert err.count("\n") == 1 and err.startswith(f"baton: 2 of 2 runs not canceled ({delayed}: "), err
    code, out, err = await baton(api, "runs", "replay", run["id"])
    new_id = out.strip()
    assert code == 0 and (await api.run(new_id))["replay_of"] == run["id"]
    # And errors exit non-zero with the API's message
    code, out, err = await baton(api, "runs", "get", "missing")
    assert code == 1 and "run missing not found (404 not_found" in err
    code, out, err = await baton(api, "runs", "ls", env={"BATON_API_KEY": "bk_wrong"})
    assert code == 1 and "401 unauthorized" in err


async def test_dlq_ls_and_replay(api: ApiNode) -> None:
    # Given two dead-lettered runs
    dead = [await api.trigger("boom", i) for i in range(2)]
    for run_id in dead:
        await api.wait_status(run_id)
    # When the DLQ is listed
    code, out, err = await baton(api, "dlq", "ls")
    # Then both are there with their error
    assert code == 0, err
    assert all(run_id in out for run_id in dead) and "boom" in out
    # When all of it is replayed, as JSON
    code, out, err = await baton(api, "dlq", "replay", "--all", "--json")
    result = orjson.loads(out)
    # Then each was replayed once
    assert code == 0 and result["count"] == 2 and {r["id"] for r in result["results"]} == set(dead)
    code, out, err = await baton(api, "dlq", "replay", dead[0])
    assert code == 1 and "already" in out


async def test_tail_follows_a_run_to_the_end_with_a_progress_bar(api: ApiNode) -> None:
    # Given a run of three gated steps that reports progress, and `baton runs tail` following it
    run_id = await api.trigger("steps", {"n": 3, "gate": "tail"})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATON_API_URL": api.url, "BATON_API_KEY": api.keys["alpha"]}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "runtime", "runs", "tail", run_id, cwd=ROOT,
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    lines: list[str] = []

    async def line() -> str:
        assert proc.stdout is not None
        text = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().rstrip("\n")
        lines.append(text)
        return text

    # When the steps are let through one by one, each after tail printed the previous progress
    while "status executing" not in await line():
        pass
    for i in range(3):
        api.gates.open(f"tail-{i}")
        while not (await line()).startswith("progress ["):
            pass
    code = await asyncio.wait_for(proc.wait(), 20)
    rest = (await proc.stdout.read()).decode().splitlines()
    output = lines + rest
    # Then it printed each progress as a bar, live, then the end of the run, and exited 0
    bars = [x for x in output if x.startswith("progress [")]
    assert len(bars) == 3 and "100% 3/3 step 2 done" in bars[-1] and bars[0].count("#") == 10
    assert output[-1] == f"run {run_id} completed" and code == 0
    assert any("step     step s0 completed" in x for x in output)


async def test_apikey_prints_a_key_and_its_settings_entry() -> None:
    # When a key is made for a project
    code, out, err = await baton(None, "apikey", "acme")
    # Then the key and the hash entry for BATON_API_KEYS are printed, and they match
    assert code == 0, err
    key = out.split("key:")[1].split()[0]
    entry = out.split("BATON_API_KEYS=")[1].split()[0]
    assert entry == f"acme:{hash_key(key)}"


async def test_apikey_makes_a_hatchet_sdk_token_nobody_can_derive() -> None:
    # When two hatchet-sdk tokens are made for one project and API URL
    made = [await baton(None, "apikey", "acme", "--hatchet", "https://baton.example") for _ in range(2)]
    keys = []
    for code, out, err in made:
        assert code == 0, err
        key = out.split("key:")[1].split()[0]
        # Then each is a JWT naming the project's tenant (the id its runs show in the hatchet view) and the
        # URL, as the SDK reads them, and its settings entry is its hash
        claims = orjson.loads(base64.urlsafe_b64decode(key.split(".")[1] + "=="))
        assert (claims["sub"], claims["server_url"]) == (tenant_of("acme"), "https://baton.example"), claims
        assert out.split("BATON_API_KEYS=")[1].split()[0] == f"acme:{hash_key(key)}"
        keys.append(key)
    # and the two differ: a key made only of the tenant and the URL, which are no secret, could be rebuilt
    assert keys[0] != keys[1]


def test_output_nobody_reads_any_more_ends_the_command_quietly() -> None:
    # Given a command whose output goes to a pipe nobody reads any more (`baton ... | head` once head exits)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        # When it prints
        done = subprocess.run([sys.executable, "-m", "runtime", "completion", "bash"], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    finally:
        os.close(write_end)
    # Then it ends as a tool ended by SIGPIPE does: nothing on stderr (no error, no traceback), exit code 141
    assert (done.returncode, done.stderr) == (128 + signal.SIGPIPE, b"")


async def test_redis_cli_prints_replies_as_redis_cli_does(redis_server: RedisProcess, prefix: str) -> None:
    # Given `baton redis-cli` pointed at a server
    env = {"BATON_REDIS_URL": redis_server.url}
    key = f"{prefix}:h"
    # When it sends commands of each reply kind, Then each reply prints as redis-cli prints it to a pipe:
    # status replies as the server's words (not redis-py's True), an array one element per line, nil as an
    # empty line, an integer as its digits
    for args, printed in ((("PING",), "PONG\n"), (("SET", f"{prefix}:s", "v"), "OK\n"),
                          (("HSET", key, "a", "1", "b", "2"), "2\n"), (("HGETALL", key), "a\n1\nb\n2\n"),
                          (("GET", f"{prefix}:missing"), "\n"), (("TYPE", key), "hash\n")):
        code, out, err = await baton(None, "redis-cli", *args, env=env)
        assert (code, out) == (0, printed), (args, out, err)


async def test_api_runs_alone(redis_server: RedisProcess, prefix: str) -> None:
    # Given `baton api` started on its own (no executors) with a key
    port = free_port()
    key = "bk_" + "s" * 30
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATON_REDIS_URL": redis_server.url, "BATON_PREFIX": prefix,
           "BATON_API_PORT": str(port), "BATON_API_HOST": "127.0.0.1", "BATON_API_KEYS": f"default:{hash_key(key)}",
           "BATON_LOG_FORMAT": "text"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "runtime", "api", cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as http:
            async def up() -> Any:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/ready") as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            # When it is ready
            await eventually(up, 20, interval=0.1)
            async with http.get(f"http://127.0.0.1:{port}/v1/runs",
                                headers={"Authorization": f"Bearer {key}"}) as resp:
                listed = (resp.status, await resp.json())
    finally:
        # And it is stopped with SIGTERM
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    # Then it served the API and exited cleanly
    assert listed == (200, {"data": [], "next_cursor": None, "has_more": False, "scanned": 0})
    assert code == 0


async def test_cli_errors_say_what_was_assumed_and_exit_by_their_kind(api: ApiNode, tmp_path: Path) -> None:
    async def outside(*args: str, **env: str) -> tuple[int, str, str]:
        """`baton ARGS` in a directory of no checkout (no .baton/ here or above), with only ``env`` set."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "REDIS_"))}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "runtime", *args, cwd=tmp_path,
                                                    env={**clean, "PYTHONPATH": str(ROOT), **env},
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    # When no key is given and none can be found, the 401 says so (one line, exit 1)
    code, _, err = await outside("runs", "ls", BATON_API_URL=api.url)
    assert code == 1 and err.count("\n") == 1 and "no API key was given (--api-key, BATON_API_KEY)" in err, err
    # And an unknown job is the server's refusal, not a bad command line: exit 1 through Redis as through the API
    settings = api.app.settings
    code, _, err = await outside("submit", "no_such_job", BATON_REDIS_URL=settings.redis_url,
                                 BATON_PREFIX=settings.prefix)
    assert code == 1 and "no_such_job" in err, err
    code, _, err = await outside("submit", "no_such_job", "--api-url", api.url, BATON_API_KEY=api.keys["alpha"])
    assert code == 1 and "unknown_job" in err, err
    # And a command line that cannot be sent is exit 2, in words of the option (no function or library names)
    code, _, err = await outside("runs", "ls", "--api-url", "http://user:pw@127.0.0.1:1")
    assert code == 2 and "must not carry a user or password" in err and "pw" not in err, err
    code, _, err = await outside("submit", "echo", "--wait", "abc")
    assert code == 2 and "'abc' is not a number of seconds" in err and "_seconds" not in err, err
    # And a run that published no state says so in words
    run_id = await api.trigger("echo", 1, delay=60)
    code, out, err = await baton(api, "runs", "query", run_id)
    assert code == 0 and out == f"run {run_id} has published no state (a handler publishes it with ctx.set_state)\n"
