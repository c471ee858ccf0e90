"""Daemon logs: JSON lines by default (run id, job, attempt and node on every line about a run),
human-readable lines on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from runtime import Baton, Settings
from tests.nodes import ROOT, eventually, stop_process
from tests.observability.conftest import with_jobs

APP = "tests.observability.jobs:app"


def child_env(settings: Settings, node: str) -> dict[str, str]:
    """The environment of a worker that chooses its log format itself (no BATON_LOG_FORMAT)."""
    env = {k: v for k, v in os.environ.items() if k != "BATON_LOG_FORMAT"}
    env.update({
        "BATON_REDIS_URL": settings.redis_url, "BATON_PREFIX": settings.prefix, "BATON_NODE_ID": node,
        "BATON_METRICS_PORT": "0", "BATON_SHUTDOWN_GRACE_S": "2", "PYTHONPATH": str(ROOT),
    })
    return env


async def test_daemon_logs_json_lines_with_run_context(
    settings: Settings, make_app: Callable[..., Baton], tmp_path: Path,
) -> None:
    # Given a worker whose stderr is a file (as under Kubernetes), with no log format set
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", APP], cwd=ROOT,
                                env=child_env(settings, "json-node"), stdout=out, stderr=subprocess.STDOUT)
    try:
        # When it runs a run that logs from an async handler, one from a plain-def handler's thread,
        # one that fails and is retried, and one that times out
        app = with_jobs(make_app())
        runs = {name: await app.trigger(name, "hi") for name in ("ok", "chatty", "boom", "stuck")}
        for run_id in runs.values():
            await app.wait_for(run_id, 20)
    finally:
        assert stop_process(proc) == 0
    # Then every line is a JSON object with time, level, logger, message and node
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line) and line["node"] == "json-node", line
    # and every line about one of the runs carries its id, job and attempt
    by_id = {run_id: name for name, run_id in runs.items()}
    about_runs = [x for x in lines if x.get("run_id") or any(run_id in x["msg"] for run_id in by_id)]
    for line in about_runs:
        assert line.get("run_id") in by_id, line
        assert line["job"] == by_id[line["run_id"]] and isinstance(line["attempt"], int), line

    def said(job: str, text: str) -> list[int]:
        return [x["attempt"] for x in about_runs if x["job"] == job and text in x["msg"]]

    assert said("ok", "ok run handled") == [1]
    assert said("chatty", "chatty handler says hi") == [1]  # logged from a worker thread
    assert said("boom", "handler raised RuntimeError") == [1, 2]
    assert said("stuck", "timed out") == [1]


async def test_daemon_logs_human_lines_on_a_terminal(settings: Settings, make_app: Callable[..., Baton]) -> None:
    # Given a worker whose stderr is a terminal, with no log format set
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "worker", "--app", APP], cwd=ROOT,
                            env=child_env(settings, "tty-node"), stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen: list[str] = []

    def read() -> str:
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen.append(chunk.decode(errors="replace"))
        return "".join(seen)

    try:
        await eventually(lambda: "node tty-node started" in read(), 20)
        app = with_jobs(make_app())
        run_id = await app.trigger("chatty", "hello")
        await app.wait_for(run_id, 20)
        await eventually(lambda: "chatty handler says hello" in read(), 10)
    finally:
        code = stop_process(proc, signal.SIGTERM)
        read()
        os.close(master)
    assert code == 0
    text = "".join(seen).replace("\r\n", "\n")
    # Then the lines are plain text: time, level, logger, [run job#attempt], message
    lines = [x for x in text.splitlines() if x.strip()]
    assert not any(x.lstrip().startswith("{") for x in lines), lines
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} INFO +baton\.supervisor node tty-node started.*", x)
               for x in lines), lines
    (line,) = [x for x in lines if "chatty handler says hello" in x]
    assert f"[{run_id} chatty#1]" in line, line
