"""The dashboard's server side without a browser: its files, sign-in sessions (cookie flags, CSRF, project
scope, expiry with the key) and the endpoints its pages added (bulk delete, the idempotency-key filter)."""

from __future__ import annotations

import hashlib
import re
from http.cookies import SimpleCookie
from typing import Any

from runtime.api import ApiKeys
from runtime.api.sessions import COOKIE, Sessions
from runtime.api.ui import ASSETS_DIR
from tests.api.conftest import ApiNode


async def sign_in(api: ApiNode, project: str = "alpha") -> tuple[str, str, Any]:
    """(session id, CSRF token, the Set-Cookie morsel) of a new session of ``project``."""
    async with api.http.post(api.url + "/ui/session", json={"api_key": api.keys[project]}) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        cookie = SimpleCookie()
        cookie.load(resp.headers["Set-Cookie"])
    assert body["project"] == project and api.keys[project] not in str(body)
    return cookie[COOKIE].value, body["csrf_token"], cookie[COOKIE]


async def as_browser(api: ApiNode, method: str, path: str, session_id: str, csrf: str | None = None,
                     json: Any = None) -> tuple[int, Any]:
    headers = {"Cookie": f"{COOKIE}={session_id}"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    async with api.http.request(method, api.url + path, headers=headers, json=json) as resp:
        return resp.status, await resp.json() if resp.content_type == "application/json" else await resp.text()


async def test_sign_in_sets_a_strict_httponly_cookie_and_keeps_no_key_in_redis(api: ApiNode) -> None:
    # When a user signs in with a key
    session_id, csrf, morsel = await sign_in(api)
    # Then the cookie is HttpOnly, SameSite=Strict, for the whole site, and lasts ui_session_ttl_s
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert int(morsel["max-age"]) == api.app.settings.ui_session_ttl_s
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", session_id) and csrf and csrf != session_id
    # And Redis holds the session under the id's digest, with a TTL, and neither the id nor the key
    name = api.app.keys.session(hashlib.sha256(session_id.encode()).hexdigest())
    stored = {k.decode(): v.decode() for k, v in (await api.app.redis.hgetall(name)).items()}
    assert stored["project"] == "alpha" and stored["csrf"] == csrf
    assert session_id not in str(stored) and api.keys["alpha"] not in str(stored)
    assert 0 < await api.app.redis.ttl(name) <= api.app.settings.ui_session_ttl_s
    # And GET /ui/session gives the project and the token back
    status, body = await as_browser(api, "GET", "/ui/session", session_id)
    assert status == 200 and body["signed_in"] is True and body["project"] == "alpha" and body["csrf_token"] == csrf


async def test_bad_sign_ins_are_refused(api: ApiNode) -> None:
    # A wrong key, no key, and a sign-in posted by another site's page are refused
    async with api.http.post(api.url + "/ui/session", json={"api_key": "bk_wrong"}) as resp:
        assert resp.status == 401 and "Set-Cookie" not in resp.headers
    async with api.http.post(api.url + "/ui/session", json={}) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == "invalid_body"
    async with api.http.post(api.url + "/ui/session", json={"api_key": api.keys["alpha"]},
                             headers={"Origin": "https://evil.example"}) as resp:
        assert resp.status == 403 and (await resp.json())["code"] == "csrf_failed"
    # While a plain form post (no script) works
    async with api.http.post(api.url + "/ui/session", data={"api_key": api.keys["beta"]}) as resp:
        assert resp.status == 200 and (await resp.json())["project"] == "beta"


async def test_a_session_acts_for_its_project_only_and_needs_the_csrf_token_to_change_anything(api: ApiNode) -> None:
    # Given a run of each project and a session of beta
    alpha_run = await api.trigger("echo", {"a": 1})
    beta_run = await api.trigger("echo", {"b": 1}, project="beta")
    await api.wait_status(alpha_run, "completed")
    await api.wait_status(beta_run, "completed", project="beta")
    session_id, csrf, _ = await sign_in(api, "beta")
    # Then the session lists and reads beta's runs only
    status, page = await as_browser(api, "GET", "/v1/runs", session_id)
    assert status == 200 and [r["id"] for r in page["data"]] == [beta_run]
    assert (await as_browser(api, "GET", f"/v1/runs/{alpha_run}", session_id))[0] == 404
    assert (await as_browser(api, "GET", f"/v1/runs/{alpha_run}/stream", session_id))[0] == 404
    # And a replay without the CSRF token, or with another session's token, is refused
    _other_id, other_csrf, _ = await sign_in(api, "beta")
    for token in (None, "", other_csrf):
        status, body = await as_browser(api, "POST", f"/v1/runs/{beta_run}/replay", session_id, token)
        assert status == 403 and body["code"] == "csrf_failed", token
    assert (await api.run(beta_run, "beta")).get("replayed_as") is None
    # While the session's own token works
    status, body = await as_browser(api, "POST", f"/v1/runs/{beta_run}/replay", session_id, csrf)
    assert status == 201 and body["replay_of"] == beta_run
    # And a Bearer key needs no CSRF token (a browser never sends one by itself)
    status, _ = await api.call("POST", f"/v1/runs/{alpha_run}/replay")
    assert status == 201


async def test_sign_out_and_removing_the_key_end_sessions(api: ApiNode) -> None:
    # Given a session
    session_id, csrf, _ = await sign_in(api)
    # When the key behind it is no longer configured
    sessions = Sessions(api.app, ApiKeys.from_settings(api.app.settings.with_changes(api_keys="")),
                        api.app.settings.ui_session_ttl_s)
    # Then the session is not valid for that configuration
    assert await sessions.get(session_id) is None
    # When signing out without the CSRF token
    status, _ = await as_browser(api, "DELETE", "/ui/session", session_id)
    # Then it is refused and the session still works
    assert status == 403 and (await as_browser(api, "GET", "/v1/runs", session_id))[0] == 200
    # When signing out with it
    async with api.http.delete(api.url + "/ui/session", headers={"Cookie": f"{COOKIE}={session_id}",
                                                                  "X-CSRF-Token": csrf}) as resp:
        assert resp.status == 200
        cleared = SimpleCookie()
        cleared.load(resp.headers["Set-Cookie"])
        assert cleared[COOKIE].value == "" and cleared[COOKIE]["max-age"] == "0"
    # Then the session is gone everywhere
    assert (await as_browser(api, "GET", "/v1/runs", session_id))[0] == 401
    assert await as_browser(api, "GET", "/ui/session", session_id) == (200, {"signed_in": False})
    # And junk cookies are simply not sessions
    for junk in ("", "x", "a" * 43, "../../etc"):
        assert (await as_browser(api, "GET", "/v1/runs", junk))[0] == 401


async def test_the_dashboard_files_are_served_with_a_strict_policy(api: ApiNode) -> None:
    # GET / and /ui lead to the dashboard
    for path in ("/", "/ui"):
        async with api.http.get(api.url + path, allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/ui/"
    # The page loads only its own files: a content policy without inline scripts, no framing
    async with api.http.get(api.url + "/ui/") as resp:
        page = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    for src in re.findall(r'(?:src|href)="([^"#:]+)"', page):
        async with api.http.get(f"{api.url}/ui/{src}") as resp:
            assert resp.status == 200, src
            etag = resp.headers["ETag"]
        # And a file the browser has is answered 304 (revalidated, never stale after an upgrade)
        async with api.http.get(f"{api.url}/ui/{src}", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
    async with api.http.get(api.url + "/ui/app.js") as resp:
        assert resp.content_type == "text/javascript"
    # Unknown files and paths that leave the directory are 404s
    for path in ("/ui/nothing.js", "/ui/..%2Fui.py", "/ui/%2e%2e/ui.py", "/ui/sub/app.js"):
        async with api.http.get(api.url + path) as resp:
            assert resp.status == 404, path


def test_the_dashboard_fetches_nothing_from_the_network() -> None:
    # Every file of the dashboard names no other host (it must work on an air-gapped cluster); the one
    # URL allowed is the SVG namespace, an identifier that is never fetched
    for path in ASSETS_DIR.iterdir():
        text = path.read_text().replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), path.name
        assert "@import" not in text and "localStorage" not in text and "sessionStorage" not in text, path.name


async def test_bulk_delete_removes_finished_runs_only(api: ApiNode) -> None:
    # Given a dead-lettered run, a live run and another project's finished run
    dead = await api.trigger("boom")
    await api.wait_status(dead, "dead_letter")
    live = await api.trigger("gated", {"gate": "del"})
    await api.wait_status(live, "executing")
    foreign = await api.trigger("echo", project="beta")
    await api.wait_status(foreign, "completed", project="beta")
    # When all three are deleted
    status, body = await api.call("POST", "/v1/runs/bulk-delete", json={"run_ids": [dead, live, foreign]})
    # Then only the dead letter is gone; the others are reported and untouched
    assert status == 200 and (body["deleted"], body["failed"], body["total"]) == (1, 2, 3)
    by_id = {r["id"]: r for r in body["results"]}
    assert by_id[dead]["status"] == "deleted"
    assert by_id[live] == {"id": live, "status": "failed", "error": f"run {live} has not finished yet"}
    assert by_id[foreign]["error"] == f"run {foreign} not found"
    assert (await api.call("GET", f"/v1/runs/{dead}"))[0] == 404
    assert (await api.call("GET", "/v1/runs/dlq"))[1]["data"] == []
    assert (await api.run(live))["status"] == "executing"
    assert (await api.run(foreign, "beta"))["status"] == "completed"
    api.gates.open("del")


async def test_runs_filter_by_idempotency_key_within_the_project(api: ApiNode) -> None:
    # Given runs with idempotency keys in two projects (the same key in both)
    mine = await api.trigger("echo", {"n": 1}, idempotency_key="order-7")
    await api.trigger("echo", {"n": 2}, idempotency_key="order-8")
    theirs = await api.trigger("echo", {"n": 3}, idempotency_key="order-7", project="beta")
    # When each project filters by the key
    status, page = await api.call("GET", "/v1/runs", params={"idempotency_key": "order-7"})
    _, other = await api.call("GET", "/v1/runs", "beta", params={"idempotency_key": "order-7"})
    # Then each finds its own run only
    assert status == 200 and [r["id"] for r in page["data"]] == [mine]
    assert [r["id"] for r in other["data"]] == [theirs]


async def _raw(api: ApiNode, head: bytes) -> tuple[bytes, bytes]:
    """Send a request's head as raw bytes (headers no HTTP client would send); its status line and body."""
    import asyncio

    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    status, _, rest = answer.partition(b"\r\n")
    return status, rest.partition(b"\r\n\r\n")[2]


async def test_a_key_or_csrf_token_that_is_not_utf8_is_refused_not_an_internal_error(api: ApiNode) -> None:
    # When a request presents an API key of bytes that are not UTF-8
    status, body = await _raw(api, b"GET /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
                                   b"Connection: close\r\n\r\n")
    # Then it is a key that matches nothing: 401, as any wrong key (it was a 500: encoding it failed)
    assert status.startswith(b"HTTP/1.1 401 ") and b'"code":"unauthorized"' in body, (status, body)
    # When a signed-in browser's state-changing request carries such a CSRF token
    session_id, _, _ = await sign_in(api)
    status, body = await _raw(api, b"POST /v1/jobs/echo/trigger HTTP/1.1\r\nHost: x\r\nCookie: " + COOKIE.encode()
                              + b"=" + session_id.encode() + b"\r\nX-CSRF-Token: \xe9\xe9\r\nContent-Type: "
                              b"application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    # Then it is the wrong token: 403 csrf_failed
    assert status.startswith(b"HTTP/1.1 403 ") and b'"code":"csrf_failed"' in body, (status, body)
