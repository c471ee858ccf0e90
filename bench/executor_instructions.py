"""Instructions a node's executor spends per run of a no-op job: an exact measure of its Python path.

    .venv/bin/python -m bench.executor_instructions [--runs 10000]

Worker CPU per run moves by ±20% between identical drains on a shared machine, so a change of a
few percent to the executor shows only in an exact count. This runs the executor of a node (its
actors built, not started; no Redis is used: a no-op run that logs nothing sends no command from
the executor) under valgrind's callgrind: grants in pieces of 25 as the fetcher makes them, each
run's task, handler and outcome, until the outcomes reach the reporter's mailbox. It runs twice,
with 2,000 runs and with 2,000 + ``--runs``, and prints the difference per run, so start-up and
imports cancel out. The reporter's write, the fetcher and the leaser are not in the count. The
figure repeats to within ~0.1%; run it on two revisions to compare them. Needs valgrind (Debian:
valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BASE_RUNS = 2000
PIECE = 25


async def drive(runs: int) -> None:
    """Grant ``runs`` no-op runs to an executor, PIECE at a time, until every outcome is reported."""
    from actors.supervisor import Supervisor
    from runtime import Baton, RunContext, Settings
    from runtime.messages import LeaseGranted
    from runtime.scripts import Claimed

    app = Baton(Settings(redis_url="redis://127.0.0.1:1/0", metrics_port=0))  # never connected to

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        return None

    supervisor = Supervisor(app)
    executor, reporter = supervisor.executor, supervisor.reporter
    deadline = time.monotonic() + 3600
    payload = b'{"i": 1, "pad": "' + b"x" * 80 + b'"}'
    for start in range(0, runs, PIECE):
        for i in range(start, min(start + PIECE, runs)):
            executor.handle(LeaseGranted(Claimed(f"run{i}", "bench/1", 1, "noop", payload, 30000, 0, 0, 0), deadline))
        while executor.tasks:
            await asyncio.sleep(0)
        while not reporter.inbox.empty():
            reporter.inbox.get_nowait()
    await app.close()


def counted(runs: int) -> int:
    """Instructions callgrind counts for a whole process that drives ``runs`` runs."""
    with tempfile.TemporaryDirectory(prefix="baton-callgrind-") as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable, "-m",
             "bench.executor_instructions", "--drive", str(runs)],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
            cwd=Path(__file__).resolve().parent.parent,
        )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"callgrind reported no count: {out.stderr[-500:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000, help="runs counted (beyond the 2,000 of the baseline)")
    ap.add_argument("--drive", type=int, help=argparse.SUPPRESS)  # the process callgrind runs
    args = ap.parse_args()
    if args.drive is not None:
        import uvloop

        uvloop.run(drive(args.drive))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    base, more = counted(BASE_RUNS), counted(BASE_RUNS + args.runs)
    print(f"executor: {(more - base) / args.runs:,.0f} instructions per no-op run "
          f"({args.runs:,} runs, callgrind, baseline {BASE_RUNS:,} runs subtracted)")


if __name__ == "__main__":
    main()
