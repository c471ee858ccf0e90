"""``python -m bench.chaos [--short] [--out FILE] [scenario ...]``: run chaos scenarios, print the report.

Without scenario names every scenario runs, in order. ``--out`` also writes
the Markdown report (docs/reliability.md is written this way). The exit code
is 1 when any invariant was violated, 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import subprocess
import sys
from pathlib import Path

from .processes import ROOT
from .report import render
from .scenarios import SCENARIOS
from .stage import Result, Stage


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


async def _run(names: list[str], short: bool) -> list[Result]:
    results = []
    for name in names:
        print(f"chaos: {name} ({'short' if short else 'full'}) ...", file=sys.stderr, flush=True)
        result = await SCENARIOS[name](short)
        print(f"chaos: {name}: {'ok' if result.ok else 'VIOLATIONS: ' + ', '.join(result.verdict.violations)}"
              f" ({result.duration_s:.0f}s)", file=sys.stderr, flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="scenario",
                        help=f"scenarios to run (default: all): {', '.join(SCENARIOS)}")
    parser.add_argument("--short", action="store_true", help="small numbers (what the test suite runs)")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the nodes' logs (the report says where)")
    args = parser.parse_args(argv)
    Stage.keep_logs = args.keep_logs
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    command = "python -m bench.chaos " + " ".join(sys.argv[1:] if argv is None else argv)
    started = dt.datetime.now(dt.UTC)
    # SIGTERM unwinds like Ctrl-C, so every scenario's teardown stops the processes it started
    # (they run in sessions of their own and would not see a signal sent to this one's group)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    results = asyncio.run(_run(names, args.short))
    header = [
        "# Reliability under real faults",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- commit: {_commit()}",
        f"- command: `{command.strip()}`",
        "- what runs: real processes on 127.0.0.1: a redis-server, Baton worker nodes "
        "(`python -m runtime worker --app bench.chaos.jobs:app`), a producer XADDing to the submission stream; "
        "then the invariant checker reads Redis (see bench/chaos/checker.py).",
    ]
    header += [
        "- run it from the repository root with the project's virtualenv active (`./dev test` sets it up): "
        "`python -m bench.chaos` (every scenario, full size, about 10 minutes; add `--out docs/reliability.md` to "
        "rewrite this file, `--keep-logs` to keep the nodes' logs, scenario names to run only those); the short "
        "versions run in the test suite: `python -m pytest tests/chaos`",
        "",
        "Scenarios:",
        "",
        *[f"- **{name}**: {(SCENARIOS[name].__doc__ or '').strip()}" for name in names],
    ]
    report = render(results, header)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
