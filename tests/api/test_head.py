"""HEAD is answered wherever GET is (RFC 9110 9.3.2): uptime checks and ``curl -I`` get GET's status
and headers without its body; an event stream, whose answer never ends, is GET only."""

from __future__ import annotations

from aiohttp import web

from runtime.api.routes import ROUTES

from .conftest import ApiNode


async def head_and_get(api: ApiNode, path: str, headers: dict[str, str]) -> tuple[web.Response, bytes, int, bytes]:
    async with api.http.head(api.url + path, headers=headers) as head:
        head_body = await head.read()
    async with api.http.get(api.url + path, headers=headers) as got:
        got_body = await got.read()
    return head, head_body, got.status, got_body  # type: ignore[return-value]


async def test_head_answers_as_get_does_without_the_body(api: ApiNode) -> None:
    # Given a finished run
    run_id = await api.trigger("echo", {"n": 1})
    await api.wait_status(run_id, "completed")
    for path, status in ((f"/v1/runs/{run_id}", 200), ("/v1/runs?limit=5", 200), ("/v1/runs/missing", 404)):
        # When it, a listing and a run that does not exist are asked for with HEAD
        head, head_body, get_status, get_body = await head_and_get(api, path, api.auth())
        # Then each answers GET's status and type, with no body
        assert head.status == get_status == status, path
        assert head.headers["Content-Type"].startswith("application/json") and head_body == b"" and get_body, path
        assert head.headers["X-Request-Id"]
    # And HEAD asks for the key as GET does
    head, *_ = await head_and_get(api, f"/v1/runs/{run_id}", {})
    assert head.status == 401
    # And the dashboard's page answers HEAD too
    head, head_body, get_status, _ = await head_and_get(api, "/ui/", {})
    assert head.status == get_status == 200 and head_body == b""


async def test_event_streams_answer_head_with_405_and_get_in_allow(api: ApiNode) -> None:
    streams = [r for r in ROUTES if r.media_type == "text/event-stream"]
    assert streams  # (the runs' event and chunk streams)
    run_id = await api.trigger("echo", {"n": 2})
    for route in streams:
        path = route.path.replace("{run_id}", run_id)
        async with api.http.head(api.url + path, headers=api.auth()) as resp:
            assert resp.status == 405 and "GET" in resp.headers["Allow"], path
