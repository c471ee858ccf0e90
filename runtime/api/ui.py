"""The web dashboard: static files under /ui and the sign-in session endpoints.

The dashboard is a static single-page app (runtime/api/ui/: HTML, CSS and
JavaScript modules, no build step, nothing fetched from the network) that
calls the same /v1 endpoints as any client, authenticated by the session
cookie of :mod:`runtime.api.sessions`. This module only serves the files and
signs people in and out; every page's data comes from the /v1 handlers.

Routes (outside /v1 and the OpenAPI document: they are the dashboard's, not
the API's):

- ``GET /`` and ``GET /ui`` redirect to ``/ui/``; ``GET /ui/`` is the page,
  ``GET /ui/<file>`` its scripts and styles.
- ``POST /ui/session`` with ``{"api_key": ...}`` (JSON or a form): signs in.
- ``GET /ui/session``: the project and the CSRF token of the signed-in session, or
  ``{"signed_in": false}`` (200: a page asking whether it is signed in is no failed
  request, and a browser logs every 401 in its console as an error).
- ``DELETE /ui/session``: signs out (needs the CSRF token).
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from .errors import ApiError
from .routing import json_response
from .schemas import BULK_IDS_MAX
from .sessions import COOKIE, Session, Sessions, check_csrf

__all__ = ["ASSETS_DIR", "SESSIONS", "UI_ROUTES", "add_ui_routes"]

#: where the dashboard's files are (shipped as package data)
ASSETS_DIR = Path(__file__).with_name("ui")
#: the longest API key accepted at sign-in (longer ones are not keys)
MAX_KEY_CHARS = 512
#: what the dashboard may load: only its own files and its own API; no inline script, no framing
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_SECURITY_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
                     "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
          ".png": "image/png"}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


@cache
def _assets() -> dict[str, _Asset]:
    """The dashboard's files by name, read once (a few tens of KiB)."""
    out = {}
    for path in sorted(ASSETS_DIR.iterdir()):
        if path.is_file() and path.suffix in _TYPES:
            body = path.read_bytes()
            content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            out[path.name] = _Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return out


def _serve(request: web.Request, name: str) -> web.Response:
    asset = _assets().get(name)
    if asset is None:
        raise ApiError(404, "route_not_found", f"no dashboard file {name}")
    # revalidated on every load (cheap: 304), so an upgraded node's dashboard is never mixed with a cached one
    headers = {**_SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if asset.content_type.startswith("text/") else None
    return web.Response(body=asset.body, content_type=asset.content_type, charset=charset, headers=headers)


def _session_body(session: Session) -> web.Response:
    return json_response({"signed_in": True, "project": session.project, "csrf_token": session.csrf_token,
                          "expires_in_s": session.expires_in_ms // 1000, "bulk_ids_max": BULK_IDS_MAX},
                         headers={"Cache-Control": "no-store"})


def _same_origin(request: web.Request) -> bool:
    """Whether a browser request comes from a page of this server (an Origin header naming this host); a
    request without Origin (curl, scripts) passes, as it cannot be a forged cross-site form."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


#: the Sessions the dashboard's handlers use
SESSIONS: web.AppKey[Sessions] = web.AppKey("baton_sessions", Sessions)


async def _redirect(request: web.Request) -> web.StreamResponse:
    # returned, not raised: the API's middleware turns raised HTTP exceptions into JSON errors
    return web.Response(status=302, headers={"Location": "/ui/"})


async def _index(request: web.Request) -> web.StreamResponse:
    return _serve(request, "index.html")


async def _asset(request: web.Request) -> web.StreamResponse:
    return _serve(request, request.match_info["name"])


async def _sign_in(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    # a forged cross-site sign-in would put the victim in the attacker's project ("login CSRF")
    if not _same_origin(request):
        raise ApiError(403, "csrf_failed", "sign-in from another origin refused")
    if request.content_type == "application/json":
        try:
            body = orjson.loads(await request.read() or b"null")
        except orjson.JSONDecodeError:
            raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
        key = body.get("api_key") if isinstance(body, dict) else None
    else:
        key = (await request.post()).get("api_key")
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_CHARS:
        raise ApiError(400, "invalid_body", "api_key (an API key) is required")
    made = await sessions.create(key.strip())
    if made is None:
        raise ApiError(401, "unauthorized", "invalid API key")
    session_id, session = made
    resp = _session_body(session)
    resp.set_cookie(COOKIE, session_id, max_age=sessions.ttl_s, path="/", httponly=True, samesite="Strict",
                    secure=request.secure)
    return resp


async def _current(request: web.Request) -> web.StreamResponse:
    session = await request.app[SESSIONS].get(request.cookies.get(COOKIE, ""))
    if session is None:
        return json_response({"signed_in": False}, headers={"Cache-Control": "no-store"})
    return _session_body(session)


async def _sign_out(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    session_id = request.cookies.get(COOKIE, "")
    session = await sessions.get(session_id)
    if session is not None:
        check_csrf(request, session)
        await sessions.delete(session_id)
    resp = json_response({"signed_in": False})
    resp.del_cookie(COOKIE, path="/")
    return resp


#: the dashboard's routes: method, path, handler, name (for the request metrics)
UI_ROUTES: tuple[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]], str], ...] = (
    ("GET", "/", _redirect, "uiRoot"),
    ("GET", "/ui", _redirect, "uiRedirect"),
    ("GET", "/ui/", _index, "uiIndex"),
    ("POST", "/ui/session", _sign_in, "uiSignIn"),
    ("GET", "/ui/session", _current, "uiSession"),
    ("DELETE", "/ui/session", _sign_out, "uiSignOut"),
    # registered last: a file name never shadows /ui/session
    ("GET", "/ui/{name}", _asset, "uiAsset"),
)


def add_ui_routes(app: web.Application, sessions: Sessions) -> None:
    """Register the dashboard's routes on the API application."""
    app[SESSIONS] = sessions
    for method, path, handler, name in UI_ROUTES:
        resource = app.router.add_resource(path, name=name)
        resource.add_route(method, handler)
        if method == "GET":
            resource.add_route("HEAD", handler)  # (as the API's GET routes: runtime/api/server.py)
