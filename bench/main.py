"""Side-by-side benchmark: ``bench/run [--quick] [--systems baton,arq,...] [--profile]``.

Starts one redis-server of its own (127.0.0.1, a free port, no persistence),
runs every selected system's driver against it one after the other (each in its
own virtualenv, see bench/run), prints one table with ratios against Baton and
writes bench/results/<date>.md, <date>.json and LATEST.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.adapters import ALL, SYSTEMS, base_system
from bench.baton_extra import PHASES as BATON_PHASES
from bench.common import BENCH, COMMON_PHASES, ROOT
from bench.goals import verdicts
from bench.interleave import merge_reps, rep_config
from bench.report import render

VENV = BENCH / ".venv"
PHASES = COMMON_PHASES + BATON_PHASES  # this module runs before any virtualenv exists: no bench.driver here

FULL = {
    "reps": 3, "n_one": 3000, "n_many": 5000, "in_flight": 100, "n_drain": 20_000, "drain_cap_s": 120,
    "latency_n": 500, "latency_gap_ms": 5, "n_mem": 100_000, "mem_reps": 1, "concurrency": 100,
    "scaling_processes": [1, 2, 4], "scaling_concurrency": [10, 100, 1000], "n_monitor": 5000,
    "renew_window_s": 10, "profile": True, "n_profile": 100_000, "profile_s": 6, "driver_timeout_s": 1500,
}
QUICK = {
    **FULL, "reps": 1, "n_one": 500, "n_many": 1000, "n_drain": 2000, "drain_cap_s": 30, "latency_n": 100,
    "n_mem": 10_000, "mem_reps": 1, "n_monitor": 1000, "renew_window_s": 3, "profile": False,
    "n_profile": 30_000, "profile_s": 2, "driver_timeout_s": 600,
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """The one redis-server this benchmark owns (stopped by its pid)."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        return out.strip()

    def start(self) -> None:
        for _ in range(5):
            self.port = free_port()
            logf = open(self.workdir / "redis-server.log", "ab")
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.workdir), "--daemonize", "no", "--maxmemory-policy", "noeviction",
                 "--protected-mode", "yes"],
                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            import redis

            client = redis.Redis(host="127.0.0.1", port=self.port)
            for _ in range(100):
                if self.proc.poll() is not None:
                    break
                try:
                    client.ping()
                    client.close()
                    return
                except redis.ConnectionError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"could not start {self.binary} (log in {self.workdir})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_gib, 1), "kernel": platform.release(),
        "os": platform.platform(), "python": sys.version.split()[0],
    }


def git_info() -> dict[str, Any]:
    """The engine's revision: HEAD plus whether runtime/ or actors/ had uncommitted changes."""
    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.rstrip("\n") if r.returncode == 0 else ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "runtime", "actors").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD"), "subject": git("log", "-1", "--format=%s"),
            "engine_uncommitted": dirty}


def cpu_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s(redis_url: str) -> float:
    """CPU seconds used by this benchmark: this process, its waited-for children, and its redis-server."""
    import resource

    import redis

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = redis.Redis.from_url(redis_url)
    try:
        info = r.info("cpu")
        server = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        r.close()
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + server


def python_of(system: str) -> Path:
    base = base_system(system)
    return VENV / "bin" / "python" if base == "baton" else VENV / "peers" / base / "bin" / "python"


def run_driver(system: str, redis_url: str, cfg: dict[str, Any], workdir: Path, tag: str = "") -> dict[str, Any]:
    """One system's driver in its own virtualenv; a failure becomes a 'failed' result with its reason.
    ``tag`` names its log and output files apart from other runs of the same system's driver."""
    failed_marker = VENV / "peers" / f"{base_system(system)}.failed"
    if failed_marker.exists():
        return {"system": system, "failed": f"install failed: {failed_marker.read_text().strip()[-400:]}"}
    py = python_of(system)
    if not py.exists():
        return {"system": system, "failed": f"no virtualenv for {system} ({py} missing): run bench/run"}
    out = workdir / f"{system}{tag}.json"
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    driver_log = workdir / f"driver-{system}{tag}.log"
    cmd = [str(py), "-m", "bench.driver", "--system", system, "--redis-url", redis_url,
           "--config", json.dumps(cfg), "--out", str(out), "--log-dir", str(logs)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    busy0, own0 = cpu_busy_s(), own_cpu_s(redis_url)
    with open(driver_log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        assert proc.stdout is not None
        deadline = t0 + cfg["driver_timeout_s"]
        timed_out = False
        for line in proc.stdout:
            f.write(line)
            sys.stdout.write("    " + line.decode(errors="replace"))
            sys.stdout.flush()
            if time.time() > deadline:
                timed_out = True
                break
        if timed_out:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    tail = driver_log.read_text(errors="replace").strip().splitlines()[-6:]
    if timed_out:
        return {"system": system, "failed": f"driver timed out after {cfg['driver_timeout_s']} s"}
    if proc.returncode != 0 or not out.exists():
        return {"system": system, "failed": f"driver exited {proc.returncode}: " + " | ".join(tail)[-500:]}
    result: dict[str, Any] = json.loads(out.read_text())
    wall = time.time() - t0
    result["seconds"] = round(wall, 1)
    # CPU used on this machine by anything else while this system ran (0 on a quiet machine)
    own = own_cpu_s(redis_url) - own0 + float(result.get("unreaped_worker_cpu_s", 0.0))
    result["other_load_cores"] = round(max(0.0, (cpu_busy_s() - busy0) - own) / wall, 2)
    return result



def portable(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run's configuration as a results file keeps it: a path inside the checkout relative to its
    root, so no machine's own paths are written (the run's temporary directory is only logged)."""
    root = str(ROOT) + "/"
    return {k: v.removeprefix(root) if isinstance(v, str) else v for k, v in cfg.items()}

def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repetition and small N: a smoke run")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated, default: " + ",".join(SYSTEMS) + "; also: " + ",".join(ALL[len(SYSTEMS):]))
    ap.add_argument("--phases", help="comma-separated phases to run (default all): " + ",".join(PHASES))
    ap.add_argument("--n-drain", type=int, help="runs per drain (default 20,000, --quick 2,000)")
    ap.add_argument("--reps", type=int, help="repetitions per figure (default 3, --quick 1)")
    ap.add_argument("--mem-reps", type=int, help="repetitions of the 100,000-run memory fill (default 1)")
    ap.add_argument("--profile", dest="profile", action="store_true", default=None,
                    help="py-spy profile of a Baton worker (default on, off with --quick)")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--results-dir", default=str(BENCH / "results"))
    ap.add_argument("--no-save", action="store_true", help="print only, write no results files")
    args = ap.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in ALL]
    if unknown:
        ap.error(f"unknown system(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
    cfg = dict(QUICK if args.quick else FULL)
    if args.reps:
        cfg["reps"] = args.reps
    if args.mem_reps:
        cfg["mem_reps"] = args.mem_reps
    if args.profile is not None:
        cfg["profile"] = args.profile
    if args.n_drain:
        cfg["n_drain"] = args.n_drain
    if args.phases:
        phases = [p.strip() for p in args.phases.split(",") if p.strip()]
        cfg["phases"] = phases
        if bad := [p for p in phases if p not in PHASES]:
            ap.error(f"unknown phase(s): {', '.join(bad)}; choose from {', '.join(PHASES)}")
    cfg["py_spy"] = str(VENV / "bin" / "py-spy")
    command = os.environ.get("BENCH_COMMAND") or "bench/run " + " ".join(sys.argv[1:])

    revision = git_info()
    workdir = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    server = RedisServer(workdir)
    started = dt.datetime.now(dt.UTC)
    results: list[dict[str, Any]] = []
    cfg["interleaved"] = True
    try:
        server.start()
        log(f"redis-server {server.url} (pid {server.proc.pid if server.proc else '?'}); work dir {workdir}")
        # repetitions interleaved across systems, so every system's median meets the same hours
        # (bench/interleave.py); a system that failed is not run again
        reps: dict[str, list[dict[str, Any]]] = {system: [] for system in systems}
        for rep in range(cfg["reps"]):
            for system in systems:
                if reps[system] and "failed" in reps[system][-1]:
                    continue
                log(f"== {system} (repetition {rep + 1} of {cfg['reps']})")
                res = run_driver(system, server.url, rep_config(cfg, rep), workdir, tag=f"-{rep + 1}")
                if "failed" in res:
                    log(f"{system}: FAILED: {res['failed']}")
                reps[system].append(res)
        results = [merge_reps(reps[system]) for system in systems]
    finally:
        server.stop()
    finished = dt.datetime.now(dt.UTC)
    meta = {
        "command": command, "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds()), "machine": machine(),
        "redis_server": server.version(), "git": revision, "config": portable(cfg), "quick": args.quick,
    }
    log(f"logs of this run: {workdir}")
    markdown = render(meta, results)
    print()
    print(markdown)
    if not args.no_save:
        out = Path(args.results_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        stamp = started.strftime("%Y-%m-%d") + ("-quick" if args.quick else "")
        md_path, json_path = out / f"{stamp}.md", out / f"{stamp}.json"
        md_path.write_text(markdown)
        goals = [dataclasses.asdict(v) for v in verdicts(results)]
        json_path.write_text(json.dumps({"meta": meta, "goals": goals, "results": results}, indent=2, default=str)
                             + "\n")
        if not args.quick:
            (out / "LATEST.md").write_text(markdown)
        log(f"wrote {md_path.relative_to(ROOT)}, {json_path.relative_to(ROOT)}"
            + ("" if args.quick else ", bench/results/LATEST.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
