"""Intake: reads the submission stream with a consumer group and creates runs.

Each entry is validated; valid ones become runs through runs_create (one Lua
call per partition per batch, idempotent on the run id, which defaults to the
entry id), invalid ones go to the rejected stream with their reason. Only then
is the batch acknowledged, so a crash in between re-delivers entries and the
id check makes that harmless. Entries left pending by dead consumers are
claimed with XAUTOCLAIM.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from redis.exceptions import ResponseError

from runtime.app import Baton
from runtime.errors import SubmissionError
from runtime.metrics import Metrics
from runtime.submission import RunSpec, parse_stream_entry, parse_stream_event

from .base import Actor

__all__ = ["Intake", "ensure_group"]

BLOCK_MS = 1000
TRIM_INTERVAL_S = 10.0


async def ensure_group(app: Baton) -> None:
    """Create the intake consumer group (and the stream) if missing."""
    try:
        await app.redis.xgroup_create(app.keys.submit_stream, app.keys.intake_group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Intake(Actor[None]):
    """Turns submission stream entries into runs."""

    name = "intake"

    def __init__(self, app: Baton, metrics: Metrics) -> None:
        super().__init__()
        self.app = app
        self.metrics = metrics
        self.settings = app.settings
        self.consumer = app.settings.node_id
        self.next_autoclaim = 0.0
        self.next_trim = time.monotonic() + TRIM_INTERVAL_S
        self.last_registry_refresh = 0.0

    async def run(self) -> None:
        """Read, validate, create, acknowledge; until stopped."""
        await ensure_group(self.app)
        # entries this consumer read before a restart but did not acknowledge
        await self.process(await self._read("0"))
        prefetch: asyncio.Future[list[tuple[str, dict[bytes, bytes]]]] | None = None
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if now >= self.next_autoclaim:
                    self.next_autoclaim = now + self.settings.intake_claim_idle_ms / 2000
                    await self.process(await self._autoclaim())
                if now >= self.next_trim:
                    self.next_trim = now + TRIM_INTERVAL_S
                    await self.trim()
                entries = await (prefetch or self._read(">"))
                # while busy, read the next batch as this one is created: the read
                # overlaps the work (entries read but unprocessed stay pending for
                # this consumer, so a crash here loses nothing)
                prefetch = asyncio.ensure_future(self._read(">")) if entries else None
                await self.process(entries)
        finally:
            if prefetch is not None:
                prefetch.cancel()

    async def _read(self, start: str) -> list[tuple[str, dict[bytes, bytes]]]:
        keys = self.app.keys
        reply = await self.app.redis.xreadgroup(
            keys.intake_group, self.consumer, {keys.submit_stream: start}, count=self.settings.intake_batch,
            block=BLOCK_MS if start == ">" else None,
        )
        entries: list[tuple[str, dict[bytes, bytes]]] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                entries.append((entry_id.decode() if isinstance(entry_id, bytes) else entry_id, fields or {}))
        return entries

    async def _autoclaim(self) -> list[tuple[str, dict[bytes, bytes]]]:
        keys = self.app.keys
        reply = await self.app.redis.xautoclaim(
            keys.submit_stream, keys.intake_group, self.consumer, self.settings.intake_claim_idle_ms,
            start_id="0-0", count=self.settings.intake_batch,
        )
        items = reply[1] if reply else []
        out = []
        for entry_id, fields in items:
            eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            out.append((eid, fields or {}))
        return out

    async def process(self, entries: list[tuple[str, dict[bytes, bytes]]]) -> None:
        """Validate a batch, create its runs, record rejections, then acknowledge it."""
        if not entries:
            return
        self.metrics.intake_read.inc(len(entries))
        specs: list[RunSpec] = []
        events: list[tuple[str, str]] = []
        rejected: list[tuple[str, dict[bytes, bytes], SubmissionError]] = []
        for entry_id, fields in entries:
            try:
                if b"event" in fields and b"job" not in fields:
                    events.append(parse_stream_event(fields, self.settings))
                else:
                    specs.append(await self._parse(entry_id, fields))
            except SubmissionError as error:
                rejected.append((entry_id, fields, error))
        if specs:
            await self.app.create(specs)
        for key, data in events:
            # at-least-once like everything from the stream: a re-delivered event
            # finds its waiters already woken and only refreshes the stored copy
            await self.app.scripts.send_event(key, data, self.settings.event_ttl_s * 1000)
        keys = self.app.keys
        pipe = self.app.redis.pipeline(transaction=False)
        for entry_id, fields, exc in rejected:
            self.metrics.intake_rejected.labels(reason=exc.reason).inc()
            self.log.warning("rejected stream entry %s: %s (%s)", entry_id, exc, exc.reason)
            pipe.xadd(
                keys.rejected_stream,
                {"entry_id": entry_id, "reason": exc.reason, "error": str(exc), "fields": _dump_fields(fields)},
                maxlen=self.settings.rejected_max_len, approximate=True,
            )
        pipe.xack(keys.submit_stream, keys.intake_group, *[e[0] for e in entries])
        await pipe.execute()

    async def _parse(self, entry_id: str, fields: dict[bytes, bytes]) -> RunSpec:
        job = fields.get(b"job")
        if job is not None and self.app.lookup(job.decode(errors="replace")) is None:
            # a job registered by another deployment since we last looked; bounded refresh rate
            now = time.monotonic()
            if now - self.last_registry_refresh > 1.0:
                self.last_registry_refresh = now
                await self.app.refresh_registry()
        return parse_stream_entry(entry_id, fields, self.settings, self.app.keys, self.app.lookup, self.app.plain_specs)

    async def trim(self) -> None:
        """Drop stream entries every consumer has read and acknowledged."""
        keys = self.app.keys
        redis = self.app.redis
        groups = await redis.xinfo_groups(keys.submit_stream)
        floor = None
        for g in groups:
            if (g.get("name") or g.get(b"name")) in (keys.intake_group, keys.intake_group.encode()):
                floor = g.get("last-delivered-id") or g.get(b"last-delivered-id")
        if floor is None:
            return
        floor = floor.decode() if isinstance(floor, bytes) else floor
        pending = await redis.xpending(keys.submit_stream, keys.intake_group)
        low = pending.get("min") if isinstance(pending, dict) else None
        if low:
            floor = low.decode() if isinstance(low, bytes) else low
        await redis.xtrim(keys.submit_stream, minid=floor, approximate=True)


def _dump_fields(fields: dict[Any, Any]) -> str:
    out = {}
    for k, v in fields.items():
        key = k.decode(errors="replace") if isinstance(k, bytes) else str(k)
        out[key] = v.decode(errors="replace") if isinstance(v, bytes) else str(v)
    return orjson.dumps(out).decode()
