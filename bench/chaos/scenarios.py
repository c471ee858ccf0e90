"""The chaos scenarios: each is one async function ``(short) -> Result`` in ``SCENARIOS``.

``short`` selects small numbers (the test suite's version, tests/chaos/); the
full numbers are what ``python -m bench.chaos`` runs for docs/reliability.md.

Extension point for replicated Redis (Sentinel, Cluster failover): a scenario
gets its Redis from ``Stage`` (``StageConfig`` says which). A failover scenario
adds a topology option to ``StageConfig`` (start a primary, replicas and
sentinels, or a cluster, and hand the nodes the matching URL), a fault helper on
``Stage`` (kill the primary, wait for promotion) and one function here
registered in ``SCENARIOS``; the load, the checker and the report stay as they are.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from .load import Entry, Load, entry
from .processes import skewed_clock_env
from .stage import Result, Stage, StageConfig

__all__ = ["SCENARIOS", "Scale"]


@dataclass(frozen=True)
class Scale:
    """Numbers of one scenario in full and in short mode."""

    runs: int
    load_s: float
    quiesce_s: float


def _pick(short: bool, full: Scale, small: Scale) -> Scale:
    return small if short else full


#: the ordinary job outside the shared pool, for scenarios with several partitions: a pool keeps
#: its runs in one partition, where the producer's own run ids would not hash (bench/chaos/jobs.py)
SPREAD = "work_spread"


def _work(steps: int = 3, sleep: float = 0.02, gap: float = 0.02, fail: float = 0.0,
          job: str = "work") -> Callable[[int], Entry]:
    payload = {"steps": steps, "sleep": sleep, "gap": gap, "fail": fail}
    return lambda i: entry(job, payload)


def _load(stage: Stage, scale: Scale, make: Callable[[int], Entry]) -> Load:
    assert stage.app is not None
    replicated = stage.config.sentinel or stage.config.cluster
    stage.load = Load(stage.client, stage.app.keys.submit_stream, stage.name, scale.runs, scale.load_s, make,
                      wait_replicas=1 if replicated else 0, master=stage.stream_master)
    return stage.load


def _params(scale: Scale, config: StageConfig, extra: str = "") -> str:
    partitions = f", {config.partitions} partitions" if config.partitions > 1 else ""
    return (f"{scale.runs} runs over {scale.load_s:g}s, {config.workers} nodes x {config.concurrency} slots"
            f"{partitions}, lease TTL {config.lease_ttl_ms} ms" + (f", {extra}" if extra else ""))


async def kill9(short: bool) -> Result:
    """kill -9 a random node every 2-5 s while runs arrive through the stream; killed nodes are restarted."""
    scale = _pick(short, Scale(10_000, 60, 120), Scale(300, 8, 30))
    # three partitions: each node claims, registers and is handed runs in all of them, as in a
    # scaled-out deployment (a fetcher defect with several partitions went unseen with one)
    config = StageConfig(workers=3, concurrency=20, partitions=3)
    rng = random.Random(12)
    async with Stage("kill9", config) as stage:
        load = _load(stage, scale, _work(fail=0.02, job=SPREAD))
        await stage.guarded("load and kills", asyncio.gather(
            load.run(), stage.kill_randomly(scale.load_s, (2.0, 5.0), rng)))
        return await stage.finish(_params(scale, config, "kill -9 every 2-5 s"), scale.quiesce_s)


async def sigstop(short: bool) -> Result:
    """SIGSTOP a node past its lease TTL while it holds runs, let another node finish them, SIGCONT it."""
    rounds = 1 if short else 3
    scale = Scale(10 * rounds if short else 20 * rounds, 0.5 * rounds, 30)
    # three partitions: the frozen node's leases, and their fencing, span all of them
    config = StageConfig(workers=2, concurrency=10, partitions=3)
    # steps of no duration with plain work between them: a frozen node is almost surely between two steps,
    # so when continued its handler goes straight on to the next step's function
    make = _work(steps=4, sleep=0.0, gap=0.5, job=SPREAD)
    async with Stage("sigstop", config) as stage:
        load = _load(stage, Scale(scale.runs // rounds, 0.2, 0), make)

        async def rounds_of_stops() -> None:
            for r in range(rounds):
                load.run_prefix = f"sigstop{r}"
                load.total = scale.runs // rounds
                await load.run()
                await asyncio.sleep(1.0)  # the nodes are inside the runs now
                victim = await stage.busiest_worker(at_least=1, wait_s=10.0)
                f = stage.fault("SIGSTOP node past its lease TTL", victim.node_id)
                victim.signal(signal.SIGSTOP)
                # past the TTL, the reaping, and the other node's replay of the 4 steps (gaps of 0.5 s)
                await asyncio.sleep(3 * config.lease_ttl_ms / 1000 + 2.5)
                victim.signal(signal.SIGCONT)
                stage.clear(f)
                await asyncio.sleep(3.0)  # its late writes, if any, land now

        await stage.guarded("stops", rounds_of_stops())
        return await stage.finish(_params(scale, config, f"{rounds} stop(s) of 3x TTL + 2.5 s"), scale.quiesce_s)


async def rolling_restart(short: bool) -> Result:
    """Rolling updates during load, as Kubernetes rolls a Deployment: each node in turn gets SIGTERM and
    must exit 0 within its grace; its next incarnation beats before the next node stops. Every 10th run
    outlasts the grace: it is given back and finished elsewhere, its completed steps not run again."""
    scale = _pick(short, Scale(3000, 45, 60), Scale(300, 14, 30))
    config = StageConfig(workers=3, concurrency=20, partitions=3)
    quick, slow = _work(job=SPREAD), _work(steps=3, sleep=1.5, job=SPREAD)

    def make(i: int) -> Entry:
        return slow(i) if i % 10 == 0 else quick(i)

    async with Stage("rolling_restart", config) as stage:
        load = _load(stage, scale, make)

        async def rollouts() -> None:
            loop = asyncio.get_running_loop()
            end = loop.time() + scale.load_s
            rounds = 0
            for w in stage.workers:
                await stage.wait_beating(w)
            while rounds == 0 or loop.time() < end:
                await asyncio.sleep(1.0)  # runs under way on every node
                for w in stage.workers:
                    await stage.restart_gracefully(w)
                rounds += 1
            stage.verdict.notes["rolling updates"] = rounds

        await stage.guarded("load and rolling updates", asyncio.gather(load.run(), rollouts()))
        return await stage.finish(_params(scale, config, "each node in turn stopped with SIGTERM (grace "
                                          f"{config.shutdown_grace_s:g} s), every 10th run longer than it"),
                                  scale.quiesce_s)


async def redis_restart(short: bool) -> Result:
    """kill -9 redis-server (appendonly yes, appendfsync always) during load; restart it 2 s later."""
    scale = _pick(short, Scale(3000, 40, 60), Scale(300, 10, 15))
    kills = 1 if short else 3
    # three partitions: every partition's intake, promotion and reaping must come back
    config = StageConfig(workers=3, concurrency=20, durable_redis=True, partitions=3)
    rng = random.Random(7)

    def make(i: int) -> Entry:
        # some runs are delayed and some fail once in a while: promotion must keep working
        e = _work(fail=0.05, job=SPREAD)(i)
        if rng.random() < 0.1:
            e["delay_ms"] = "300"
        return e

    async with Stage("redis_restart", config) as stage:
        load = _load(stage, scale, make)

        async def restarts() -> None:
            for _ in range(kills):
                await asyncio.sleep(scale.load_s / (kills + 1))
                f = stage.fault("kill -9 redis-server, restart 2 s later")
                await asyncio.to_thread(stage.redis_server.kill)
                await asyncio.sleep(2.0)
                await asyncio.to_thread(stage.redis_server.start)
                stage.clear(f)

        await stage.guarded("load and restarts", asyncio.gather(load.run(give_up_after_s=30), restarts()))
        # a few runs submitted after the last restart, delayed: they need a node that still promotes
        tail = Load(stage.client, load.stream, "redis_restart-after", 20, 1.0,
                    lambda i: {**_work(job=SPREAD)(i), "delay_ms": "500"})
        await stage.guarded("load after the restarts", tail.run())
        load.acked.update(tail.acked)
        return await stage.finish(_params(scale, config, f"{kills} Redis kill(s), down 2 s; 10% delayed runs"),
                                  scale.quiesce_s)


async def redis_oom(short: bool) -> Result:
    """Redis out of memory (maxmemory 1 byte, noeviction) during load for 3x the lease TTL; then room again."""
    scale = _pick(short, Scale(2000, 30, 60), Scale(300, 10, 20))
    episodes = 1 if short else 2
    config = StageConfig(workers=3, concurrency=20)
    async with Stage("redis_oom", config) as stage:
        load = _load(stage, scale, _work(fail=0.02))
        full_s = 3 * config.lease_ttl_ms / 1000  # past the leases: renewals, claims and outcomes are all refused

        async def out_of_memory() -> None:
            for _ in range(episodes):
                await asyncio.sleep(scale.load_s / (episodes + 1))
                f = stage.fault(f"Redis out of memory for {full_s:g} s (maxmemory 1 byte, noeviction)")
                await stage.client.config_set("maxmemory", 1)
                await asyncio.sleep(full_s)
                await stage.client.config_set("maxmemory", 0)
                stage.clear(f)

        await stage.guarded("load and out-of-memory spells", asyncio.gather(load.run(give_up_after_s=30),
                                                                            out_of_memory()))
        return await stage.finish(_params(scale, config, f"{episodes} spell(s) of {full_s:g} s out of memory"),
                                  scale.quiesce_s)


async def redis_stall(short: bool) -> Result:
    """Redis answers nothing for 3x the lease TTL during load, twice: every client paused (CLIENT PAUSE,
    as a failover pauses them), then the server itself blocked (DEBUG SLEEP, as a slow command or a
    fork of a large dataset blocks it); then the server blocked past the TTL three times, 0.3 s apart
    (a flapping server: each outage begins before the nodes got through after the last). No node
    dies, so no attempt may be charged as crashed."""
    scale = _pick(short, Scale(2000, 30, 60), Scale(300, 12, 20))
    config = StageConfig(workers=3, concurrency=20, server_args=("--enable-debug-command", "local"))
    async with Stage("redis_stall", config) as stage:
        # steps long enough that runs are inside steps and between them when it stalls, short enough that
        # the pool (24) drains the load with room to catch up after each stall (~100 runs/s against 67)
        load = _load(stage, scale, _work(steps=3, sleep=0.05, gap=0.03, fail=0.02))
        stall_s = 3 * config.lease_ttl_ms / 1000  # past the leases, by the server's own clock
        flap_s = 1.25 * config.lease_ttl_ms / 1000  # past a lease: each is a gap of its own
        flaps = 3

        async def stalls() -> None:
            await asyncio.sleep(scale.load_s / 4)
            f = stage.fault(f"every client paused for {stall_s:g} s (CLIENT PAUSE ALL)")
            await stage.client.execute_command("CLIENT", "PAUSE", int(stall_s * 1000), "ALL")
            await asyncio.sleep(stall_s)
            stage.clear(f)
            await asyncio.sleep(scale.load_s / 4)
            f = stage.fault(f"server blocked for {stall_s:g} s (DEBUG SLEEP)")
            await asyncio.to_thread(stage.block_server, stall_s)
            stage.clear(f)
            await asyncio.sleep(scale.load_s / 4)
            f = stage.fault(f"server blocked for {flap_s:g} s {flaps} times, 0.3 s apart (DEBUG SLEEP)")
            for i in range(flaps):
                if i:
                    await asyncio.sleep(0.3)
                await asyncio.to_thread(stage.block_server, flap_s)
            stage.clear(f)

        await stage.guarded("load and stalls", asyncio.gather(load.run(give_up_after_s=30), stalls()))
        result = await stage.finish(_params(scale, config, f"a {stall_s:g} s client pause, a {stall_s:g} s "
                                                           f"server block, {flaps} {flap_s:g} s blocks 0.3 s apart"),
                                    scale.quiesce_s)
        # every node lived through it: an attempt reaped as crashed was charged for Redis's outage
        crashed = result.verdict.attempt_outcomes["crashed"]
        if crashed:
            result.verdict.add("attempts charged for Redis's outage", f"{crashed} attempt(s) reaped as crashed")
        return result


async def sentinel_failover(short: bool) -> Result:
    """kill -9 the Redis master (a replica, three sentinels, durable writes) during load; the replica takes over."""
    # (the old master then comes back as the new master's replica: durable writes need one)
    scale = _pick(short, Scale(2000, 30, 60), Scale(300, 10, 30))
    config = StageConfig(workers=3, concurrency=20, sentinel=True)
    async with Stage("sentinel_failover", config) as stage:
        load = _load(stage, scale, _work(fail=0.02))
        sentinels = stage.sentinels
        assert sentinels is not None

        async def failover() -> None:
            await asyncio.sleep(scale.load_s / 2)
            f = stage.fault("kill -9 the master; Sentinel promotes the replica")
            old = await asyncio.to_thread(sentinels.master)
            await asyncio.to_thread(old.kill)
            await asyncio.to_thread(sentinels.wait_failover, old.port)
            # only now, and as the new master's replica: an empty server back on the master's port
            # as a master could be promoted again by a later failover and wipe its replica
            await asyncio.to_thread(sentinels.rejoin, old)
            await asyncio.to_thread(sentinels.wait_replicated, old)
            stage.clear(f)

        await stage.guarded("load and failover", asyncio.gather(load.run(give_up_after_s=30), failover()))
        result = await stage.finish(_params(scale, config, "1 master kill -9, Sentinel failover, durable writes"),
                                    scale.quiesce_s)
        # a second failover is no violation by itself (durable writes keep it lossless), but say so
        result.verdict.notes["Sentinel failovers"] = sentinels.failovers()
        return result


async def cluster_failover(short: bool) -> Result:
    """kill -9 a Redis Cluster master (three masters, each with a replica; durable writes) during load:
    the master of the submission stream, the node-wide keys and partition 0; its replica takes over."""
    # (the killed node then comes back, and rejoins as the promoted one's replica: durable writes
    # to its slots need one)
    scale = _pick(short, Scale(2000, 30, 60), Scale(300, 10, 30))
    config = StageConfig(workers=3, concurrency=20, cluster=True, partitions=3)
    async with Stage("cluster_failover", config) as stage:
        load = _load(stage, scale, _work(fail=0.02, job=SPREAD))
        cluster, app = stage.cluster, stage.app
        assert cluster is not None and app is not None
        stream = app.keys.submit_stream

        async def failover() -> None:
            await asyncio.sleep(scale.load_s / 2)
            f = stage.fault("kill -9 the master of the stream and partition 0; its replica takes over")
            old = await asyncio.to_thread(cluster.master_of, stream)
            await asyncio.to_thread(old.kill)
            await asyncio.to_thread(cluster.wait_failover, stream, old)
            await asyncio.to_thread(old.start)
            await asyncio.to_thread(cluster.wait_replicated, old)
            stage.clear(f)

        await stage.guarded("load and failover", asyncio.gather(load.run(give_up_after_s=30), failover()))
        return await stage.finish(_params(scale, config, "1 master kill -9, Cluster failover, durable writes"),
                                  scale.quiesce_s)


async def network(short: bool) -> Result:
    """Network faults between the nodes and Redis, through the harness's TCP proxy."""
    scale = _pick(short, Scale(3000, 50, 60), Scale(300, 12, 25))
    config = StageConfig(workers=3, concurrency=20, proxy=True, partitions=3)
    hold_s = 2.0 * config.lease_ttl_ms / 1000  # faults that last longer than a lease
    async with Stage("network", config) as stage:
        load = _load(stage, scale, _work(fail=0.02, job=SPREAD))
        proxy = stage.proxy
        assert proxy is not None

        async def drop() -> None:
            f = stage.fault("drop all connections")
            proxy.drop()
            stage.clear(f)

        async def hold(kind: str, start: Callable[[], object]) -> None:
            f = stage.fault(kind)
            start()
            await asyncio.sleep(hold_s)
            proxy.heal()
            stage.clear(f)

        steps: list[Callable[[], Awaitable[None]]] = [drop]
        if not short:
            steps += [
                lambda: hold("latency 200 ms each way", lambda: proxy.latency(0.2)),
                lambda: hold(f"black hole {hold_s:g}s (nothing closed)", proxy.blackhole),
                drop,
                # last, and nothing closes the dead connections afterwards: the nodes must notice by themselves
                lambda: hold("half-open (Redis side closed, node side silent, never closed)", proxy.half_open),
            ]

        async def faults() -> None:
            for fault in steps:
                await asyncio.sleep(scale.load_s / (len(steps) + 1))
                await fault()

        await stage.guarded("load and network faults", asyncio.gather(load.run(), faults()))
        names = "drop" if short else "drop, latency, black hole, drop, half-open"
        return await stage.finish(_params(scale, config, names), scale.quiesce_s)


async def partition_one(short: bool) -> Result:
    """One node cut off from Redis while the others are not (its own TCP proxy): a black hole past the
    lease TTL, then its connections dropped. The others take over its runs while it still runs them."""
    scale = _pick(short, Scale(1500, 40, 60), Scale(240, 14, 30))
    config = StageConfig(workers=3, concurrency=20, proxy=True, proxied_slots=frozenset({0}), partitions=3)
    hold_s = 3.0 * config.lease_ttl_ms / 1000
    # runs of ~1 s in steps, so that the cut-off node is inside many of them when its Redis goes quiet
    # (and the two other nodes alone still keep up with the load)
    make = _work(steps=4, sleep=0.15, gap=0.1, job=SPREAD)
    async with Stage("partition_one", config) as stage:
        load = _load(stage, scale, make)
        proxy = stage.proxy
        assert proxy is not None
        cut_off = stage.workers[0]

        async def faults() -> None:
            await stage.wait_beating(cut_off)
            await asyncio.sleep(scale.load_s / 3)
            f = stage.fault(f"black hole of one node's Redis for {hold_s:g}s", cut_off.node_id)
            proxy.blackhole()
            await asyncio.sleep(hold_s)
            proxy.heal()
            stage.clear(f)
            await asyncio.sleep(scale.load_s / 3)
            f = stage.fault("one node's connections dropped", cut_off.node_id)
            proxy.drop()
            stage.clear(f)

        await stage.guarded("load and one node's network faults", asyncio.gather(load.run(), faults()))
        return await stage.finish(_params(scale, config, f"node w0 alone behind a proxy: black hole {hold_s:g}s, "
                                          "then a drop"), scale.quiesce_s)


#: each poison job and its input
#: (the loop comes last: the nodes that os._exit or a blocked loop take down are back by then,
#: so at most one of its attempts can crash and it is still running when the scenario checks)
POISON: dict[str, dict[str, float]] = {
    "poison_exit": {}, "poison_block": {"seconds": 5.0}, "poison_huge": {"bytes": 8 << 20}, "poison_nonjson": {},
    "poison_recursion": {}, "poison_loop": {},
}


async def poison(short: bool) -> Result:
    """Handlers that kill, hang, block, flood or break; ordinary runs around them must still complete."""
    # the loop's two attempts take 2 s (timeout) + 5 s (the executor's cancel grace) each
    scale = _pick(short, Scale(600, 20, 45), Scale(150, 8, 30))
    config = StageConfig(workers=3, concurrency=10, expected_exit_codes=frozenset({3}))
    copies = 1 if short else 2
    bad = [(job, payload) for job, payload in POISON.items() for _ in range(copies)]
    every = max(1, scale.runs // (len(bad) + 1))

    def make(i: int) -> Entry:
        k = i // every - 1
        if i % every == 0 and 0 <= k < len(bad):
            return entry(*bad[k])
        return _work()(i)

    async with Stage("poison", config) as stage:
        _load(stage, scale, make)
        assert stage.load is not None
        await stage.guarded("load", stage.load.run())
        result = await stage.finish(_params(scale, config, f"{len(bad)} poison runs among them"), scale.quiesce_s)
        try:
            await _describe_poison(result, stage)
        except Exception as exc:  # noqa: BLE001 - reported as a violation
            result.verdict.add("scenario could not finish", f"reading the poison runs: {exc!r}")
        return result


async def _describe_poison(result: Result, stage: Stage) -> None:
    """Note how each poison run ended: status, attempts, size of what was stored."""
    assert stage.load is not None and stage.app is not None
    outcomes = result.verdict.notes.setdefault("poison runs", [])
    for run_id, job in sorted(stage.load.acked.items()):
        if not job.startswith("poison_"):
            continue
        run = await stage.app.get_run(run_id)
        if run is None:
            outcomes.append(f"{job} {run_id}: missing")
            continue
        attempts = ", ".join(a.status for a in run.attempts)
        stored = len(run.raw.get("output", ""))
        if stored >= int(POISON["poison_huge"]["bytes"]):
            result.verdict.add("oversized output stored whole", f"{run_id}: {stored} bytes")
        error = (run.error or {}).get("type", "")
        outcomes.append(f"{job} {run_id}: {run.status} (attempts: {attempts or 'none'}; "
                        f"output {stored} bytes stored{'; error ' + error if error else ''})")


async def clock_skew(short: bool) -> Result:
    """One node's wall clock an hour behind (libfaketime); nodes are killed, leases must still expire on time."""
    scale = _pick(short, Scale(2000, 30, 60), Scale(200, 8, 25))
    skewed = 2
    skew_env = skewed_clock_env("-1h")
    config = StageConfig(workers=3, concurrency=20, partitions=3,
                         slot_env={skewed: skew_env} if skew_env else {})
    async with Stage("clock_skew", config) as stage:
        if not skew_env:
            stage.verdict.add("scenario could not run", "libfaketime is not installed (Debian package faketime)")
        load = _load(stage, scale, _work(fail=0.02, job=SPREAD))

        async def kills() -> None:
            await asyncio.sleep(scale.load_s * 0.4)
            stage.kill_worker(stage.workers[skewed])
            await asyncio.sleep(scale.load_s * 0.3)
            stage.kill_worker(stage.workers[0])

        await stage.guarded("load and kills", asyncio.gather(load.run(), kills()))
        await stage.guarded("reading the node registry", stage.check_heartbeats())
        offset = stage.workers[skewed].wall_clock_offset_s()
        if skew_env and (offset is None or abs(offset + 3600) > 120):
            # without this the scenario would pass with the skew silently not applied
            stage.verdict.add("clock skew not applied", f"w{skewed}'s log is {offset} s off the harness's clock")
        return await stage.finish(_params(scale, config, "node w2 at -1h (libfaketime), it and w0 killed once"),
                                  scale.quiesce_s)


#: stream entries that once stopped every node in turn (issue 12, D1), with the field that is bad
BAD_ENTRIES: list[dict[bytes, bytes]] = [
    {b"\xff\xfe": b"x", b"job": b"work", b"input": b"{}"},  # a field name that is not UTF-8
    {b"job": b"work", b"input": b"{}", b"delay": b"1e308"},
    {b"job": b"work", b"input": b"{}", b"max_attempts": b"1" * 23},
    {b"job": b"work", b"input": b"{}", b"idempotency_key": b"k", b"idempotency_ttl": b"0.0001"},
    {b"job": b"work", b"input": b"{not json"},
]


async def bad_entries(short: bool) -> Result:
    """Malformed stream entries among valid ones: each is rejected with a reason, everything else flows."""
    scale = _pick(short, Scale(1000, 15, 45), Scale(100, 4, 15))
    # three partitions: a bad entry of the node-wide stream must not stop the intake of any of them
    config = StageConfig(workers=3, concurrency=20, partitions=3)
    async with Stage("bad_entries", config) as stage:
        load = _load(stage, scale, _work(job=SPREAD))

        async def bad() -> None:
            for e in BAD_ENTRIES:
                await asyncio.sleep(scale.load_s / (len(BAD_ENTRIES) + 1))
                stage.fault("malformed stream entry", cleared=True)
                await stage.client.xadd(load.stream, e)
                stage.bad_entries += 1

        await stage.guarded("load and bad entries", asyncio.gather(load.run(), bad()))
        return await stage.finish(_params(scale, config, f"{len(BAD_ENTRIES)} malformed entries among them"),
                                  scale.quiesce_s)


#: every scenario, in the order the full run plays them
SCENARIOS: dict[str, Callable[[bool], Coroutine[Any, Any, Result]]] = {
    "kill9": kill9, "sigstop": sigstop, "rolling_restart": rolling_restart, "redis_restart": redis_restart,
    "redis_oom": redis_oom, "redis_stall": redis_stall,
    "sentinel_failover": sentinel_failover, "cluster_failover": cluster_failover, "network": network,
    "partition_one": partition_one,
    "poison": poison,
    "clock_skew": clock_skew, "bad_entries": bad_entries,
}
