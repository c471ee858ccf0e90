"""A producer process for the failover tests: XADD, then WAIT, one entry at a time at a steady rate.

    python -m tests.failover.producer URL STREAM ACKED_FILE [--cluster] [--tag T] [--interval-ms 20] [--replicas 1]

An entry counts as acknowledged only when ``WAIT <replicas> <ms>`` on the connection
that sent the XADD confirms that many replicas have it (the rule the README gives producers that
XADD directly); only then is ``<run id> <unix ms>`` appended to ACKED_FILE. An
error (the master gone, READONLY, MOVED, a WAIT that timed out) leaves that entry
unacknowledged, and the next one goes on after asking for the master again (the
server may be an old master that Sentinel replaced but has not demoted yet).
Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time

import orjson
from redis.exceptions import RedisError

from bench.chaos.load import ClusterMaster
from runtime.connection import connect

#: how long one WAIT may take (a busy 2-core machine; WAIT returns as soon as the replica answers)
WAIT_MS = 2000


async def produce(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    cluster = ClusterMaster(args.url, args.stream) if args.cluster else None
    plain = None if args.cluster else connect(args.url)
    acked = open(args.acked_file, "a", buffering=1)
    i = errors = 0
    while not stop.is_set():
        run_id = f"{args.tag}-{i}"
        i += 1
        fields = {"job": "effect", "id": run_id, "input": orjson.dumps({"i": i}).decode()}
        try:
            client = await cluster.get() if cluster else plain
            pipe = client.pipeline(transaction=False)  # one connection: WAIT counts this XADD
            pipe.xadd(args.stream, fields)
            pipe.execute_command("WAIT", args.replicas, WAIT_MS)
            _entry, replicas = await pipe.execute()
            if int(replicas) >= args.replicas:
                acked.write(f"{run_id} {int(time.time() * 1000)}\n")
                continue_after = True
            else:
                errors += 1
                continue_after = False
        except (RedisError, OSError) as exc:
            errors += 1
            continue_after = False
            print(f"entry {run_id} not acknowledged: {exc!r}", file=sys.stderr, flush=True)
        if not continue_after:
            # the server may be a master Sentinel has replaced (it keeps answering, as a master,
            # until Sentinel demotes it): ask for the master again before the next entry
            if cluster:
                await cluster.forget()
            else:
                await plain.connection_pool.disconnect()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.interval_ms / 1000)
    acked.close()
    print(f"sent {i}, not acknowledged {errors}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("stream")
    parser.add_argument("acked_file")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--tag", default="p")
    parser.add_argument("--interval-ms", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=1, help="replicas WAIT must confirm")
    asyncio.run(produce(parser.parse_args()))


if __name__ == "__main__":
    main()
