"""A small HTTP client of the Baton API (used by the CLI): JSON calls and server-sent events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from ..codec import digits
from .media import UNANSWERED_HEADER, is_json

__all__ = ["ApiClient", "ApiClientError", "SseEvent"]


class ApiClientError(Exception):
    """An error answer of the API (or no answer at all)."""

    def __init__(self, status: int, code: str, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        if not self.status:  # (no answer: nothing more to say than that)
            return self.message
        rid = f", request {self.request_id}" if self.request_id else ""
        return f"{self.message} ({self.status} {self.code}{rid})"


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event."""

    event: str
    data: Any
    id: str | None


class ApiClient:
    """``async with ApiClient(url, key) as api: await api.get("/v1/runs")``."""

    def __init__(self, url: str, key: str | None, timeout_s: float = 30.0, assumed: str = "") -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s
        #: what the caller did not say and the client assumed (the default URL, no key): said with an error
        #: answer it may explain (401, or no answer at all)
        self.assumed = assumed
        self._session: aiohttp.ClientSession | None = None
        #: partitions the answers so far left out (their Redis master did not answer; UNANSWERED_HEADER)
        self.unanswered: set[int] = set()

    async def __aenter__(self) -> ApiClient:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        # Baton's own shapes whatever view the server defaults to (api_view); ?view= still chooses another
        headers["X-Baton-View"] = "native"
        self._session = aiohttp.ClientSession(headers=headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session."""
        if self._session is None:
            raise RuntimeError("use ApiClient as an async context manager")
        return self._session

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                      body: Any = None) -> Any:
        """One JSON call; raises ApiClientError on an error answer."""
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (params or {}).items()
                 if v is not None}
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self.session.request(method, self.url + path, params=query, data=data, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                raw = await resp.read()
                missing = resp.headers.get(UNANSWERED_HEADER, "")
                self.unanswered.update(int(index) for index in missing.split(",") if digits(index.strip()))
                payload = orjson.loads(raw) if raw and is_json(resp.content_type) else raw
                if resp.status >= 400:
                    if isinstance(payload, dict):
                        raise ApiClientError(resp.status, str(payload.get("code", "error")),
                                             self._explained(str(payload.get("error", "error")), resp.status),
                                             str(payload.get("request_id", "")))
                    raise ApiClientError(resp.status, "error", f"HTTP {resp.status}")
                return payload
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise ApiClientError(0, "unreachable", self._explained(f"cannot reach the API at {self.url}: {exc}",
                                                                   0)) from None

    def _explained(self, message: str, status: int) -> str:
        """An error's message, with what the client assumed when that may be why (401, no answer)."""
        return f"{message}; {self.assumed}" if self.assumed and status in (0, 401) else message

    def partial_note(self) -> str | None:
        """A line saying which partitions the answers left out, or None when every answer was whole."""
        if not self.unanswered:
            return None
        listed = ", ".join(str(index) for index in sorted(self.unanswered))
        return (f"partition(s) {listed} did not answer (a Redis master is down): "
                "the lists and counts above leave out their runs")

    async def get(self, path: str, **params: Any) -> Any:
        """GET with query parameters."""
        return await self.request("GET", path, params)

    async def post(self, path: str, body: Any = None, **params: Any) -> Any:
        """POST a JSON body."""
        return await self.request("POST", path, params, body)

    async def delete(self, path: str, **params: Any) -> Any:
        """DELETE."""
        return await self.request("DELETE", path, params)

    async def events(self, path: str, last_event_id: str | None = None, retries: int = 5) -> AsyncIterator[SseEvent]:
        """Follow an SSE stream until it ends; reconnects with Last-Event-ID when the connection drops."""
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                async with self.session.get(self.url + path, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as resp:
                    if resp.status >= 400:
                        raw = await resp.read()
                        payload = orjson.loads(raw) if raw else {}
                        raise ApiClientError(resp.status, str(payload.get("code", "error")),
                                             str(payload.get("error", f"HTTP {resp.status}")),
                                             str(payload.get("request_id", "")))
                    event, eid = "message", None
                    data: list[str] = []
                    async for raw_line in resp.content:
                        line = raw_line.decode().rstrip("\r\n")
                        if not line:
                            if data:
                                text = "\n".join(data)
                                try:
                                    value: Any = orjson.loads(text)
                                except orjson.JSONDecodeError:
                                    value = text
                                if eid:
                                    last_event_id = eid
                                failures = 0
                                yield SseEvent(event, value, eid)
                                if event == "end":
                                    return
                            event, data, eid = "message", [], None
                            continue
                        if line.startswith(":"):
                            continue
                        name, _, value_text = line.partition(":")
                        value_text = value_text[1:] if value_text.startswith(" ") else value_text
                        if name == "event":
                            event = value_text
                        elif name == "data":
                            data.append(value_text)
                        elif name == "id":
                            eid = value_text
            except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                failures += 1
                if failures > retries:
                    raise ApiClientError(0, "unreachable", f"event stream lost: {exc}") from None
                await asyncio.sleep(min(0.2 * 2 ** failures, 5.0))
                continue
            # the server closed the stream without an end event (it is shutting down): reconnect
            failures += 1
            if failures > retries:
                raise ApiClientError(0, "unreachable", "event stream closed before the run finished")
            await asyncio.sleep(min(0.2 * 2 ** failures, 5.0))
