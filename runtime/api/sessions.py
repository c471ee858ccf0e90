"""Dashboard sign-in sessions: an API key exchanged for an HttpOnly cookie, with a CSRF token.

Signing in (``POST /ui/session`` with an API key) stores a session in Redis
(``Keys.session``, a HASH that expires after ``ui_session_ttl_s``) and sets a
cookie holding a random session id: HttpOnly (page scripts never see it),
SameSite=Strict (no other site's page sends it) and Path=/. Redis keeps only the
SHA-256 of the session id, the project and the key's digest, never the key:
removing the key from the settings ends its sessions at their next request.

The API accepts the cookie in place of ``Authorization: Bearer`` (see
:func:`session_project`), scoped to the key's project like the key itself.
Every request with a cookie session that can change something (any method but
GET, HEAD and OPTIONS) must carry the session's CSRF token in ``X-CSRF-Token``,
else 403: a page of another origin can make a browser send the cookie (older
browsers ignore SameSite) but cannot read the token, which only
``GET /ui/session`` returns, to the page's own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from aiohttp import web

from ..app import Baton
from ..codec import text
from .auth import ApiKeys, header_bytes
from .errors import ApiError

__all__ = ["COOKIE", "CSRF_HEADER", "SAFE_METHODS", "Session", "Sessions", "check_csrf", "session_project"]

#: Name of the session cookie
COOKIE = "baton_session"
#: Header that carries the session's CSRF token on every state-changing request
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change nothing, so need no CSRF token
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: a session id as new_session makes it (token_urlsafe(32)); anything else is not looked up
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """A signed-in dashboard session."""

    project: str
    csrf_token: str
    #: milliseconds until it expires (Redis PTTL)
    expires_in_ms: int


class Sessions:
    """Sessions of one deployment, stored in its Redis."""

    def __init__(self, baton: Baton, api_keys: ApiKeys, ttl_s: int) -> None:
        self.baton = baton
        self.api_keys = api_keys
        self.ttl_s = ttl_s

    async def create(self, api_key: str) -> tuple[str, Session] | None:
        """A new session for a valid API key: (session id for the cookie, session); None for a bad key."""
        key_digest = hashlib.sha256(api_key.encode()).digest()
        project = self.api_keys.project_of_digest(key_digest)
        if project is None:
            return None
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        name = self.baton.keys.session(_digest(session_id))
        pipe = self.baton.redis.pipeline(transaction=True)
        pipe.hset(name, mapping={"project": project, "csrf": csrf, "key": key_digest.hex()})
        pipe.expire(name, self.ttl_s)
        await pipe.execute()
        return session_id, Session(project, csrf, self.ttl_s * 1000)

    async def get(self, session_id: str) -> Session | None:
        """The live session of a cookie value, or None (unknown, expired, or its key was removed)."""
        if not _SESSION_ID.match(session_id):
            return None
        name = self.baton.keys.session(_digest(session_id))
        pipe = self.baton.redis.pipeline(transaction=False)
        pipe.hgetall(name)
        pipe.pttl(name)
        raw, ttl_ms = await pipe.execute()
        fields = {text(k): text(v) for k, v in (raw or {}).items()}
        try:
            key_digest = bytes.fromhex(fields.get("key", ""))
        except ValueError:
            return None
        project = self.api_keys.project_of_digest(key_digest) if key_digest else None
        if project is None or project != fields.get("project") or not fields.get("csrf") or ttl_ms <= 0:
            return None
        return Session(project, fields["csrf"], int(ttl_ms))

    async def delete(self, session_id: str) -> None:
        """End a session (signing out); unknown ids are ignored."""
        if _SESSION_ID.match(session_id):
            await self.baton.redis.delete(self.baton.keys.session(_digest(session_id)))


def check_csrf(request: web.Request, session: Session) -> None:
    """ApiError 403 unless a state-changing request carries the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(header_bytes(given), session.csrf_token.encode()):
        raise ApiError(403, "csrf_failed", f"a signed-in dashboard request that changes something needs the "
                       f"session's {CSRF_HEADER} header (GET /ui/session gives it)")


async def session_project(request: web.Request, sessions: Sessions) -> str | None:
    """The project of the request's session cookie, or None when it has no live session. Raises
    ApiError 403 for a state-changing request without the session's CSRF token."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    session = await sessions.get(session_id)
    if session is None:
        return None
    check_csrf(request, session)
    return session.project
