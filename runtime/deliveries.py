"""Webhook deliveries: one record per (webhook, run outcome), attempted until delivered or dead-lettered.

A delivery's id derives from the webhook, the run and its status, so making it twice (an outbox entry
processed again after a notifier died) makes one record. Due deliveries wait in one sorted set;
``webhook_claim.lua`` hands each to one node at a time. Its status is ``pending`` (not yet delivered:
due or being attempted), ``delivered`` or ``dead_letter`` (``webhook_max_attempts`` failed attempts:
the webhook's dead-letter list, ``GET /v1/webhooks/{id}/deliveries?status=dead_letter``; redeliver sends
it again with a fresh attempt budget). Finished records expire after :data:`KEEP_MS`.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson
from redis.exceptions import WatchError

from .codec import text
from .errors import WebhookError
from .keys import Keys
from .settings import Settings
from .webhooks import Webhook, event_of

__all__ = [
    "KEEP_MS", "LOG_CAP", "STATUSES", "backoff_ms", "delivery_id", "enqueue", "finish", "list_deliveries",
    "read_delivery", "redeliver",
]

STATUSES = ("pending", "delivered", "dead_letter")
#: how long a delivered or dead-lettered delivery is kept (a week)
KEEP_MS = 7 * 24 * 3600 * 1000
#: most deliveries listed per webhook (older ones drop out of its list)
LOG_CAP = 1000
_MAX_BACKOFF_MS = 3600_000
_MAX_ERROR = 500


def delivery_id(webhook_id: str, run_id: str, status: str) -> str:
    """The deterministic id of the delivery of one run outcome to one webhook."""
    return "whd_" + hashlib.sha256(f"{webhook_id}|{run_id}|{status}".encode()).hexdigest()[:24]


def backoff_ms(settings: Settings, failures: int, rnd: float | None = None) -> int:
    """Delay after the ``failures``-th failed attempt: ``webhook_backoff_ms`` doubled each time, at most an
    hour, less up to 20 % jitter so deliveries to one endpoint that is down do not come back in step."""
    d = min(settings.webhook_backoff_ms * 2 ** (failures - 1), _MAX_BACKOFF_MS)
    return max(int(d - d * 0.2 * (random.random() if rnd is None else rnd)), 1)


async def enqueue(redis: Any, keys: Keys, hook: Webhook, run: dict[str, Any], now_ms: int) -> str:
    """Record the delivery of a finished run (``run``: id, status, ...) to a webhook, due now; returns its id.

    Idempotent: fields are written only where missing, so a second call leaves a delivery in progress
    (or done) as it is; a done one put back in the due set is dropped when taken (actors/notifier.py).
    """
    status = str(run["status"])
    did = delivery_id(hook.id, str(run["id"]), status)
    body = orjson.dumps({"id": did, "type": event_of(status), "created_at": now_ms, "project": hook.project,
                         "data": run})
    fields = {"id": did, "webhook_id": hook.id, "event": event_of(status) or status, "run_id": run["id"],
              "body": body, "status": "pending", "attempts": 0, "created_at": now_ms, "updated_at": now_ms}
    key = keys.webhook_delivery(did)
    pipe = redis.pipeline(transaction=True)
    for name, value in fields.items():
        pipe.hsetnx(key, name, value)
    pipe.zadd(keys.webhook_due, {did: now_ms}, nx=True)
    log = keys.webhook_deliveries(hook.id)
    pipe.zadd(log, {did: now_ms}, nx=True)
    pipe.zremrangebyrank(log, 0, -LOG_CAP - 1)
    await pipe.execute()
    return did


async def read_delivery(redis: Any, keys: Keys, did: str) -> dict[str, Any] | None:
    """A delivery's record (body left out), or None."""
    raw = await redis.hgetall(keys.webhook_delivery(did))
    if not raw:
        return None
    d = {text(k): text(v) for k, v in raw.items()}
    out: dict[str, Any] = {k: d.get(k) for k in ("id", "webhook_id", "event", "run_id", "status", "last_error")}
    for name in ("attempts", "created_at", "updated_at", "delivered_at", "next_attempt_at", "last_status_code"):
        out[name] = int(d[name]) if d.get(name) else None
    out["attempts"] = out["attempts"] or 0
    return out


async def finish(redis: Any, keys: Keys, settings: Settings, did: str, now_ms: int, *, ok: bool,
                 status_code: int | None, error: str = "", final: bool = False) -> str:
    """Record an attempt's result: delivered, retried later, or dead-lettered (after the last attempt, or
    at once when ``final``: nothing to deliver to); returns the new status.

    One transaction writes the attempt count with everything it decides (status, error, next
    attempt), so no reader sees an attempt counted without its outcome; WATCH makes it start over
    when the record changed since the count was read (a redelivery requested meanwhile)."""
    key = keys.webhook_delivery(did)
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                attempts = int(await pipe.hget(key, "attempts") or 0) + 1
                new = _record_attempt(pipe, keys, settings, did, key, now_ms, attempts, ok=ok,
                                      status_code=status_code, error=error, final=final)
                await pipe.execute()
                return new
            except WatchError:
                continue


def _record_attempt(pipe: Any, keys: Keys, settings: Settings, did: str, key: str, now_ms: int, attempts: int, *,
                    ok: bool, status_code: int | None, error: str, final: bool) -> str:
    """Start the transaction (MULTI) of a watching pipeline and queue the writes of attempt number
    ``attempts`` of delivery ``did`` (record ``key``); its new status."""
    sets: dict[str, Any] = {"attempts": attempts, "updated_at": now_ms,
                            "last_status_code": status_code if status_code is not None else ""}
    pipe.multi()
    if ok:
        new = "delivered"
        sets.update(status=new, delivered_at=now_ms, last_error="")
    else:
        sets["last_error"] = error[:_MAX_ERROR]
        new = "dead_letter" if final or attempts >= settings.webhook_max_attempts else "pending"
        sets["status"] = new
    if new == "pending":
        due = now_ms + backoff_ms(settings, attempts)
        sets["next_attempt_at"] = due
        pipe.zadd(keys.webhook_due, {did: due})
    else:
        sets["next_attempt_at"] = ""
        pipe.zrem(keys.webhook_due, did)
        pipe.pexpire(key, KEEP_MS)
    pipe.hset(key, mapping=sets)
    return new


async def list_deliveries(redis: Any, keys: Keys, webhook_id: str, status: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
    """A webhook's deliveries, newest first, optionally of one status."""
    ids = [text(i) for i in await redis.zrevrange(keys.webhook_deliveries(webhook_id), 0, LOG_CAP - 1)]
    out: list[dict[str, Any]] = []
    for did in ids:
        found = await read_delivery(redis, keys, did)
        if found is None:
            await redis.zrem(keys.webhook_deliveries(webhook_id), did)  # expired: drop it from the list
            continue
        if status is None or found["status"] == status:
            out.append(found)
            if len(out) >= limit:
                break
    return out


async def redeliver(redis: Any, keys: Keys, hook: Webhook, did: str, now_ms: int) -> dict[str, Any]:
    """Send a delivery of this webhook again, now, with a fresh attempt budget (any status)."""
    found = await read_delivery(redis, keys, did)
    if found is None or found["webhook_id"] != hook.id:
        raise WebhookError("not_found", f"delivery {did} of webhook {hook.id} not found")
    key = keys.webhook_delivery(did)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(key, mapping={"status": "pending", "attempts": 0, "updated_at": now_ms, "next_attempt_at": now_ms})
    pipe.persist(key)
    pipe.zadd(keys.webhook_due, {did: now_ms})
    await pipe.execute()
    return await read_delivery(redis, keys, did) or found
