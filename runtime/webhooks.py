"""Outgoing webhooks: URLs a project registers at runtime to hear about its runs' outcomes.

A webhook names the events it wants (:data:`EVENTS`) and has a secret. Each outcome of a run of its
project that matches becomes a delivery (runtime/deliveries.py): a POST of a JSON body signed with
HMAC-SHA256, retried with exponential backoff and dead-lettered after ``webhook_max_attempts``.

Signature: the request carries ``Baton-Webhook-Id`` (the delivery id: receivers deduplicate on it, since
delivery is at-least-once), ``Baton-Webhook-Timestamp`` (unix seconds when it was sent) and
``Baton-Webhook-Signature: v1=<hex>``, the HMAC-SHA256 under the secret of ``<timestamp>.<body>``.
:func:`verify` checks one, refusing timestamps older than a tolerance (replays).

Webhooks fire for runs created once their project had one: run creation marks the runs whose
outcomes go to the outbox (runtime/hooks.py), and a process learns of a new webhook within
:data:`REFRESH_S` (at once in the process that registered it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from .cancelling import cancel_and_wait
from .errors import WebhookError
from .keys import Keys
from .redis_faults import described, is_outage
from .statuses import RunStatus

logger = logging.getLogger(__name__)

__all__ = [
    "EVENTS",
    "ID_HEADER",
    "REFRESH_S",
    "SECRET_PATTERN",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "URL_PATTERN",
    "Webhook",
    "WebhookProjects",
    "check_description",
    "check_events",
    "check_secret",
    "check_url",
    "delete_webhook",
    "event_of",
    "get_webhook",
    "list_webhooks",
    "new_webhook",
    "save_webhook",
    "sign",
    "signature_headers",
    "verify",
]

#: event name -> the terminal run status it reports
EVENTS: dict[str, str] = {
    "run.completed": RunStatus.COMPLETED,
    "run.failed": RunStatus.FAILED,
    "run.dead_lettered": RunStatus.DEAD_LETTER,
    "run.canceled": RunStatus.CANCELED,
    "run.expired": RunStatus.EXPIRED,
}
_EVENT_OF = {status: event for event, status in EVENTS.items()}
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "Baton-Webhook-Id", "Baton-Webhook-Timestamp", "Baton-Webhook-Signature"
#: how old a process's read of which projects have webhooks may be (see WebhookProjects)
REFRESH_S = 2.0
#: how long a process keeps that read fresh in the background after the last submission asked for it
KEEP_FRESH_S = 60.0
MAX_URL_LEN = 2048
MAX_WEBHOOKS_PER_PROJECT = 100
_PORT = "6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}"
#: what a delivery URL may be (also the API schema's pattern): absolute http(s), a host name or IPv4
#: address, an optional port, printable ASCII without spaces (percent-encode the rest)
URL_PATTERN = rf"^https?://[A-Za-z0-9.-]+(:({_PORT}))?([/?#][!-~]*)?$"
#: a signing secret (also the API schema's pattern): 16-256 printable ASCII characters
SECRET_PATTERN = r"^[ -~]{16,256}$"


def event_of(status: str) -> str | None:
    """The event a run finishing with ``status`` is, if any."""
    return _EVENT_OF.get(status)


@dataclass(frozen=True)
class Webhook:
    """A registered webhook (stored as JSON in the ``webhooks`` hash)."""

    id: str
    project: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: int
    description: str = ""

    def to_json(self) -> bytes:
        """The stored form."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, blob: bytes | str) -> Webhook:
        """Read the stored form."""
        d = orjson.loads(blob)
        d["events"] = tuple(d.get("events") or ())
        return cls(**d)

    def public(self) -> dict[str, Any]:
        """The API's view: everything but the secret (shown once, when the webhook is created)."""
        return {"id": self.id, "url": self.url, "events": list(self.events), "description": self.description,
                "created_at": self.created_at, "secret_hint": self.secret[:6] + "…"}

    def wants(self, status: str) -> bool:
        """Whether an outcome with this terminal status is one of its events."""
        event = event_of(status)
        return event is not None and event in self.events


def check_url(url: Any) -> str:
    """A delivery URL: absolute http(s) with a host, at most :data:`MAX_URL_LEN` characters."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LEN:
        raise WebhookError("bad_url", f"url must be an http(s) URL of at most {MAX_URL_LEN} characters")
    if not re.match(URL_PATTERN, url):
        raise WebhookError("bad_url", "url must be an absolute http:// or https:// URL with a host (printable "
                           "ASCII, no spaces)")
    return url


def check_events(events: Any) -> tuple[str, ...]:
    """Event names, each one of :data:`EVENTS`, at least one."""
    if not isinstance(events, list | tuple) or not events or not all(isinstance(e, str) for e in events):
        raise WebhookError("bad_events", f"events must be a non-empty list of {', '.join(EVENTS)}")
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise WebhookError("unknown_event", f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}")
    return tuple(dict.fromkeys(events))


def check_description(description: Any) -> str:
    """A webhook's description: text of at most 500 characters."""
    if not isinstance(description, str) or len(description) > 500:
        raise WebhookError("bad_description", "description must be text of at most 500 characters")
    try:
        description.encode()
    except UnicodeEncodeError:
        raise WebhookError("bad_description", "description is not valid Unicode text") from None
    return description


def check_secret(secret: Any) -> str:
    """A signing secret: given (16-256 printable ASCII characters) or generated."""
    if secret is None:
        return "whsec_" + secrets.token_hex(24)
    if not isinstance(secret, str) or not re.match(SECRET_PATTERN, secret):
        raise WebhookError("bad_secret", "secret must be 16-256 printable ASCII characters")
    return secret


def new_webhook(project: str, url: Any, events: Any, secret: Any = None, description: Any = "",
                now_ms: int | None = None) -> Webhook:
    """A validated webhook with a new id."""
    check_description(description)
    return Webhook(id="wh_" + secrets.token_hex(10), project=project, url=check_url(url),
                   events=check_events(events), secret=check_secret(secret),
                   created_at=now_ms if now_ms is not None else int(time.time() * 1000), description=description)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signature_headers(secret: str, delivery_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers of one delivery request."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"Content-Type": "application/json", ID_HEADER: delivery_id, TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(secret, ts, body)}


def verify(secret: str, body: bytes, timestamp: str, signature: str, tolerance_s: float = 300.0,
           now: float | None = None) -> bool:
    """Whether a received delivery is authentic and fresh: the signature matches (constant-time compare)
    and the timestamp is within ``tolerance_s`` of now (older ones may be replays)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in signature.split(","))


class WebhookProjects:
    """Which projects have webhooks, as one process last read it: never more than :data:`REFRESH_S` old,
    unless Redis does not answer the read (then the last read stands: nothing can change it meanwhile).

    The first submission reads it in line; from then on a task of its own reads it again every
    REFRESH_S / 2, off every submission's path, for as long as submissions keep asking (until
    :data:`KEEP_FRESH_S` after the last). A read started by a submission went out ahead of its create
    call: on a quiet node, where the last read is always old, every submission waited a round trip
    more. A read in line is left for the first submission, and the first after KEEP_FRESH_S without
    any, once for every caller that comes meanwhile. A read that meets an outage, in line or in the
    background, leaves the last read standing until one succeeds: on Redis Cluster, with the
    node-wide keys' master down, every submission in the ~1.5 s the client spends finding that out
    waited for it (each its own read), though runs in the other partitions go on.
    """

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.projects: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        #: when a submission last asked (monotonic): the background reads go on until KEEP_FRESH_S after it
        self._asked_at = float("-inf")
        #: the task that reads them again every REFRESH_S / 2 (_keep_fresh)
        self._keeper: asyncio.Task[None] | None = None
        #: the read in line under way, which callers that come meanwhile wait for too
        self._in_line: asyncio.Task[None] | None = None
        #: the last read is being used past its age because Redis did not answer (logged once)
        self._stale = False

    async def current(self, redis: Any) -> frozenset[str]:
        """The projects, as read at most :data:`REFRESH_S` ago."""
        self._asked_at = now = time.monotonic()
        if now - self._read_at >= REFRESH_S and not self._stale:
            if self._in_line is None or self._in_line.done():
                self._in_line = asyncio.ensure_future(self.refresh(redis))
            try:
                await asyncio.shield(self._in_line)
            except Exception as exc:
                if not self._stands_in_for(exc):
                    raise
        keeper = self._keeper
        # (a keeper of another event loop, one asyncio.run before this, runs no more)
        if keeper is None or keeper.done() or keeper.get_loop() is not asyncio.get_running_loop():
            self._keeper = asyncio.ensure_future(self._keep_fresh(redis))
        return self.projects

    async def _keep_fresh(self, redis: Any) -> None:
        """Read them again once the last read is REFRESH_S / 2 old, until no submission asked for
        KEEP_FRESH_S (a process that stopped submitting, or a client nobody closed, reads no more)."""
        tried_at = float("-inf")
        while time.monotonic() - self._asked_at < KEEP_FRESH_S:
            # (one try per REFRESH_S / 2 while Redis does not answer either)
            await asyncio.sleep(max(max(self._read_at, tried_at) + REFRESH_S / 2 - time.monotonic(), 0.0))
            if time.monotonic() - self._read_at >= REFRESH_S / 2:  # (not read meanwhile, in line or by a save)
                tried_at = time.monotonic()
                await self._refresh_quietly(redis)

    async def refresh(self, redis: Any) -> None:
        """Read them now. A read that lands after a later-started one is dropped: a background read
        answered before this process registered a webhook must not hide it."""
        started = time.monotonic()
        blobs = await redis.hvals(self.keys.webhooks)
        if started >= self._read_at:  # (_read_at: when the read in use started, so its age is never less)
            self.projects = frozenset(Webhook.from_json(b).project for b in blobs)
            self._read_at = started
        self._stale = False

    def _stands_in_for(self, exc: Exception) -> bool:
        """Whether the last read stands in for one that failed with ``exc``: there is one, and Redis
        did not answer. The master of the node-wide keys may be down while the run's own partition
        answers (Redis Cluster); no webhook can be added or removed there meanwhile, so submissions
        go on with it, and reads go on in the background only."""
        if self._read_at == float("-inf") or not is_outage(exc):
            return False
        if not self._stale:
            logger.warning("could not read the webhook projects (%s): using the last read until Redis answers",
                           described(exc)[:300])
            self._stale = True
        return True

    async def _refresh_quietly(self, redis: Any) -> None:
        # a background read that fails otherwise changes nothing: past REFRESH_S a caller reads in
        # line and sees why
        try:
            await self.refresh(redis)
        except Exception as exc:  # noqa: BLE001 - logged; the next read in line raises it to a caller
            if not self._stands_in_for(exc):
                logger.debug("background read of the webhook projects failed: %s", exc)

    async def close(self) -> None:
        """Stop the reads still under way."""
        tasks = [task for task in (self._keeper, self._in_line) if task is not None]
        self._keeper = self._in_line = None
        await cancel_and_wait(tasks)


async def list_webhooks(redis: Any, keys: Keys, project: str | None = None) -> list[Webhook]:
    """The webhooks of a project (every project's with None), oldest first."""
    hooks = [Webhook.from_json(b) for b in await redis.hvals(keys.webhooks)]
    return sorted((w for w in hooks if project is None or w.project == project), key=lambda w: (w.created_at, w.id))


async def get_webhook(redis: Any, keys: Keys, project: str, webhook_id: str) -> Webhook:
    """One webhook of a project (WebhookError not_found for another project's, as for a missing one)."""
    blob = await redis.hget(keys.webhooks, webhook_id)
    hook = Webhook.from_json(blob) if blob else None
    if hook is None or hook.project != project:
        raise WebhookError("not_found", f"webhook {webhook_id} not found")
    return hook


async def save_webhook(redis: Any, keys: Keys, hook: Webhook, projects: WebhookProjects | None = None) -> None:
    """Store a webhook (new or changed)."""
    existing = await list_webhooks(redis, keys, hook.project)
    if len([w for w in existing if w.id != hook.id]) >= MAX_WEBHOOKS_PER_PROJECT:
        raise WebhookError("too_many", f"a project has at most {MAX_WEBHOOKS_PER_PROJECT} webhooks")
    await redis.hset(keys.webhooks, hook.id, hook.to_json())
    if projects is not None:
        await projects.refresh(redis)


async def delete_webhook(redis: Any, keys: Keys, project: str, webhook_id: str,
                         projects: WebhookProjects | None = None) -> None:
    """Delete a webhook; its deliveries not yet made are dropped when their turn comes."""
    await get_webhook(redis, keys, project, webhook_id)
    await redis.hdel(keys.webhooks, webhook_id)
    if projects is not None:
        await projects.refresh(redis)
