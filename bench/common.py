"""Helpers shared by the orchestrator, the per-system drivers and the job modules.

Only the standard library and redis-py are imported here: this module is loaded
in every system's virtualenv (streaq's included, where redis-py is installed for
the harness's own measurements).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

#: the phases every system can run, in this order (bench/driver.py; Baton's own are in bench/baton_extra.py)
COMMON_PHASES = ("enqueue", "drain", "latency", "latency_load", "memory")

#: Redis keys of the harness itself (the server is flushed between repetitions).
FIRST_KEY = "bench:first"  # RPUSH time.time() of the first job a worker process executes
LATENCY_KEY = "bench:lat"  # RPUSH start - submit (seconds) of each latency job

_PAD = "x" * 40


def payload(i: int) -> dict[str, Any]:
    """The no-op jobs' input: a small JSON object of about 100 bytes."""
    return {"i": i, "user": f"user-{i:08d}", "email": f"user{i:08d}@example.com", "pad": _PAD}


def latency_payload(i: int) -> dict[str, Any]:
    """The latency job's input: the submit time (epoch seconds) plus padding (~100 bytes)."""
    return {"i": i, "t": time.time(), "user": f"user-{i:08d}", "pad": _PAD}


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of the repetitions (None when there are none)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals), "values": vals}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def worker_env(redis_url: str, ns: str, concurrency: int, **extra: Any) -> dict[str, str]:
    """Environment of a worker process: the job modules read BENCH_* variables."""
    env = dict(os.environ)
    env.update({
        "BENCH_REDIS_URL": redis_url, "BENCH_NS": ns, "BENCH_CONCURRENCY": str(concurrency),
        "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a worker process in its own session (so its children can be stopped with it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    log.write(f"\n$ {' '.join(argv)}\n".encode())
    log.flush()
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


#: CPU seconds of worker processes that had to be killed after their group leader was gone
#: (they are never waited for by us, so resource.getrusage does not see them)
UNREAPED_CPU_S = [0.0]


def group_cpu_s(pgids: set[int], exclude: set[int] | None = None) -> float:
    """CPU seconds (user+sys, plus their waited-for children) of live processes in these process groups."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (exclude and int(entry) in exclude):
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[2]) in pgids:
            total += int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return total / tick


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int | None:
    """Stop a worker we started: SIGTERM to its process group (by its pid), then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            UNREAPED_CPU_S[0] += group_cpu_s({proc.pid}, exclude={proc.pid})
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
            return proc.returncode
    # children that outlived the leader (e.g. forked work horses) share its process group
    UNREAPED_CPU_S[0] += group_cpu_s({proc.pid})
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.returncode


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of the given distributions (missing ones are left out)."""
    from importlib import metadata

    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = sys.version.split()[0]
    return out


def redis_info(client: Any, section: str) -> dict[str, Any]:
    """INFO <section> as a dict (sync redis-py client)."""
    return dict(client.info(section))


def redis_cpu(client: Any) -> float:
    """Redis server CPU seconds so far (user + sys, main thread and children)."""
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def commandstats(client: Any) -> dict[str, int]:
    """Calls per command (lower-case name) from INFO commandstats."""
    out = {}
    for key, value in client.info("commandstats").items():
        name = key[len("cmdstat_"):] if key.startswith("cmdstat_") else key
        out[name.lower()] = int(value["calls"]) if isinstance(value, dict) else 0
    return out


#: Commands the harness itself sends while measuring (left out of the per-run counts).
HARNESS_COMMANDS = {"info", "config|resetstat", "config|get", "flushall", "client|setinfo", "hello", "ping",
                    "select", "client|setname", "client|list", "echo", "monitor"}


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str)


def now() -> float:
    return time.time()
