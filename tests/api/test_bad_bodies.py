"""Requests and bodies that cannot be read at all get a JSON 400, and the API goes on."""

from __future__ import annotations

import asyncio
import gzip
import logging
from typing import Any

import orjson

from tests.api.conftest import ApiNode


async def test_a_body_that_does_not_decode_in_its_content_encoding_is_a_400(api: ApiNode, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    # When a body says it is gzip but is not (it was a 500, the payload error logged twice)
    status, err = await api.call("POST", "/v1/jobs/echo/trigger", data=b"abcd",
                                 headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    # Then the answer says the body could not be read
    assert (status, err["code"]) == (400, "invalid_body") and "could not be read" in err["error"], err
    # And a body that is gzip is read as JSON, and the API goes on
    status, run = await api.call("POST", "/v1/jobs/echo/trigger", data=gzip.compress(b'{"input": 7}'),
                                 headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 201 and run["id"], run
    # And what the client got wrong is one warning line in the server's log, not an error with a traceback
    # (unauthenticated clients could flood the log with those), as is a header over aiohttp's size limit
    status, _ = await api.call("GET", "/v1/runs", headers={"X-Long": "a" * 20_000, "Connection": "close"})
    assert status == 400
    protocol = [r for r in caplog.records if r.name == "baton.api.protocol"]
    assert protocol and all(r.levelno == logging.WARNING and not r.exc_info for r in protocol), protocol
    assert any("Can not decode content-encoding" in r.getMessage() for r in protocol)
    assert any("8190" in r.getMessage() and len(r.getMessage()) < 400 for r in protocol)


async def test_an_operation_that_takes_no_body_refuses_one_that_is_not_json_and_does_nothing(api: ApiNode) -> None:
    # Given a completed run
    run_id = await api.trigger("echo", 1)
    await api.wait_status(run_id, "completed")
    # When it is replayed with a body that is not JSON (the replay was made: the body was never read)
    status, err = await api.call("POST", f"/v1/runs/{run_id}/replay", data=b"{",
                                 headers={"Content-Type": "application/json"})
    # Then the request is refused and nothing was replayed
    assert (status, err["code"]) == (400, "invalid_json"), err
    status, run = await api.call("GET", f"/v1/runs/{run_id}")
    assert status == 200 and not run.get("replayed_as"), run
    # And one with a JSON body (as clients send {}) or none is carried out
    status, replay = await api.call("POST", f"/v1/runs/{run_id}/replay", json={})
    assert status == 201 and replay["id"] != run_id, replay


#: requests the HTTP server cannot parse, refused before any handler runs
MALFORMED = {
    "a header that is no header": b"GET /v1/runs HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n",
    "a request line that is not HTTP": b"GARBAGE\r\n\r\n",
    "a header over the size limit": b"GET /v1/runs HTTP/1.1\r\nHost: h\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
    "a Content-Length that is no number": (b"POST /v1/jobs/echo/trigger HTTP/1.1\r\nHost: h\r\nContent-Length: abc"
                                           b"\r\n\r\n{}"),
    "a chunk size that is no number": (b"POST /v1/jobs/echo/trigger HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                                       b"\r\n\r\nzz\r\n"),
}


async def test_a_request_the_server_cannot_parse_gets_the_apis_json_400(api: ApiNode) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    for what, raw in MALFORMED.items():
        # When a client sends it (aiohttp answered these itself, in plain text, before any handler ran)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(raw)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)  # (the server closes the connection)
        finally:
            writer.close()
        # Then the answer is a 400 in the API's error shape, saying what was wrong
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"400" and b"content-type: application/json" in head.lower(), (what, head)
        err = orjson.loads(body)
        assert set(err) == {"error", "code", "request_id"} and err["code"] == "bad_request", (what, err)
        assert err["error"].startswith("malformed HTTP request: ") and "\n" not in err["error"], (what, err)
        assert len(err["error"]) < 300, (what, err)
    # And the API goes on answering
    assert (await api.call("GET", "/v1/runs"))[0] == 200
