"""Regenerate the dashboard's screenshots in docs/ui/ (shown in the README).

    python -m tests.ui.screenshots            # needs Debian's chromium and the playwright package

Starts its own Redis server and a node with a few example jobs, makes runs of every kind (completed,
failed, dead-lettered, a parent with children, an AI run with usage, tool calls and streamed chunks, a
run still executing), then takes each page at 1280 px and the runs and run pages at phone width.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

from runtime import Baton, PermanentFailure, RunContext, Settings
from runtime.api import new_key
from tests.nodes import api_settings, serving_api
from tests.servers import RedisProcess
from tests.ui.conftest import CHROMIUM_ARGS

OUT = Path(__file__).resolve().parents[2] / "docs" / "ui"


def define_jobs(app: Baton, hold: asyncio.Event) -> None:
    """Example jobs whose runs fill the pages."""

    @app.job(queue="emails", max_attempts=3, cron="0 8 * * 1-5")
    async def send_digest(ctx: RunContext, payload: Any) -> dict[str, Any]:
        ctx.log.info("sending digest to %s", payload.get("to", "team"))
        return {"sent": True}

    @app.job(queue="reports", max_attempts=2, timeout=60)
    async def build_report(ctx: RunContext, payload: Any) -> dict[str, Any]:
        async def fetch(part: str) -> dict[str, Any]:
            await asyncio.sleep(0.05)
            return {"part": part, "rows": 120}

        parts = ["sales", "refunds", "stock"]
        for i, part in enumerate(parts, 1):
            await ctx.step(f"fetch-{part}", fetch, part)
            ctx.log.info("fetched %s", part, rows=120)
            ctx.progress(i, len(parts) + 1, f"{part} fetched")
        ctx.set_metadata(region=payload.get("region", "eu"), rows=360)
        ctx.add_tags("finance")
        pages = await ctx.trigger_and_wait_many([("render_page", {"page": n}) for n in range(1, 4)])
        await ctx.checkpoint({"pages": len(pages)})
        ctx.log.warning("stock figures are a day old")
        ctx.progress(4, 4, "done")
        return {"pages": len(pages), "rows": 360}

    @app.job(queue="reports")
    async def render_page(ctx: RunContext, payload: Any) -> str:
        return f"page-{payload['page']}.pdf"

    @app.job(queue="ai", timeout=60)
    async def summarize(ctx: RunContext, payload: Any) -> str:
        ctx.record_usage("openai", "gpt-4o-mini", prompt_tokens=812, completion_tokens=96, cost_microusd=1830)
        ctx.record_tool_call("search_docs", {"q": payload["topic"]}, {"hits": 4}, duration_ms=38, status="ok")
        words = "Baton runs durable jobs on Redis and records every step .".split()
        for word in words:
            ctx.stream(word + " ")
            await asyncio.sleep(0.01)
        ctx.output("summary", {"text": " ".join(words)}, {"type": "object", "required": ["text"]})
        return " ".join(words)

    @app.job(queue="imports", max_attempts=1)
    async def import_csv(ctx: RunContext, payload: Any) -> None:
        ctx.log.error("row %d: bad date", payload["row"], column="created")
        raise ValueError(f"row {payload['row']}: cannot parse date '31/02'")

    @app.job(queue="imports", max_attempts=1)
    async def validate(ctx: RunContext, payload: Any) -> None:
        raise PermanentFailure("schema version 1 is no longer accepted")

    @app.job(queue="emails", timeout=600)
    async def long_sync(ctx: RunContext, payload: Any) -> None:
        for i in range(1, 1000):
            ctx.log.info("synced batch %d", i)
            ctx.progress(i, 40, f"batch {i}")
            if hold.is_set():
                return
            await asyncio.sleep(0.3)


async def make_runs(node_app: Baton) -> dict[str, str]:
    """Runs of every kind; returns the ids the pages are taken of."""
    ids: dict[str, str] = {}
    for i in range(8):
        await node_app.trigger("send_digest", {"to": f"team-{i}@example.com"}, tags=["daily"])
    ids["report"] = await node_app.trigger("build_report", {"region": "eu"}, tags=["monthly"])
    ids["ai"] = await node_app.trigger("summarize", {"topic": "durable jobs"})
    for row in (14, 87, 203):
        ids["dead"] = await node_app.trigger("import_csv", {"row": row})
    await node_app.trigger("validate", {"file": "old.csv"})
    for run_id in (ids["report"], ids["ai"], ids["dead"]):
        await node_app.wait_for(run_id, 30)
    ids["live"] = await node_app.trigger("long_sync", {"since": "2026-01-01"})
    return ids


async def shoot() -> list[Path]:
    from playwright.async_api import async_playwright, expect

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    server = RedisProcess().start()
    hold = asyncio.Event()
    key = new_key()
    settings = Settings(redis_url=server.url, prefix="shots", concurrency=10, metrics_port=0,
                        **api_settings({"default": key}))
    app = Baton(settings)
    define_jobs(app, hold)
    OUT.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        async with serving_api(app) as (_node, url, _http), async_playwright() as pw:
            ids = await make_runs(app)
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            for name, width, height in (("desktop", 1280, 860), ("phone", 390, 844)):
                context = await browser.new_context(viewport={"width": width, "height": height}, timezone_id="UTC",
                                                    device_scale_factor=1)
                page = await context.new_page()
                page.set_default_timeout(20_000)
                await page.goto(url + "/ui/")
                if name == "desktop":
                    written.append(await snap(page, "signin"))
                await page.get_by_label("API key").fill(key)
                await page.get_by_role("button", name="Sign in").click()
                await expect(page.locator("#project")).to_have_text("default")
                pages = [("overview", "#/overview", "table.queues"), ("runs", "#/runs", "table.runs tbody tr"),
                         ("run", f"#/runs/{ids['report']}", "ol.logs li"), ("run-ai", f"#/runs/{ids['ai']}", "h3"),
                         ("run-live", f"#/runs/{ids['live']}", "#run-progress"),
                         ("dlq", "#/dlq", "table.dlq tbody tr"), ("schedules", "#/schedules", "table.schedules")]
                if name == "phone":
                    pages = [p for p in pages if p[0] in ("runs", "run")]
                for shot, hash_, ready in pages:
                    await page.goto(f"{url}/ui/{hash_}")
                    await page.locator(ready).first.wait_for()
                    await page.wait_for_timeout(1500)  # let the coalesced refreshes settle
                    suffix = "" if name == "desktop" else "-phone"
                    written.append(await snap(page, shot + suffix, full=shot.startswith("run-") or shot == "run"))
                await context.close()
            await browser.close()
            hold.set()
    finally:
        await app.close()
        server.stop()
    return written


async def snap(page: Any, name: str, full: bool = False) -> Path:
    path = OUT / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full)
    return path


def main() -> int:
    for path in asyncio.run(shoot()):
        print(path.relative_to(OUT.parents[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
