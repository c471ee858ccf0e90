"""Where an idle pickup's time goes, stage by stage: ``python -m bench.pickup_stages [--probes 500] [--gap-ms 5]``.

bench/run's ``latency`` phases give one figure per path (submit to handler start). This splits
it. It starts a redis-server of its own and one ``baton worker`` (concurrency 100) whose app
(this module, with BENCH_PICKUP_STAGES set) wraps the functions each stage ends in and notes
``time.perf_counter()`` there (CLOCK_MONOTONIC on Linux: one clock for every process of the
machine). The probes are submitted one at a time, ``--gap-ms`` apart, so exactly one is on its
way at a time and the worker's stamps belong to it. Two paths:

- ``app.trigger``: the client's runs_create call leases the run to the waiting node and pushes
  it to the node's hand-off list; the receiver's pop returns (``pop``), the run goes to the
  executor (``deliver``, ``executor``), its task starts (``task``) and calls the handler;
- ``XADD``: a plain client appends the entry to the submission stream; the intake's read
  returns (``intake read``), its runs_create call leases the run to its own node
  (``create sent``, ``create reply``), then as above from ``deliver``.

Each stage's p50 / p90 / p99 is the time from the stamp before it; ``submit returned`` is the
client's own call. The wrapping itself costs ~1 µs per stamp. Run it from the repository root
with the project's virtualenv (``./dev test`` sets it up).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.common import percentile
from bench.own_node import own_node
from runtime import Baton, RunContext

#: where the worker's handler puts each probe's stamps: [probe number, [[stage, perf_counter], ...]]
STAMPS_KEY = "bench:pickup-stages"
#: set in the worker's environment: its app wraps the stages
ENV = "BENCH_PICKUP_STAGES"

app = Baton()
#: the stamps of the probe on its way (one at a time: see the module's docstring)
_current: list[tuple[str, float]] = []


def _note(stage: str) -> None:
    _current.append((stage, time.perf_counter()))


@app.job()
async def probe(ctx: RunContext, payload: Any) -> None:
    """Notes its start, then stores the probe's stamps."""
    _note("handler")
    stamps = list(_current)
    _current.clear()
    await app.redis.rpush(STAMPS_KEY, orjson.dumps([payload["i"], stamps]))


def _wrap_async(owner: Any, name: str, before: str | None, after: str | None,
                when: Callable[[Any], bool] = bool) -> None:
    """Make ``owner.name`` (a coroutine function) note stage ``before`` as it is called and ``after`` as
    it returns a result ``when`` accepts."""
    original = getattr(owner, name)

    @functools.wraps(original)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            _note(before)
        result = await original(*args, **kwargs)
        if after and when(result):
            _note(after)
        return result

    setattr(owner, name, wrapped)


def _install() -> None:
    """Wrap the functions each stage ends in (the worker process only)."""
    import actors.executor as executor
    import actors.intake as intake
    import actors.receiver as receiver
    from actors.delivery import Delivery

    popped = receiver.handed_off  # type: ignore[attr-defined]

    def handed_off(payload: bytes, partition: int) -> Any:
        _current.clear()  # a hand-off starts a probe's way through this node
        _note("pop")
        return popped(payload, partition)

    receiver.handed_off = handed_off  # type: ignore[attr-defined]

    def intake_read(entries: Any) -> bool:
        if entries:
            _current.clear()
            return True
        return False

    _wrap_async(intake.Intake, "_read", None, "intake read", intake_read)
    _wrap_async(Baton, "create_leasing", "create sent", "create reply")
    _wrap_async(Delivery, "deliver", "deliver", None)
    handle = executor.Executor.handle

    def executor_handle(self: Any, msg: Any) -> None:
        if hasattr(msg, "claimed"):
            _note("executor")
        handle(self, msg)

    executor.Executor.handle = executor_handle  # type: ignore[method-assign]
    _wrap_async(executor.Executor, "_execute", "task", None)


if os.environ.get(ENV):
    _install()


async def _probes(client: Baton, submit: Callable[[int], Awaitable[Any]], n: int,
                  gap_s: float) -> dict[str, list[float]]:
    """Submit ``n`` probes ``gap_s`` apart; each stage's durations in ms."""
    await client.redis.delete(STAMPS_KEY)
    sent: dict[int, tuple[float, float]] = {}
    for i in range(n):
        t0 = time.perf_counter()
        await submit(i)
        sent[i] = (t0, time.perf_counter())
        await asyncio.sleep(gap_s)
    deadline = time.monotonic() + 30
    while await client.redis.llen(STAMPS_KEY) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {await client.redis.llen(STAMPS_KEY)} of {n} probes ran within 30 s")
        await asyncio.sleep(0.05)
    stages: dict[str, list[float]] = {}
    for raw in await client.redis.lrange(STAMPS_KEY, 0, -1):
        i, stamps = orjson.loads(raw)
        t0, t1 = sent[i]
        stages.setdefault("submit returned", []).append((t1 - t0) * 1000)
        previous = t0
        for stage, t in stamps:
            stages.setdefault(stage, []).append((t - previous) * 1000)
            previous = t
        stages.setdefault("total (submit to handler)", []).append((stamps[-1][1] - t0) * 1000)
    return stages


def _table(title: str, stages: dict[str, list[float]]) -> str:
    lines = [f"### {title}", "", "| stage (time since the stamp before) | p50 ms | p90 ms | p99 ms |",
             "|---|--:|--:|--:|"]
    for stage, values in stages.items():
        lines.append(f"| {stage} | {percentile(values, 50):.3f} | {percentile(values, 90):.3f} | "
                     f"{percentile(values, 99):.3f} |")
    return "\n".join(lines)


async def run(n: int, gap_ms: float) -> str:
    """Both paths' stage tables, as Markdown."""
    async with own_node("bench.pickup_stages:app", "pickup-stages", **{ENV: "1"}) as node:
        client = node.client
        gap = gap_ms / 1000

        async def by_trigger(i: int) -> None:
            await client.trigger("probe", {"i": i})

        async def by_xadd(i: int) -> None:
            await client.redis.xadd(client.keys.submit_stream, {"job": "probe", "input": orjson.dumps({"i": i})})

        tables = []
        for title, submit in (("app.trigger", by_trigger), ("XADD to the submission stream", by_xadd)):
            await _probes(client, submit, 20, gap)  # warm-up
            tables.append(_table(title, await _probes(client, submit, n, gap)))
    return "\n\n".join(tables)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=500, help="probes per path")
    ap.add_argument("--gap-ms", type=float, default=5.0, help="time between probes")
    args = ap.parse_args()
    import uvloop

    print(uvloop.run(run(args.probes, args.gap_ms)))


if __name__ == "__main__":
    main()
