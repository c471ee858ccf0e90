"""The outbox: how a finished run's outcome reaches completion hooks and webhooks, exactly once.

The Lua script that records a terminal status (``make_terminal`` in includes/common.lua, used by
runs_finish, the lease reaper, cancel, expiry) appends ``{id, status}`` to the partition's outbox stream
in the same atomic call, for runs marked ``notify`` at creation (runtime/hooks.py). Nothing can record an
outcome without its entry, and unmarked runs cost nothing more.

Every node's notifier (actors/notifier.py) reads the outboxes with one consumer group: an entry goes to
one node, which creates the hook runs (deterministic ids: creating twice makes one) and the webhook
deliveries (deterministic ids, written only where missing), then acknowledges it. A node that dies
before acknowledging leaves the entry pending; after ``notify_claim_idle_ms`` another node takes it
over (XAUTOCLAIM) and does the same work again, which changes nothing already done. So each qualifying
outcome makes exactly one hook run and one delivery per matching webhook, never zero.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from redis.exceptions import ResponseError

from .app import Baton
from .codec import text
from .connection import server_ms
from .deliveries import enqueue
from .errors import SubmissionError
from .hooks import hook_input, hook_run_id, hooks_for
from .json_values import encode
from .keys import Partition
from .limits import json_size
from .partition_outages import PartialRead, read_partitions
from .redis_faults import is_outage, make_group
from .submission import RunSpec, build_spec
from .webhooks import Webhook, list_webhooks

__all__ = ["Entry", "acknowledge", "ensure_group", "outbox_lag", "process", "read_entries"]

log = logging.getLogger("baton.notify")

#: one outbox entry: (stream entry id, run id, terminal status)
Entry = tuple[str, str, str]


async def ensure_group(app: Baton, partition: Partition) -> None:
    """Create the notifiers' consumer group on a partition's outbox (from its start) if missing."""
    await make_group(app.redis, partition.outbox, app.keys.outbox_group)


def _entries(raw: Sequence[Any]) -> list[Entry]:
    out: list[Entry] = []
    for entry_id, fields in raw:
        if not fields:  # deleted while pending
            continue
        f = {text(k): text(v) for k, v in fields.items()}
        out.append((text(entry_id), f.get("id", ""), f.get("status", "")))
    return out


async def read_entries(app: Baton, partition: Partition, consumer: str, count: int,
                       claim_idle_ms: int | None) -> tuple[list[Entry], list[str]]:
    """Entries left pending by a dead consumer (idle over ``claim_idle_ms``; None: do not look), then new
    ones; and the ids of pending entries whose stream entry is gone (to acknowledge)."""
    redis, group = app.redis, app.keys.outbox_group
    entries: list[Entry] = []
    gone: list[str] = []
    if claim_idle_ms is not None:
        claimed = await redis.xautoclaim(partition.outbox, group, consumer, claim_idle_ms, "0-0", count=count)
        entries = _entries(claimed[1])
        gone = [text(i) for i in claimed[2]] if len(claimed) > 2 else []
    if len(entries) < count:
        fresh = await redis.xreadgroup(group, consumer, {partition.outbox: ">"}, count=count - len(entries))
        for _stream, raw in fresh or []:
            entries.extend(_entries(raw))
    return entries, gone


async def acknowledge(app: Baton, partition: Partition, entry_ids: Sequence[str]) -> None:
    """Acknowledge processed entries and drop them from the stream (their work is recorded elsewhere)."""
    if entry_ids:
        pipe = app.redis.pipeline(transaction=False)
        pipe.xack(partition.outbox, app.keys.outbox_group, *entry_ids)
        pipe.xdel(partition.outbox, *entry_ids)
        await pipe.execute()


def _json(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


async def process(app: Baton, partition: Partition, entries: Sequence[Entry]) -> dict[str, int]:
    """Create the hook runs and webhook deliveries of finished runs; returns counts (hooks, deliveries).

    Safe to call again for the same entries (see the module docstring). Raises on a Redis error, leaving
    the entries unacknowledged for a retry.
    """
    counts = {"hooks": 0, "deliveries": 0}
    webhooks: list[Webhook] | None = None
    now = await server_ms(app.redis)
    for _entry_id, run_id, status in entries:
        raw = await app.redis.hgetall(partition.run(run_id))
        rec = {text(k): text(v) for k, v in raw.items()}
        if not rec:
            log.warning("run %s finished %s but its record is gone: nothing to notify", run_id, status)
            continue
        job, project = rec.get("job", ""), rec.get("project") or "default"
        attempt = int(rec.get("attempt") or 0)
        output, error = _json(rec.get("output")), _json(rec.get("error"))
        if not rec.get("hook_of"):  # hook runs fire no hooks of their own
            counts["hooks"] += await _start_hooks(app, run_id, job, project, status, attempt, output, error)
        if webhooks is None:
            webhooks = await list_webhooks(app.redis, app.keys)
        summary = {"id": run_id, "job": job, "queue": rec.get("queue"), "status": status, "project": project,
                   "attempt": attempt, "output": output if status == "completed" else None,
                   "error": error if status != "completed" else None,
                   "created_at": int(rec.get("created_at") or 0), "finished_at": int(rec.get("finished_at") or now),
                   "hook_of": rec.get("hook_of")}
        for hook in webhooks:
            if hook.project == project and hook.wants(status):
                await enqueue(app.redis, app.keys, hook, summary, now)
                counts["deliveries"] += 1
    return counts


async def _start_hooks(app: Baton, run_id: str, job: str, project: str, status: str, attempt: int,
                       output: Any, error: Any) -> int:
    options = app.lookup(job)
    if options is None:
        await app.refresh_registry()
        options = app.lookup(job)
    started = 0
    for kind, target in hooks_for(options, status):
        payload = hook_input(run_id, job, status, kind, attempt, output, error)
        try:
            if app.lookup(target) is None:
                await app.refresh_registry()
            try:
                spec = _hook_spec(app, target, payload, run_id, kind, project)
            except SubmissionError as exc:
                if exc.reason != "too_large":
                    raise
                # an output within max_output_bytes but over max_input_bytes: the hook starts without it
                # (it can read the source run), rather than not at all
                payload = {**payload, "output": None, "output_omitted_bytes": json_size(encode(output))}
                spec = _hook_spec(app, target, payload, run_id, kind, project)
        except SubmissionError as exc:
            # a hook naming a job no worker registered: nothing to retry that would change; said loudly and
            # skipped
            log.error("hook %s of run %s (job %s) not started: %s", kind, run_id, job, exc)
            continue
        await app.create_detailed([spec])
        started += 1
    return started


def _hook_spec(app: Baton, target: str, payload: dict[str, Any], run_id: str, kind: str, project: str) -> RunSpec:
    """The hook run of ``run_id`` of this kind, to create; SubmissionError when it cannot be."""
    return build_spec(app.settings, app.keys, app.lookup, job=target, input=payload,
                      derived_id=hook_run_id(run_id, kind), source="hook",
                      extra={"hook_of": run_id, "hook_kind": kind, "project": project})


async def outbox_lag(app: Baton, partial: PartialRead | None = None) -> int:
    """Outbox entries not yet processed, over every partition: not yet read plus read but unacknowledged.
    With ``partial``, the partitions whose master does not answer are left out (and noted there)."""
    total = 0

    async def read(partition: Partition) -> None:
        nonlocal total
        try:
            groups = await app.redis.xinfo_groups(partition.outbox)
        except ResponseError as exc:
            if is_outage(exc):
                raise
            return  # no outbox yet
        for g in groups:
            if text(g.get("name", b"")) == app.keys.outbox_group:
                total += int(g.get("lag") or 0) + int(g.get("pending") or 0)

    await read_partitions(app.keys.partitions, read, partial)
    return total
