"""Fixtures of the dashboard's browser tests: a live node serving the API and the dashboard, jobs the
tests watch, and a headless Chromium driven by Playwright.

The browser is Debian's ``chromium`` (``./dev test`` installs it with apt-get when it can); Playwright's
own browser download is never used. Without chromium or the playwright package these tests skip, except
under ``CI=true``, where a missing browser is a failure: CI must not pass without running them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from actors.supervisor import Supervisor
from runtime import Baton, PermanentFailure, RunContext
from runtime.api import new_key
from tests.nodes import api_settings, serving_api

#: Chromium's flags for a headless run in a container (INFRA.md section 7)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: how long a browser-side expectation may take on a loaded 2-core machine
EXPECT_MS = 20_000


def chromium_path() -> str:
    """The chromium binary; skips the test (fails it under CI=true) when there is none."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        reason = "browser tests need Debian's chromium and the playwright package (./dev test installs them)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@dataclass
class Watch:
    """What the test jobs report to the test (they run in this process)."""

    cancelled: set[str] = field(default_factory=set)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    def event(self, table: dict[str, asyncio.Event], name: str) -> asyncio.Event:
        return table.setdefault(name, asyncio.Event())


def define_ui_jobs(app: Baton, watch: Watch) -> None:
    """The jobs the dashboard tests run."""

    @app.job(max_attempts=1)
    async def echo(ctx: RunContext, payload: Any) -> Any:
        ctx.log.info("echoing", size=len(str(payload)))
        return payload

    @app.job(max_attempts=1, timeout=60)
    async def ticker(ctx: RunContext, payload: Any) -> dict[str, int]:
        """Logs (and reports progress) every 200 ms for payload['ticks'] ticks."""
        ticks = int(payload["ticks"])
        for i in range(1, ticks + 1):
            await asyncio.sleep(0.2)
            ctx.log.info("tick %d", i, tick=i)
            ctx.progress(i, ticks, f"tick {i}")
        return {"ticks": ticks}

    @app.job(max_attempts=1, timeout=60)
    async def chatty(ctx: RunContext, payload: Any) -> int:
        """Writes payload['lines'] log lines and progress reports as fast as it can, in bursts."""
        lines = int(payload["lines"])
        for i in range(1, lines + 1):
            ctx.log.info("line %d", i)
            ctx.progress(i, lines)
            if i % 100 == 0:
                await asyncio.sleep(0.05)  # a flush between bursts: hundreds of events a second
        return lines

    @app.job(max_attempts=1, timeout=120)
    async def patient(ctx: RunContext, payload: Any) -> str:
        """Runs until canceled; records that it received the cancellation."""
        watch.event(watch.started, ctx.run_id).set()
        try:
            await asyncio.sleep(110)
        except asyncio.CancelledError:
            watch.cancelled.add(ctx.run_id)
            raise
        return "not canceled"

    @app.job(max_attempts=1)
    async def doomed(ctx: RunContext, payload: Any) -> None:
        ctx.log.error("cannot process %s", payload.get("n"))
        raise PermanentFailure(f"item {payload.get('n')} is malformed")

    @app.job(max_attempts=1, cron="0 3 * * *")
    async def nightly(ctx: RunContext, payload: Any) -> str:
        """A cron job (03:00 every day): the schedules page triggers it now."""
        return "report sent"

    @app.job(max_attempts=1, timeout=60)
    async def signalled(ctx: RunContext, payload: Any) -> Any:
        """Waits for the signal "go" and returns its data."""
        return await ctx.wait_for_signal("go", timeout=50)

    @app.job(max_attempts=1)
    async def recover(ctx: RunContext, payload: Any) -> str:
        """Fails until its gate opens (dead-lettered runs replay successfully afterwards)."""
        if not watch.event(watch.gates, "recover").is_set():
            raise RuntimeError("downstream unavailable")
        return "recovered"


@dataclass
class UiNode:
    """A live node serving the API and the dashboard, with keys of two projects."""

    app: Baton
    node: Supervisor
    url: str
    keys: dict[str, str]
    http: aiohttp.ClientSession
    watch: Watch

    async def trigger(self, job: str, input: Any = None, project: str = "alpha", **options: Any) -> str:
        async with self.http.post(f"{self.url}/v1/jobs/{job}/trigger", json={"input": input, **options},
                                  headers={"Authorization": f"Bearer {self.keys[project]}"}) as resp:
            body = await resp.json()
            assert resp.status in (200, 201), body
            return str(body["id"])

    async def trigger_batch(self, job: str, inputs: list[Any], project: str = "alpha") -> list[str]:
        """Trigger a run per input through POST /v1/runs/batch (1,000 per request)."""
        ids: list[str] = []
        for first in range(0, len(inputs), 1000):
            body = {"runs": [{"job": job, "input": i} for i in inputs[first:first + 1000]]}
            async with self.http.post(f"{self.url}/v1/runs/batch", json=body,
                                      headers={"Authorization": f"Bearer {self.keys[project]}"}) as resp:
                created = await resp.json()
                assert resp.status == 201, created
                ids.extend(r["id"] for r in created["runs"])
        return ids

    async def signal(self, run_id: str, name: str, data: Any = None, project: str = "alpha") -> None:
        """Send a run a signal (POST /v1/runs/{id}/signals); the run waiting for it gets it at once."""
        async with self.http.post(f"{self.url}/v1/runs/{run_id}/signals", json={"name": name, "data": data},
                                  headers={"Authorization": f"Bearer {self.keys[project]}"}) as resp:
            assert resp.status == 200, await resp.text()

    async def run(self, run_id: str, project: str = "alpha") -> dict[str, Any]:
        async with self.http.get(f"{self.url}/v1/runs/{run_id}",
                                 headers={"Authorization": f"Bearer {self.keys[project]}"}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            return dict(body)


@pytest.fixture
async def ui_node(make_app: Any) -> AsyncIterator[UiNode]:
    """A node serving the API (and /ui) on a free port, with keys of projects alpha (an operator project)
    and beta."""
    async with ui_node_of(make_app) as node:
        yield node


@contextlib.asynccontextmanager
async def ui_node_of(make_app: Any, **settings: Any) -> AsyncIterator[UiNode]:
    """The ui_node fixture's node, with these settings on top."""
    keys = {"alpha": new_key(), "beta": new_key()}
    # alpha may read the deployment-wide operator endpoints (queues, nodes, schedules); beta may not
    app = make_app(**api_settings(keys), api_operator_projects="alpha", **settings)
    watch = Watch()
    define_ui_jobs(app, watch)
    async with serving_api(app) as (node, url, http):
        yield UiNode(app, node, url, keys, http, watch)
        for gate in watch.gates.values():
            gate.set()  # let handlers that still wait finish before the node drains


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (Debian's), closed after the test."""
    path = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def signed_in_page(browser: Any, node: UiNode, project: str = "alpha", width: int = 1280,
                         height: int = 900, scheme: str = "light") -> Any:
    """A new browser context and page, signed in to the dashboard with ``project``'s key (in the colour
    ``scheme`` the system prefers: light or dark)."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": width, "height": height}, timezone_id="Europe/Paris",
                                        color_scheme=scheme)
    page = await context.new_page()
    page.set_default_timeout(EXPECT_MS)
    await page.goto(node.url + "/")
    await page.get_by_label("API key").fill(node.keys[project])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#project")).to_have_text(project, timeout=EXPECT_MS)
    return page
