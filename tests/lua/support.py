"""Helpers for the Lua script tests: one bundle of client, keys and wrappers per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from runtime.jobs import JobOptions
from runtime.keys import LEASED_RANGE, Keys, Partition
from runtime.queues import READY_FIELDS, ready_since
from runtime.scripts import Claimed, Outcome, Scripts
from runtime.settings import Settings
from runtime.submission import RunSpec, build_spec

T = TypeVar("T")

#: Multiplier of the priority part of a ready-set score (see common.lua ready_score).
PRIORITY_STEP = 4398046511104


def ready_score(priority: int, seq: int) -> int:
    """The score runs_create / make_ready give a run in its ready set (seq = ready order)."""
    return (1000 - priority) * PRIORITY_STEP + seq


def priority_of(score: float | None) -> int:
    """The priority encoded in a ready-set score."""
    assert score is not None
    return 1000 - int(score // PRIORITY_STEP)


def lease_of(run: dict[str, str]) -> str | None:
    """The token of the lease a run record names (not stored: its lease_node and attempt give it,
    includes/common.lua held_lease), or None when it names none."""
    return f"{run['lease_node']}/{run['attempt']}" if "lease_node" in run else None


def text(value: Any) -> str:
    """Decode a bytes reply."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def wait_until(check: Callable[[], Awaitable[T]], timeout: float = 5.0, interval: float = 0.01) -> T:
    """Poll an async check until it returns something truthy, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


@dataclass
class Lua:
    """A test's view of one partition: raw client, key names and the typed script wrappers."""

    redis: Any
    settings: Settings
    keys: Keys
    scripts: Scripts
    jobs: dict[str, JobOptions] = field(default_factory=dict)

    @property
    def part(self) -> Partition:
        """The (only) partition."""
        return self.keys.partitions[0]

    def spec(self, job: str = "work", **options: Any) -> RunSpec:
        """A validated RunSpec; jobs not in ``self.jobs`` get default options."""
        return build_spec(self.settings, self.keys, lambda name: self.jobs.get(name) or JobOptions(),
                          job=job, **options)

    async def create(self, *specs: RunSpec) -> list[tuple[str, int]]:
        """runs_create on the partition."""
        return await self.scripts.create(self.part, [s.script_args() for s in specs])

    async def create_one(self, job: str = "work", **options: Any) -> str:
        """Create one run that must be new; returns its id."""
        [(run_id, code)] = await self.create(self.spec(job, **options))
        assert code == 1
        return run_id

    async def claim(
        self, want: int = 10, node: str = "node-a", queues: Sequence[str] = ("default",),
        jobs: Sequence[str] = ("work",), offset: int = 0,
    ) -> list[Claimed]:
        """runs_claim for one node."""
        claimed, _retry_in = await self.scripts.claim(self.part, node, want, list(queues), list(jobs), offset)
        return claimed

    async def claim_one(self, run_id: str, node: str = "node-a", job: str = "work", queue: str = "default") -> Claimed:
        """Claim and check that exactly the given run was leased."""
        [claimed] = await self.claim(1, node, [queue], [job])
        assert claimed.run_id == run_id
        return claimed

    async def finish(self, claimed: Claimed, outcome: str, **fields: Any) -> str | int:
        """runs_finish for one attempt; returns its new status (or -1)."""
        [(run_id, status)] = await self.scripts.finish(
            self.part, [Outcome(claimed.run_id, claimed.token, outcome, **fields)]
        )
        assert run_id == claimed.run_id
        return status

    async def ready_since(self, run_id: str) -> int:
        """Epoch ms since which a queued run is ready (its ready_at, or created_at when it left that out)."""
        at = ready_since(await self.redis.hmget(self.part.run(run_id), *READY_FIELDS))
        assert at is not None, f"run {run_id} has no record"
        return at

    async def run(self, run_id: str) -> dict[str, str]:
        """The run record as a str -> str dict ({} when missing), with its input (kept in
        its own key so the record stays listpack-encoded) under "input"."""
        raw = await self.redis.hgetall(self.part.run(run_id))
        record = {text(k): text(v) for k, v in raw.items()}
        if record:
            assert "input" not in record, "the input must not be in the record"
            stored = await self.redis.get(self.part.input(run_id))
            if stored is not None:
                record["input"] = text(stored)
        return record

    async def zscore(self, key: str, member: str) -> int | None:
        """A sorted-set score as an int (None when absent)."""
        score = await self.redis.zscore(key, member)
        return None if score is None else int(score)

    async def members(self, key: str) -> set[str]:
        """Members of a SET."""
        return {text(m) for m in await self.redis.smembers(key)}

    async def leases(self) -> list[str]:
        """The ids in the partition's leased set, by expiry (its anchor left out)."""
        return [text(m) for m in await self.redis.zrangebyscore(self.part.leased, *LEASED_RANGE)]

    async def zmembers(self, key: str) -> list[str]:
        """Members of a ZSET in score order."""
        return [text(m) for m in await self.redis.zrange(key, 0, -1)]

    async def listed(self, project: str = "default") -> list[str]:
        """The run ids in a project's index (a stream), oldest entry first."""
        return [text(f[b"r"]) for _, f in await self.redis.xrange(self.part.project_index(project))]

    async def now_ms(self) -> int:
        """The Redis server clock (the one the scripts use)."""
        sec, usec = await self.redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    async def next_ms(self, after_ms: int) -> int:
        """Wait until the server clock has passed ``after_ms``."""
        async def later() -> int:
            now = await self.now_ms()
            return now if now > after_ms else 0

        return await wait_until(later, timeout=2.0, interval=0.001)

    async def expire_lease(self, run_id: str) -> None:
        """Force a lease into the past (deterministic stand-in for waiting out the TTL)."""
        await self.redis.zadd(self.part.leased, {run_id: 1}, xx=True)


class Listener:
    """Subscribes to one channel; ``messages()`` returns what was published since the last call.

    Absence of a message is checked deterministically: a sentinel is published
    after the script call, and everything received before it is returned.
    """

    def __init__(self, redis: Any, channel: str) -> None:
        self.redis = redis
        self.channel = channel
        self.pubsub = redis.pubsub()

    async def __aenter__(self) -> Listener:
        await self.pubsub.subscribe(self.channel)
        confirmation = await self.pubsub.get_message(timeout=5.0)
        assert confirmation is not None and confirmation["type"] == "subscribe"
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.pubsub.unsubscribe(self.channel)
        await self.pubsub.aclose()

    async def messages(self, timeout: float = 5.0) -> list[str]:
        """Payloads published before a fresh sentinel, in order."""
        sentinel = f"sentinel-{uuid.uuid4().hex}"
        await self.redis.publish(self.channel, sentinel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out: list[str] = []
        while True:
            msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is not None:
                data = text(msg["data"])
                if data == sentinel:
                    return out
                out.append(data)
            elif loop.time() > deadline:
                raise AssertionError(f"sentinel not received on {self.channel} within {timeout}s")
