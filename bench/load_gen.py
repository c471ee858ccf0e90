"""A steady background load: ``python -m bench.load_gen --system S --ns NS --rate R --out FILE [--tick-ms 10]``.

Run by bench/pickup.py in the system's virtualenv while probes measure pickup
latency. Every ``--tick-ms`` (10 ms unless told) it submits the no-op runs that
are due at ``--rate`` runs/s (the system's bulk API when it has one, else its
one-at-a-time API), until SIGTERM; then writes ``{"sent", "seconds", "rate"}``
to --out. The tick sets the bursts' size: rate x tick runs arrive at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path

from bench.common import payload
from bench.driver import adapter_class

#: the default time between two submissions of the load
TICK_MS = 10.0


async def generate(system: str, redis_url: str, ns: str, rate: float, log_dir: Path,
                   tick_ms: float = TICK_MS) -> dict[str, float]:
    a = adapter_class(system)(redis_url, ns, log_dir)
    await a.setup()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    sent = 0
    t0 = time.perf_counter()
    try:
        while not stopping.is_set():
            due = int(rate * (time.perf_counter() - t0)) - sent
            if due > 0:
                await a.enqueue_now("noop", [payload(sent + i) for i in range(due)])
                sent += due
            # (not runtime.cancelling.set_within: this runs in the peers' virtualenvs too, which have
            # no Baton; asyncio.timeout, not asyncio.wait_for, for the reason given there)
            try:
                async with asyncio.timeout(tick_ms / 1000):
                    await stopping.wait()
            except TimeoutError:
                pass
    finally:
        await a.teardown()
    seconds = time.perf_counter() - t0
    return {"sent": sent, "seconds": seconds, "rate": sent / seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--ns", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--log-dir", required=True)
    ap.add_argument("--tick-ms", type=float, default=TICK_MS, help="time between two submissions (ms)")
    ns = ap.parse_args()
    result = asyncio.run(generate(ns.system, ns.redis_url, ns.ns, ns.rate, Path(ns.log_dir), ns.tick_ms))
    Path(ns.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
