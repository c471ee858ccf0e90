"""Instructions Redis executes per run to claim and to finish it: an exact measure of the drain scripts.

    .venv/bin/python -m bench.script_instructions [--runs 2000] [--piece 25] [--batch 50] [--slots 100]
    .venv/bin/python -m bench.script_instructions --pickup 40

Redis CPU per run moves by ±20% between identical runs on a shared machine, so a change to the
Lua of a few percent shows only in an exact count. This runs ``redis-server`` under valgrind's
callgrind, counting only inside FCALL (``--toggle-collect=fcallCommand``), queues ``--runs`` no-op
runs with ``trigger_batch`` (not counted) and drains them as a node of ``--slots`` slots does:
claims in pieces of ``--piece`` while it has room, completes ``--batch`` outcomes per finish when
full (a node's finishes average ~50 outcomes in bench/run's drain), and prints the instructions per
run of each phase. The leased set stays as large as a node keeps it: what adding and removing a
lease costs depends on its size and encoding. The counts repeat to within ~0.5% (Lua's garbage
collector runs at slightly different points); run it on two revisions to compare them.
``--pickup N`` counts instead what an idle pickup costs Redis: N ``app.trigger`` calls of one run,
each leased by runs_create to a node registered as waiting and pushed to its hand-off list.
Needs valgrind (Debian: valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from bench.common import payload
from runtime import Baton, RunContext, Settings
from runtime.scripts import Claimed, Outcome, handed_off_runs
from tests.servers import free_port, server_binary, wait_ready

NODE = "bench-node"


class CountedServer:
    """A redis-server under callgrind, counting instructions inside FCALL only."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="baton-callgrind-"))
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=fcallCommand",
             f"--callgrind-out-file={self.dir}/out.%p", server_binary(), "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.port, self.proc, timeout_s=60)

    def _control(self, flag: str) -> None:
        subprocess.run(["callgrind_control", flag, str(self.proc.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def zero(self) -> None:
        """Start counting from zero."""
        self._control("-z")

    def counted(self) -> int:
        """Instructions counted since the last zero (dumps them to a file and reads its total)."""
        self._control("-d")
        dumps = sorted(self.dir.glob(f"out.{self.proc.pid}.*"), key=lambda p: p.stat().st_mtime)
        found = re.search(r"^(?:summary|totals):\s+(\d+)", dumps[-1].read_text(), re.M)
        if found is None:
            raise RuntimeError(f"no instruction total in {dumps[-1]}")
        return int(found[1])

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self.proc.terminate()
        self.proc.wait(60)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def counted_app() -> AsyncIterator[tuple[CountedServer, Baton]]:
    """A server under callgrind and an app of one no-op job on it, its jobs registered."""
    server = CountedServer()
    app = Baton(Settings(redis_url=f"redis://127.0.0.1:{server.port}", metrics_port=0))

    @app.job()
    async def noop(ctx: RunContext, data: object) -> None:
        return None

    try:
        await app.register_jobs()
        yield server, app
    finally:
        await app.close()
        server.stop()


async def measure(runs: int, piece: int, batch: int, slots: int = 100) -> tuple[float, float]:
    """Instructions per run (claim, finish) for ``runs`` no-op runs."""
    async with counted_app() as (server, app):
        items = [{"job": "noop", "input": payload(i)} for i in range(runs)]
        for start in range(0, runs, 1000):
            await app.trigger_batch(items[start:start + 1000])
        partition = app.keys.partitions[0]
        # as a node of `slots` slots: claims pieces while it has room, finishes a batch when full (the
        # leased set's size is part of what adding and removing a lease costs Redis)
        held: list[Claimed] = []
        claimed = 0
        claim = finish = 0
        while True:
            while len(held) < slots:
                server.zero()
                got, _ = await app.scripts.claim(partition, NODE, slots - len(held), ["default"],
                                                 app.served_jobs(), 0, piece=piece)
                if not got:
                    break
                claim += server.counted()
                held.extend(got)
                claimed += len(got)
            if not held:
                break
            done_now, held = held[:batch], held[batch:]
            server.zero()
            done = await app.scripts.finish(partition, [Outcome(c.run_id, c.token, "completed") for c in done_now])
            finish += server.counted()
            if any(status != "completed" for _, status in done):
                raise RuntimeError(f"a finish was not recorded: {done}")
        if claimed != runs:
            raise RuntimeError(f"claimed {claimed} of {runs} runs")
        return claim / runs, finish / runs


async def measure_pickup(runs: int) -> float:
    """Instructions per ``app.trigger`` of one run handed straight to a waiting node."""
    async with counted_app() as (server, app):
        partition = app.keys.partitions[0]
        counted = 0
        for i in range(runs):
            # the node finds nothing and registers as waiting, having received the i runs handed to it
            # so far (as an idle node's fetcher does)
            got, _ = await app.scripts.claim(partition, NODE, 100, ["default"], app.served_jobs(), 0,
                                             received=i, register_ms=60_000)
            if got:
                raise RuntimeError(f"claimed {len(got)} run(s) from a queue that should be empty")
            server.zero()
            await app.trigger("noop", payload(i))
            counted += server.counted()
            # the node takes the run and completes it (not counted)
            entry = await app.redis.lpop(partition.handoff(NODE))
            if entry is None:
                raise RuntimeError("the run was not handed to the waiting node")
            done = await app.scripts.finish(partition, [Outcome(c.run_id, c.token, "completed")
                                                        for c in handed_off_runs(entry, partition.index)])
            if [status for _, status in done] != ["completed"]:
                raise RuntimeError(f"a finish was not recorded: {done}")
        return counted / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--piece", type=int, default=25, help="runs per claim (a node claims pieces of 25)")
    parser.add_argument("--batch", type=int, default=50, help="outcomes per finish")
    parser.add_argument("--slots", type=int, default=100, help="most runs held at once (a node's concurrency)")
    parser.add_argument("--pickup", type=int, default=0, metavar="N",
                        help="count N one-run triggers handed to a waiting node instead")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian/Ubuntu: apt-get install valgrind)")
    if args.pickup:
        per_run = asyncio.run(measure_pickup(args.pickup))
        print(f"instructions inside Redis per pickup (app.trigger of one run handed to a waiting node): "
              f"{per_run:,.0f} ({args.pickup} runs)")
        return
    claim, finish = asyncio.run(measure(args.runs, args.piece, args.batch, args.slots))
    print(f"instructions per run inside Redis: claim {claim:,.0f}, finish {finish:,.0f}, "
          f"total {claim + finish:,.0f} ({args.runs} runs, claims of {args.piece}, finishes of {args.batch}, "
          f"{args.slots} slots)")


if __name__ == "__main__":
    main()
