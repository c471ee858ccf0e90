"""Waitpoint tokens: a run waits until a person or a third party answers (Trigger.dev's waitpoint tokens).

``token = await ctx.create_token(timeout=3600, tags=["approval"])`` creates a
token in the run's partition and returns its id and a pre-signed callback URL
(``<api_public_url>/v1/tokens/<id>/callback/<signature>``, the signature an
HMAC-SHA256 of the id under ``token_secret``). Hand the URL to a webhook
provider or put it in an email; ``await ctx.wait_for_token(token)`` is a
durable wait (the slot is free meanwhile) that returns the JSON body POSTed to
the URL, or raises WaitTimeout once the token expires. A token settles once:
completed (callback URL, ``POST /v1/tokens/{id}/complete``, ``baton tokens
complete``) or expired (its timeout, ``POST /v1/tokens/{id}/expire``); a second
completion is refused. Creating a token is a step: the id derives from the run
and the step position, so a replay gets the same token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .codec import text
from .errors import LeaseLost, TokenAlreadyCompleted, TokenExpired, TokenNotFound, TokenSignatureInvalid
from .ids import routed_run_id
from .keys import Keys
from .limits import check_tags
from .records import iso
from .settings import Settings
from .signals import data_json, keyed_wait

if TYPE_CHECKING:
    from .app import Baton
    from .context import RunContext

__all__ = ["TOKEN_ID_RE", "TOKEN_STATUSES", "Tokens", "WaitToken", "callback_url", "check_signature",
           "create_token", "signature", "token_id_for", "wait_for_token"]

#: Token ids: ``wpt_`` and 26 hex digits, with the ``~k`` suffix that routes it to its run's partition.
TOKEN_ID_RE = re.compile(r"^wpt_[0-9a-f]{26}(~[0-9]{1,6})?\Z")
#: What a token is: open, answered, or past its timeout (or expired by hand) without an answer.
TOKEN_STATUSES = ("waiting", "completed", "expired")
#: token_settle.lua's answers
_MISSING, _COMPLETED, _EXPIRED = -2, -5, -7


@dataclass(frozen=True)
class WaitToken:
    """A waitpoint token as ``ctx.create_token`` returns it."""

    id: str
    run_id: str
    #: the pre-signed callback URL (POST a JSON body to complete the token), None without token_secret
    url: str | None
    created_at_ms: int
    expires_at_ms: int
    tags: tuple[str, ...] = ()


def token_id_for(keys: Keys, run_id: str, position: str) -> str:
    """The token a run creates at the step position tagged ``position`` (runtime/step_positions.py): the same
    on every replay, in the run's partition."""
    base = "wpt_" + hashlib.sha256(f"{run_id}#{position}".encode()).hexdigest()[:26]
    return routed_run_id(keys, run_id, base)


def signature(secret: str, token_id: str) -> str:
    """The callback signature of a token: HMAC-SHA256 of its id under the server secret, hex."""
    return hmac.new(secret.encode(), token_id.encode(), hashlib.sha256).hexdigest()


def callback_url(settings: Settings, token_id: str) -> str | None:
    """The token's pre-signed callback URL (its path alone without api_public_url); None without a secret."""
    if not settings.token_secret:
        return None
    path = f"/v1/tokens/{token_id}/callback/{signature(settings.token_secret, token_id)}"
    return settings.api_public_url.rstrip("/") + path


def check_signature(settings: Settings, token_id: str, given: str) -> None:
    """Raise TokenSignatureInvalid unless ``given`` signs ``token_id`` (compared in constant time)."""
    if not settings.token_secret or not hmac.compare_digest(signature(settings.token_secret, token_id), given):
        raise TokenSignatureInvalid("the callback URL's signature does not match its token")


def _view(token_id: str, f: dict[str, str], now_ms: int, settings: Settings) -> dict[str, Any]:
    """A stored token as the API and ``app.tokens`` show it; an open token past its expiry is expired."""
    expires = int(f.get("expires_at") or 0)
    status = f.get("status") or "waiting"
    if status == "waiting" and expires <= now_ms:
        status = "expired"
    settled = f.get("settled_at")
    return {
        "id": token_id, "run_id": f.get("run_id"), "project": f.get("project") or "default", "status": status,
        "url": callback_url(settings, token_id), "tags": orjson.loads(f.get("tags") or "[]"),
        "created_at": iso(int(f.get("created_at") or 0)), "expires_at": iso(expires),
        "settled_at": iso(int(settled)) if settled else None, "settled_by": f.get("settled_by"),
        "output": orjson.loads(f["output"]) if status == "completed" and f.get("output") else None,
    }


class Tokens:
    """Waitpoint tokens seen from outside a run: ``app.tokens.get/list/complete/expire``."""

    def __init__(self, app: Baton) -> None:
        self._app = app

    async def _now_ms(self) -> int:
        seconds, micros = await self._app.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def get(self, token_id: str) -> dict[str, Any] | None:
        """The token (see the Token schema of the API), or None when there is none."""
        if not TOKEN_ID_RE.match(token_id):
            return None
        raw = await self._app.redis.hgetall(self._app.keys.partition_of_run(token_id).token(token_id))
        if not raw:
            return None
        return _view(token_id, {text(k): text(v) for k, v in raw.items()}, await self._now_ms(), self._app.settings)

    async def list(self, *, status: str | None = None, tags: Iterable[str] = (), run_id: str | None = None,
                   project: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Tokens newest first, filtered (a token matches ``tags`` when it has all of them); at most
        ``api_scan_limit`` of the newest tokens of each partition are examined."""
        wanted = set(tags)
        now = await self._now_ms()
        found: list[dict[str, Any]] = []
        for p in self._app.keys.partitions:
            ids = [text(m) for m in await self._app.redis.zrevrange(p.tokens, 0, self._app.settings.api_scan_limit - 1)]
            pipe = self._app.redis.pipeline(transaction=False)
            for tid in ids:
                pipe.hgetall(p.token(tid))
            for tid, raw in zip(ids, await pipe.execute(), strict=True):
                if not raw:
                    continue  # gone after its retention; the index entry is trimmed by a later creation
                view = _view(tid, {text(k): text(v) for k, v in raw.items()}, now, self._app.settings)
                if ((status is None or view["status"] == status) and wanted <= set(view["tags"])
                        and (run_id is None or view["run_id"] == run_id)
                        and (project is None or view["project"] == project)):
                    found.append(view)
        found.sort(key=lambda v: (v["created_at"], v["id"]), reverse=True)
        return found[:limit]

    async def _settle(self, token_id: str, outcome: str, data: str, by: str) -> dict[str, Any]:
        if not TOKEN_ID_RE.match(token_id):
            raise TokenNotFound(f"token {token_id} not found")
        raw = await self._app.scripts.settle_token(token_id, outcome, data, by)
        if raw == _MISSING:
            raise TokenNotFound(f"token {token_id} not found")
        if raw == _COMPLETED:
            raise TokenAlreadyCompleted(f"token {token_id} was already completed")
        if raw == _EXPIRED:
            raise TokenExpired(f"token {token_id} has expired")
        assert isinstance(raw, tuple)
        return {"id": token_id, "status": outcome, "run_id": raw[1], "resumed": raw[0] == 1}

    async def complete(self, token_id: str, data: Any = None, *, by: str = "api") -> dict[str, Any]:
        """Complete the token with ``data`` (its run's ``wait_for_token`` returns it); returns
        ``{id, status, run_id, resumed}``. TokenNotFound, TokenAlreadyCompleted, TokenExpired, or
        SubmissionError for data that is not JSON or over max_input_bytes."""
        return await self._settle(token_id, "completed",
                                  data_json("token data", data, self._app.settings.max_input_bytes), by)

    async def expire(self, token_id: str) -> dict[str, Any]:
        """Expire the token now: its run's ``wait_for_token`` raises WaitTimeout. Same errors as complete."""
        return await self._settle(token_id, "expired", "null", "api")


# -- handler side (RunContext delegates here) ------------------------------------


async def create_token(ctx: RunContext, timeout: float | None = None, tags: Iterable[str] = ()) -> WaitToken:
    """See RunContext.create_token."""
    app = ctx._app
    settings = app.settings
    tag_list = list(dict.fromkeys(tags))
    check_tags(tag_list)
    most = settings.token_max_timeout_s
    if timeout is not None and not 0 < timeout <= most:
        raise ValueError(f"token timeout must be more than 0 and at most {most} s (token_max_timeout_s)")
    name, index, tag, record = ctx._begin_auto("__token")
    if record is None or record.get("status") != "completed":
        token_id = token_id_for(app.keys, ctx.run_id, tag)
        await ctx.confirm_lease("creating a waitpoint token")
        timeout_ms, tags_json = int((most if timeout is None else timeout) * 1000), orjson.dumps(tag_list).decode()
        # (idempotent: a create tried again answers the token as it is)
        made = await ctx._on_lease(lambda: app.scripts.create_token(ctx.run_id, ctx._token, token_id, timeout_ms,
                                                                    tags_json, most * 1000),
                                   "creating a waitpoint token")
        if made is None:
            raise LeaseLost(f"run {ctx.run_id}: lease lost; waitpoint token not created")
        output: dict[str, Any] = {"id": token_id, "created_at": made[0], "expires_at": made[1], "tags": tag_list}
        now = ctx.now_ms()
        await ctx._record(name, index, {"name": name, "index": index, "status": "completed", "output": output,
                                        "error": None, "started_at": now, "completed_at": now})
    else:
        output = record["output"]
    return WaitToken(id=output["id"], run_id=ctx.run_id, url=callback_url(settings, output["id"]),
                     created_at_ms=int(output["created_at"]), expires_at_ms=int(output["expires_at"]),
                     tags=tuple(output["tags"]))


async def wait_for_token(ctx: RunContext, token: WaitToken | str) -> Any:
    """See RunContext.wait_for_token."""
    token_id = token.id if isinstance(token, WaitToken) else str(token)
    if not TOKEN_ID_RE.match(token_id):
        raise ValueError(f"{token_id!r} is not a waitpoint token id")
    position = ctx._reserve()  # (before any await: see runtime/step_positions.py)
    owner: str | None
    if isinstance(token, WaitToken):
        owner, expires = token.run_id, token.expires_at_ms
    else:
        p = ctx._app.keys.partition_of_run(token_id)
        got = await ctx._app.redis.hmget(p.token(token_id), "run_id", "expires_at")
        owner, expires = (text(got[0]) if got[0] else None), int(got[1] or 0)
    if owner is not None and owner != ctx.run_id:  # a token gone by retention is expired (WaitTimeout)
        raise ValueError(f"token {token_id} is not one this run created (a run waits for its own tokens)")
    return await keyed_wait(ctx, "token", token_id, expires, f"token {token_id} expired", position=position)
