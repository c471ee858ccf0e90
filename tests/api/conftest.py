"""Fixtures of the HTTP API tests: a real node (Redis started by the session fixture) serving the API
on a free port, API keys for two projects, and jobs whose progress the tests control with gates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from actors.supervisor import Supervisor
from runtime import Backoff, Baton, PermanentFailure, RunContext
from runtime.api import new_key
from runtime.api.media import is_json
from tests.nodes import api_settings, eventually, serving_api

TERMINAL = {"completed", "failed", "canceled", "dead_letter", "expired"}


@dataclass
class Gates:
    """Named asyncio events a test opens to let a handler go on; counts step executions."""

    events: dict[str, asyncio.Event] = field(default_factory=dict)
    executions: dict[str, int] = field(default_factory=dict)

    def gate(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    def open(self, name: str) -> None:
        self.gate(name).set()

    async def wait(self, name: str) -> None:
        await self.gate(name).wait()

    async def step(self, gate: str, i: int) -> int:
        self.executions[f"{gate}-{i}"] = self.executions.get(f"{gate}-{i}", 0) + 1
        await self.gate(f"{gate}-{i}").wait()
        return i * 10


def define_jobs(app: Baton, gates: Gates) -> None:
    """The jobs every API test node runs."""

    @app.job(max_attempts=3)
    async def echo(ctx: RunContext, payload: Any) -> Any:
        return payload

    @app.job(max_attempts=1)
    async def boom(ctx: RunContext, payload: Any) -> None:
        ctx.log.error("about to fail", reason="test")
        raise RuntimeError("boom")

    @app.job(max_attempts=1)
    async def fatal(ctx: RunContext, payload: Any) -> None:
        raise PermanentFailure("cannot go on")

    @app.job(timeout=60)
    async def gated(ctx: RunContext, payload: Any) -> str:
        ctx.log.info("waiting for gate %s", payload["gate"])
        await gates.wait(payload["gate"])
        return "opened"

    @app.job(timeout=60, max_concurrency=1)
    async def single(ctx: RunContext, payload: Any) -> Any:
        """At most one at a time: a second run stays queued while the first holds its gate."""
        if payload.get("gate"):
            await gates.wait(payload["gate"])
        return payload

    @app.job(queue="mail", timeout=60)
    async def mail(ctx: RunContext, payload: Any) -> Any:
        """A job of its own queue (the others are in "default"), held by a gate when given one."""
        if payload.get("gate"):
            await gates.wait(payload["gate"])
        return payload

    @app.job(timeout=60)
    async def steps(ctx: RunContext, payload: Any) -> list[int]:
        out = []
        n = int(payload["n"])
        for i in range(n):
            out.append(await ctx.step(f"s{i}", gates.step, payload["gate"], i))
            ctx.progress(i + 1, n, f"step {i} done")
        return out

    @app.job(timeout=60)
    async def ai(ctx: RunContext, payload: Any) -> str:
        ctx.record_usage("openai", "gpt-test", prompt_tokens=100, completion_tokens=20, cost_microusd=1500)
        ctx.record_usage("anthropic", "claude-test", prompt_tokens=10, completion_tokens=5, cost_microusd=50)
        ctx.record_tool_call("search", {"q": "baton"}, {"hits": 3}, duration_ms=12)
        ctx.output("summary", {"text": "first"}, {"type": "object", "required": ["text"]})
        ctx.output("summary", {"text": "final"}, {"type": "object", "required": ["text"]})
        ctx.output("score", 0.9)
        for word in payload.get("words", []):
            if payload.get("gate"):
                await gates.wait(f"{payload['gate']}-{word}")  # the test says when to produce each chunk
            ctx.stream(word)
        return "done"

    @app.job(max_attempts=1)
    async def bad_output(ctx: RunContext, payload: Any) -> None:
        ctx.output("n", "not a number", {"type": "number"})

    @app.job(max_attempts=3, backoff=Backoff(initial_s=60))
    async def retrying(ctx: RunContext, payload: Any) -> None:
        """Fails, then waits a minute for its next attempt (a run being retried)."""
        raise RuntimeError("try again")

    @app.job()
    async def parent(ctx: RunContext, payload: Any) -> Any:
        return await ctx.trigger_and_wait_many([("gated", {"gate": payload["gate"]}) for _ in range(2)])

    @app.job()
    async def waiter(ctx: RunContext, payload: Any) -> Any:
        return await ctx.wait_for_event(payload["key"], timeout=60)

    @app.job()
    async def chain(ctx: RunContext, payload: Any) -> Any:
        if payload < 2:
            ctx.continue_as_new(payload + 1)
        return payload

    @app.job(max_attempts=1)
    async def deep(ctx: RunContext, payload: Any) -> list[str]:
        """Tries to keep a value nested ``payload["depth"]`` levels in every way a handler keeps one;
        returns the ways that refused it (a log entry keeps its message and drops the data)."""
        value: Any = "bottom"
        for _ in range(payload["depth"]):
            value = [value]
        ctx.log.info("deep data", value=value)
        ways: dict[str, Callable[[], Any]] = {
            "metadata": lambda: ctx.set_metadata(deep=value), "state": lambda: ctx.set_state(value),
            "checkpoint": lambda: ctx.checkpoint(value), "step": lambda: ctx.step("deep", lambda: value),
            "output": lambda: ctx.output("deep", value), "chunk": lambda: ctx.stream(value),
        }
        refused = []
        for name, keep in ways.items():
            try:
                kept = keep()
                if asyncio.iscoroutine(kept):
                    await kept
            except TypeError:
                refused.append(name)
        return refused

    @app.job()
    async def checkpointer(ctx: RunContext, payload: Any) -> int:
        await ctx.checkpoint({"n": 1})
        await ctx.checkpoint({"n": 2})
        return 2


@dataclass
class ApiNode:
    """A running node with its API, and helpers to call it as a project."""

    app: Baton
    node: Supervisor
    url: str
    keys: dict[str, str]
    http: aiohttp.ClientSession
    gates: Gates

    def auth(self, project: str | None = "alpha") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[project]}"} if project else {}

    async def call(self, method: str, path: str, project: str | None = "alpha", json: Any = None,
                   params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                   data: bytes | None = None) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, json=json, params=params, data=data,
                                     headers={**self.auth(project), **(headers or {})}) as resp:
            body = await resp.json() if is_json(resp.content_type) else await resp.text()
            return resp.status, body

    async def trigger(self, job: str, input: Any = None, project: str = "alpha", **options: Any) -> str:
        status, body = await self.call("POST", f"/v1/jobs/{job}/trigger", project, json={"input": input, **options})
        assert status in (200, 201), body
        return str(body["id"])

    async def run(self, run_id: str, project: str = "alpha", view: str | None = None) -> dict[str, Any]:
        status, body = await self.call("GET", f"/v1/runs/{run_id}", project, params={"view": view} if view else None)
        assert status == 200, body
        return dict(body)

    async def wait_status(self, run_id: str, statuses: set[str] | str | None = None, project: str = "alpha",
                          timeout: float = 15) -> dict[str, Any]:
        wanted = {statuses} if isinstance(statuses, str) else statuses or TERMINAL

        async def check() -> dict[str, Any] | None:
            run = await self.run(run_id, project, view="native")
            return run if run["status"] in wanted else None

        found: dict[str, Any] = await eventually(check, timeout, interval=0.02)
        return found


@pytest.fixture
def api_keys() -> dict[str, str]:
    """Plaintext keys of projects alpha, beta and default (the node only knows their hashes)."""
    return {"alpha": new_key(), "beta": new_key(), "default": new_key()}


@asynccontextmanager
async def serving(make_app: Any, api_keys: dict[str, str], **settings: Any) -> AsyncIterator[ApiNode]:
    """A node serving the API on a free port, with the test jobs (and ``settings`` changed)."""
    app = make_app(**api_settings(api_keys), **settings)
    gates = Gates()
    define_jobs(app, gates)
    async with serving_api(app) as (node, url, http):
        yield ApiNode(app, node, url, api_keys, http, gates)
        for event in gates.events.values():
            event.set()  # let handlers that still wait finish before the node drains


@pytest.fixture
async def api(make_app: Any, api_keys: dict[str, str]) -> AsyncIterator[ApiNode]:
    """A node serving the API on a free port, with the test jobs."""
    async with serving(make_app, api_keys) as node:
        yield node
