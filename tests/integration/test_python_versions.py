"""The daemon runs on every supported Python this machine has, not only on the suite's own.

The suite runs on one interpreter, the one ``./dev`` made ``.venv`` with. A daemon that
dies on another supported version passes it: on 3.13, uvloop hands the run task factory a
keyword 3.11's loops never pass, and the worker died at its first task, while every test
here passed on 3.11. So each other Python 3.11+ found here (``pythonX.Y`` on PATH, pyenv's
versions) runs a worker process, in a virtualenv of its own holding the package's
dependencies (kept in ``.venv/pythons/X.Y``, made again when the dependencies change), and
runs submitted by ``app.trigger`` and through the submission stream must complete there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from runtime import Settings
from tests.integration.test_processes import producer, worker_env
from tests.nodes import ROOT, eventually, spawn_worker, stop_process
from tests.servers import free_port

#: the minor versions the package supports (pyproject.toml: requires-python >= 3.11) and that exist
SUPPORTED = ("3.11", "3.12", "3.13", "3.14")
#: where the other interpreters' virtualenvs are kept (ignored by git with the rest of .venv)
VENVS = ROOT / ".venv" / "pythons"


def _runs(python: str) -> bool:
    """Whether ``python`` works and can make a virtualenv (a pyenv shim for a version not selected does
    not work; Debian's and Ubuntu's interpreters have no ensurepip without their -venv package)."""
    try:
        probe = [python, "-c", "import ensurepip, venv"]
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def other_pythons() -> dict[str, str]:
    """Each supported minor version other than this one's that this machine has: its interpreter."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found: dict[str, str] = {}
    for version in SUPPORTED:
        if version == f"{sys.version_info.major}.{sys.version_info.minor}":
            continue
        name = f"python{version}"
        candidates = [shutil.which(name), *(str(p) for p in sorted(pyenv.glob(f"{version}.*/bin/{name}")))]
        python = next((c for c in candidates if c and _runs(c)), None)
        if python is not None:
            found[version] = python
    return found


def dependencies() -> list[str]:
    """The package's runtime dependencies, as pyproject.toml lists them."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def virtualenv_for(version: str, python: str) -> str:
    """The interpreter of a virtualenv of ``python`` holding the dependencies (made when missing or stale)."""
    venv = VENVS / version
    stamp = venv / ".baton-dependencies"
    wanted = "\n".join([python, *dependencies()])
    if not (stamp.exists() and stamp.read_text() == wanted and (venv / "bin" / "python").exists()):
        shutil.rmtree(venv, ignore_errors=True)
        for argv in ([python, "-m", "venv", str(venv)],
                     [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                      "--no-input", *dependencies()]):
            made = subprocess.run(argv, capture_output=True, text=True, timeout=170)
            assert made.returncode == 0, f"{' '.join(argv)} failed:\n{made.stdout[-2000:]}{made.stderr[-2000:]}"
        stamp.write_text(wanted)
    return str(venv / "bin" / "python")


PYTHONS = other_pythons()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("version", sorted(PYTHONS) or ["none"])
async def test_a_worker_runs_jobs_on_every_other_supported_python_here(version: str, settings: Settings,
                                                                       redis: Any, tmp_path: Path) -> None:
    if version == "none":
        pytest.skip("no supported Python other than the suite's own on this machine")
    # Given a worker process run by another supported Python, in a virtualenv of the package's dependencies
    python = await asyncio.to_thread(virtualenv_for, version, PYTHONS[version])
    port = free_port()
    worker = spawn_worker("tests.apps:app", worker_env(settings, f"py{version}", BATON_METRICS_PORT=port,
                                                       BATON_METRICS_HOST="127.0.0.1"),
                          tmp_path / "worker.log", python=python)
    app = producer(settings)
    try:
        # When a run is submitted with app.trigger and another through the submission stream
        triggered = await app.trigger("noop", {"via": "trigger"})
        entry = (await redis.xadd(app.keys.submit_stream, {"job": "noop", "input": '{"via": "stream"}'})).decode()

        async def both_completed() -> bool:
            runs = [await app.get_run(run_id) for run_id in (triggered, entry)]
            return all(r is not None and r.status == "completed" for r in runs)

        await eventually(both_completed, timeout=60)
        # Then both ran there, returned their inputs, and the worker says it is that Python
        assert (await app.get_run(triggered)).output == {"via": "trigger"}  # type: ignore[union-attr]
        assert (await app.get_run(entry)).output == {"via": "stream"}  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as reply:
            metrics = await reply.text()
        build = [line for line in metrics.splitlines() if line.startswith("baton_build_info{")]
        assert len(build) == 1 and f'python_version="{version}.' in build[0], build
    finally:
        code = await asyncio.to_thread(stop_process, worker)
        await app.close()
    # and it drained and exited 0 on SIGTERM
    assert code == 0
