"""The dashboard in a real browser (Debian's Chromium through Playwright) against a live node with real
runs: sign-in, the runs table and its filters, a live run page, actions, the dead-letter queue, project
isolation and CSRF protection."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from runtime.api.ui import ASSETS_DIR
from runtime.cron import REFUSED
from tests.nodes import eventually
from tests.ui.conftest import EXPECT_MS, UiNode, signed_in_page


def _page_constant(file: str, name: str) -> int:
    """A number a dashboard script defines (``const NAME = 123;``)."""
    found = re.search(rf"const {name} = (\d+);", (ASSETS_DIR / file).read_text())
    assert found, f"{file} defines no {name}"
    return int(found[1])


#: how often the dead-letter page reloads itself
DLQ_REFRESH_MS = _page_constant("page_dlq.js", "REFRESH_MS")


async def nav(page: Any, name: str) -> None:
    """Go to a page through the navigation bar (other links may carry the same words)."""
    await page.get_by_role("navigation", name="Pages").get_by_role("link", name=name, exact=True).click()


async def test_sign_in_see_overview_filter_runs_and_open_a_run(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given finished runs of two jobs
    done = [await ui_node.trigger("echo", {"n": i}, tags=["batch-a"]) for i in range(3)]
    failed = await ui_node.trigger("doomed", {"n": 7})
    for run_id in [*done, failed]:
        await ui_node.app.wait_for(run_id, 20)
    # When a user signs in with the project's key
    page = await signed_in_page(browser, ui_node)
    # Then the overview shows the queue with its finished runs, this node and the cron schedule
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    queue_row = page.locator("table.queues tbody tr", has=page.get_by_role("link", name="default", exact=True))
    await expect(queue_row).to_contain_text("4 in the hour")
    await expect(page.locator("#h-nodes + div")).to_contain_text(ui_node.app.settings.node_id)
    await expect(page.locator("#h-sched + *")).to_contain_text("0 3 * * *")
    # And the key is in no URL and no cookie readable by the page
    assert ui_node.keys["alpha"] not in page.url
    assert await page.evaluate("document.cookie") == ""
    # When they open the runs page and filter by status
    await nav(page, "Runs")
    rows = page.locator("table.runs tbody tr")
    await expect(rows).to_have_count(4)
    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Apply").click()
    # Then only the failed run is listed, and the filter is in the page's URL
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(failed)
    assert "status=failed" in page.url
    # When they filter by tag instead
    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Tag").fill("batch-a")
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(3)
    # And open one run
    await page.get_by_role("link", name=done[0], exact=True).click()
    # Then its page shows its status, input and log line
    await expect(page.get_by_role("heading", name=re.compile(re.escape(done[0])))).to_be_visible()
    await expect(page.locator(".page-head .badge").first).to_have_text("completed")
    await expect(page.locator("ol.logs")).to_contain_text("echoing")
    # When they search the failed run's id
    await nav(page, "Runs")
    await page.get_by_label("Search").fill(failed)
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("doomed")
    await expect(page.locator(".pager")).not_to_contain_text("filters do not apply")
    # And searched by id with a filter the run does not match, it is shown, and the page says why
    await page.get_by_label("Tag").fill("batch-a")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator(".pager")).to_contain_text("found by its id: the other filters do not apply to it")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("doomed")


async def test_run_page_follows_logs_progress_and_status_live(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given the runs page is open
    page = await signed_in_page(browser, ui_node)
    await page.goto(ui_node.url + "/ui/#/runs")
    # When a run that logs every 200 ms starts
    run_id = await ui_node.trigger("ticker", {"ticks": 25})
    # Then it appears in the table without a reload
    await expect(page.get_by_role("link", name=run_id, exact=True)).to_be_visible(timeout=EXPECT_MS)
    await page.get_by_role("link", name=run_id, exact=True).click()
    # And on its page, while it executes, log lines and progress arrive
    await expect(page.locator(".page-head .badge").first).to_have_text("executing", timeout=EXPECT_MS)
    logs = page.locator("ol.logs li")
    await expect(logs.filter(has_text="tick 3")).to_have_count(1, timeout=EXPECT_MS)
    progress = page.locator("#run-progress")
    await expect(progress).to_be_visible()
    seen_while_running = int(await progress.get_attribute("value") or "0")
    assert (await ui_node.run(run_id))["status"] == "executing"  # it really was still running
    assert 0 < seen_while_running < 25
    # Then it turns completed without a reload, with every line shown once
    await expect(page.locator(".page-head .badge").first).to_have_text("completed", timeout=EXPECT_MS)
    await expect(page.locator("ol.logs .log-msg", has_text=re.compile(r"^tick \d+$"))).to_have_count(25)
    await expect(progress).to_have_attribute("value", "25")
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload


async def test_cancel_an_executing_run_from_its_page(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given an executing run, its page open
    run_id = await ui_node.trigger("patient", {})
    await eventually(lambda: ui_node.watch.event(ui_node.watch.started, run_id).is_set())
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs/{run_id}")
    await expect(page.locator(".page-head .badge").first).to_have_text("executing")
    # When the user clicks Cancel and confirms
    await page.get_by_role("button", name="Cancel", exact=True).click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Cancel this run?")
    await dialog.get_by_role("button", name="Cancel", exact=True).last.click()
    # Then the page shows the result, the handler received the cancellation and the run ends canceled
    await expect(page.locator("p.result")).to_contain_text("cancel requested")
    await eventually(lambda: run_id in ui_node.watch.cancelled)
    await expect(page.locator(".page-head .badge").first).to_have_text("canceled", timeout=EXPECT_MS)
    # (and no longer says a cancel is requested: it is done)
    await expect(page.locator(".page-head .badge")).to_have_count(1)


async def test_replay_three_dead_letters_in_bulk(ui_node: UiNode, browser: Any, monkeypatch: Any) -> None:
    from playwright.async_api import expect

    # (a server that takes two ids per bulk call: the page splits a larger selection into calls it takes)
    monkeypatch.setattr("runtime.api.ui.BULK_IDS_MAX", 2)
    # Given three dead-lettered runs (their downstream was unavailable) and one more
    dead = [await ui_node.trigger("recover", {"n": i}) for i in range(4)]
    for run_id in dead:
        assert (await ui_node.app.wait_for(run_id, 20)).status == "dead_letter"
    ui_node.watch.event(ui_node.watch.gates, "recover").set()  # the downstream is back
    # When the user selects three of them on the DLQ page and replays them
    page = await signed_in_page(browser, ui_node)
    await nav(page, "Dead letters")
    await expect(page.locator("table.dlq tbody").get_by_role("checkbox")).to_have_count(4)
    await expect(page.locator("table.dlq")).to_contain_text("downstream unavailable")
    for run_id in dead[:3]:
        await page.get_by_label(f"Select {run_id}").check()
    await expect(page.get_by_text("3 selected")).to_be_visible()
    calls: list[list[str]] = []
    page.on("request", lambda r: calls.append(r.post_data_json["run_ids"]) if r.url.endswith("/bulk-dlq-replay")
            else None)
    await page.get_by_role("button", name="Replay selected").click()
    await page.get_by_role("dialog").get_by_role("button", name="Replay").click()
    # Then the page reports three replays, made in two calls, and links the new runs
    await expect(page.locator("div.result")).to_contain_text("Replay: 3 done, 0 failed")
    assert [len(ids) for ids in calls] == [2, 1] and sorted(i for ids in calls for i in ids) == sorted(dead[:3])
    # And each of the three has a replay that completes; the fourth was left alone
    replayed = []
    for run_id in dead:
        replayed.append((await ui_node.run(run_id)).get("replayed_as"))
    assert all(replayed[:3]) and replayed[3] is None
    for new_id in replayed[:3]:
        await expect(page.locator("div.result").get_by_role("link", name=new_id)).to_be_visible()
    # When all four are selected and replayed again
    await expect(page.get_by_label(f"Select {dead[0]}")).not_to_be_checked()
    await page.get_by_label("Select all shown").check()
    await page.get_by_role("button", name="Replay selected").click()
    # Then the three replayed already are left out (a dead letter is replayed once), and said to be
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("3 selected were replayed already")
    await dialog.get_by_role("button", name="Replay").click()
    await expect(page.locator("div.result")).to_contain_text("Replay: 1 done, 0 failed, 3 already replayed (left out).")
    assert (await ui_node.run(dead[3])).get("replayed_as")
    # And replayed dead letters can still be deleted
    await expect(page.get_by_label(f"Select {dead[0]}")).not_to_be_checked()
    await page.get_by_label("Select all shown").check()
    await page.get_by_role("button", name="Delete selected").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(page.locator("div.result")).to_contain_text("Delete: 4 done, 0 failed.")
    await expect(page.get_by_text("The dead-letter queue is empty.")).to_be_visible()
    for new_id in replayed[:3]:
        assert (await ui_node.app.wait_for(new_id, 20)).status == "completed"


async def test_the_dead_letter_page_shows_new_dead_letters_without_taking_a_selection_away(
        ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given one dead-lettered run, and the dead-letter page open
    first = await ui_node.trigger("recover", {"n": 0})
    assert (await ui_node.app.wait_for(first, 20)).status == "dead_letter"
    page = await signed_in_page(browser, ui_node)
    await nav(page, "Dead letters")
    boxes = page.locator("table.dlq tbody").get_by_role("checkbox")
    await expect(boxes).to_have_count(1)
    # When another run is dead-lettered
    second = await ui_node.trigger("recover", {"n": 1})
    assert (await ui_node.app.wait_for(second, 20)).status == "dead_letter"
    # Then the page lists it by itself, without a reload
    await expect(page.get_by_label(f"Select {second}")).to_be_visible(timeout=EXPECT_MS)
    await expect(boxes).to_have_count(2)
    # When the user has selected one and a third is dead-lettered
    await page.get_by_label(f"Select {first}").check()
    third = await ui_node.trigger("recover", {"n": 2})
    assert (await ui_node.app.wait_for(third, 20)).status == "dead_letter"
    # Then the list stays as the user sees it, selection and all, for longer than a reload would take
    await page.wait_for_timeout(DLQ_REFRESH_MS + 1000)
    await expect(boxes).to_have_count(2)
    await expect(page.get_by_label(f"Select {first}")).to_be_checked()
    # And once nothing is selected, the third shows up
    await page.get_by_label(f"Select {first}").uncheck()
    await expect(page.get_by_label(f"Select {third}")).to_be_visible(timeout=EXPECT_MS)
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1


async def test_another_projects_session_sees_none_of_the_first_projects_runs(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given runs of project alpha (one still executing, one dead-lettered)
    alpha_done = await ui_node.trigger("echo", {"secret": "alpha"})
    alpha_live = await ui_node.trigger("patient", {})
    alpha_dead = await ui_node.trigger("recover", {"n": 1})
    await ui_node.app.wait_for(alpha_done, 20)
    await ui_node.app.wait_for(alpha_dead, 20)
    beta_run = await ui_node.trigger("echo", {"mine": True}, project="beta")
    await ui_node.app.wait_for(beta_run, 20)
    # When project beta signs in
    page = await signed_in_page(browser, ui_node, "beta")
    # Then its runs page lists only its own run
    await nav(page, "Runs")
    rows = page.locator("table.runs tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(beta_run)
    # And its dead-letter page is empty
    await nav(page, "Dead letters")
    await expect(page.get_by_text("The dead-letter queue is empty.")).to_be_visible()
    # And alpha's run pages and live streams answer as if the runs did not exist
    await page.goto(f"{ui_node.url}/ui/#/runs/{alpha_done}")
    await expect(page.get_by_role("heading", name="Run not found")).to_be_visible()
    for run_id in (alpha_done, alpha_live, alpha_dead):
        for path in (f"/v1/runs/{run_id}", f"/v1/runs/{run_id}/events", f"/v1/runs/{run_id}/stream",
                     f"/v1/runs/{run_id}/stream/chunks"):
            status = await page.evaluate("async (p) => (await fetch(p)).status", path)
            assert status == 404, (path, status)
    listed = await page.evaluate("async () => (await (await fetch('/v1/runs?limit=100')).json()).data.map(r => r.id)")
    assert listed == [beta_run]
    await ui_node.http.delete(f"{ui_node.url}/v1/runs/{alpha_live}",
                              headers={"Authorization": f"Bearer {ui_node.keys['alpha']}"})


async def test_an_action_without_the_csrf_token_is_refused(ui_node: UiNode, browser: Any) -> None:
    # Given a signed-in page and a queued-forever (executing) run
    run_id = await ui_node.trigger("patient", {})
    await eventually(lambda: ui_node.watch.event(ui_node.watch.started, run_id).is_set())
    page = await signed_in_page(browser, ui_node)
    # When the page's session cookie is sent with a cancel but without the CSRF token
    refused = await page.evaluate(
        "async (p) => { const r = await fetch(p, {method: 'DELETE'}); return [r.status, (await r.json()).code]; }",
        f"/v1/runs/{run_id}")
    # Then it is refused and the run keeps executing
    assert refused == [403, "csrf_failed"]
    assert (await ui_node.run(run_id))["status"] == "executing"
    # And a wrong token is refused too, while the session's own token works
    wrong = await page.evaluate(
        "async (p) => (await fetch(p, {method: 'DELETE', headers: {'X-CSRF-Token': 'forged'}})).status",
        f"/v1/runs/{run_id}")
    assert wrong == 403
    ok = await page.evaluate(
        """async (p) => {
             const s = await (await fetch('/ui/session')).json();
             return (await fetch(p, {method: 'DELETE', headers: {'X-CSRF-Token': s.csrf_token}})).status;
           }""", f"/v1/runs/{run_id}")
    assert ok == 200
    await eventually(lambda: run_id in ui_node.watch.cancelled)


async def test_sign_out_ends_the_session(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given a signed-in page
    page = await signed_in_page(browser, ui_node)
    # When the user signs out
    await page.get_by_role("button", name="Sign out").click()
    # Then the sign-in form is back and the API no longer accepts the browser
    await expect(page.get_by_label("API key")).to_be_visible()
    assert await page.evaluate("async () => (await fetch('/v1/runs')).status") == 401
    await page.reload()
    await expect(page.get_by_label("API key")).to_be_visible()


async def test_schedules_page_triggers_a_schedule_now(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given the schedules page of an operator project
    page = await signed_in_page(browser, ui_node)
    await nav(page, "Schedules")
    row = page.locator("table.schedules tbody tr").filter(has_text="nightly")
    await expect(row).to_contain_text("0 3 * * *")
    # When the user triggers the nightly schedule now
    await row.get_by_role("button", name="Trigger now").click()
    await page.get_by_role("dialog").get_by_role("button", name="Trigger now").click()
    # Then the page names the run it started, and that run completes
    result = page.locator("p.result")
    await expect(result).to_contain_text("triggered: cron.")
    run_id = (await result.inner_text()).split("triggered: ", 1)[1].strip()
    assert (await ui_node.app.wait_for(run_id, 20)).status == "completed"
    # When it is paused from the page
    await row.get_by_role("button", name="Pause").click()
    await page.get_by_role("dialog").get_by_role("button", name="Pause").click()
    # Then it shows paused
    await expect(row.locator(".badge")).to_have_text("paused")
    # When a schedule that cannot fire is stored beside it (by hand: the API refuses one)
    await ui_node.app.redis.hset(ui_node.app.keys.schedules, "garbled", b"{not json")
    try:
        await page.reload()
        # Then both are listed, that one saying why it cannot fire, with no action to trigger it
        broken = page.locator("table.schedules tbody tr").filter(has_text="garbled")
        await expect(broken.locator(".error")).to_contain_text("this schedule cannot fire")
        await expect(broken.get_by_role("button", name="Trigger now")).to_have_count(0)
        await expect(row).to_contain_text("0 3 * * *")
        await nav(page, "Overview")
        await expect(page.get_by_text("cannot fire (see Schedules)")).to_be_visible()
        # When the nightly schedule's last tick was refused (as the scheduler notes it: its job gone, say)
        await ui_node.app.redis.hset(ui_node.app.keys.schedule_state("nightly"), REFUSED, "job retired is not defined")
        await nav(page, "Schedules")
        # Then its row says so beside its next time, and it can still be triggered
        await expect(row.locator(".error")).to_contain_text("last tick refused: job retired is not defined")
        await expect(row.get_by_role("button", name="Trigger now")).to_have_count(1)
        await nav(page, "Overview")
        await expect(page.get_by_text("last tick refused (see Schedules)")).to_be_visible()
    finally:
        await ui_node.app.delete_schedule("garbled")
    # And a project that is not an operator sees no schedules
    other = await signed_in_page(browser, ui_node, "beta")
    await nav(other, "Schedules")
    await expect(other.get_by_text("sign in with a key of an operator project")).to_be_visible()


async def test_live_updates_are_coalesced_under_a_burst(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given the runs page, open and live, counting the listing requests it makes
    page = await signed_in_page(browser, ui_node)
    listings: list[float] = []
    page.on("request", lambda r: listings.append(time.monotonic()) if "/v1/runs?" in r.url else None)
    await nav(page, "Runs")
    await expect(page.locator("table.runs tbody tr")).to_have_count(1)  # "No runs match."
    # When a burst of 2,000 runs arrives in about a second and a half and executes
    started = time.monotonic()
    await ui_node.trigger_batch("echo", [{"n": n} for n in range(2000)])
    await expect(page.locator("table.runs tbody tr")).to_have_count(50, timeout=EXPECT_MS)
    await asyncio.sleep(6)
    elapsed = time.monotonic() - started
    # Then the page asked for the list at most once per refresh interval (2 s), not once per run
    during = [t for t in listings if t >= started]
    assert len(during) <= elapsed / 2 + 2, (len(during), elapsed)
    # Given a run that writes thousands of events a second, its page open
    run_id = await ui_node.trigger("chatty", {"lines": 3000})
    reloads: list[str] = []
    page.on("request", lambda r: reloads.append(r.url) if r.url.endswith(f"/v1/runs/{run_id}") else None)
    opened = time.monotonic()
    await page.goto(f"{ui_node.url}/ui/#/runs/{run_id}")
    # Then the page ends completed with the last lines shown, the timeline capped at 1,000 rows
    await expect(page.locator(".page-head .badge").first).to_have_text("completed", timeout=EXPECT_MS)
    await expect(page.locator("ol.logs .log-msg").last).to_have_text("line 3000", timeout=EXPECT_MS)
    assert await page.locator("ol.timeline li").count() <= 1000
    # And the run itself was re-read about once a second, not once per event
    assert len(reloads) <= (time.monotonic() - opened) + 3, len(reloads)


async def test_usable_at_phone_width_and_with_labelled_controls(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given a run, and the dashboard on a phone-width screen
    run_id = await ui_node.trigger("echo", {"n": 1}, tags=["phone"])
    await ui_node.app.wait_for(run_id, 20)
    page = await signed_in_page(browser, ui_node, width=390, height=844)
    for hash_ in ("#/overview", "#/runs", f"#/runs/{run_id}", "#/dlq", "#/schedules"):
        await page.goto(f"{ui_node.url}/ui/{hash_}")
        await expect(page.locator("#page h1")).to_be_visible()
        await page.wait_for_timeout(300)
        # Then nothing is wider than the screen (tables scroll inside their own box)
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (hash_, overflow)
        # And every control has an accessible name (a label, aria-label or its text)
        unnamed = await page.evaluate("""() => [...document.querySelectorAll('input, select, button, a[href]')]
            .filter(el => el.offsetParent !== null)
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
            .map(el => el.outerHTML.slice(0, 80))""")
        assert unnamed == [], (hash_, unnamed)
    # And the runs page is usable from the keyboard: tab to the search box, type, Enter filters
    await page.goto(f"{ui_node.url}/ui/#/runs")
    await expect(page.locator("table.runs tbody tr")).to_have_count(1)
    await page.get_by_label("Search").focus()
    await page.keyboard.type("no-such-key")
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("No runs match.")).to_be_visible()
    # And times are shown in the viewer's time zone (Europe/Paris here) with a relative age
    cell = page.locator("time").first
    await page.get_by_label("Search").fill("")
    await page.keyboard.press("Enter")
    await expect(cell).to_contain_text("ago")
    iso = await cell.get_attribute("datetime")
    shown = await cell.inner_text()
    local = await page.evaluate("(iso) => new Date(iso).toLocaleString(undefined, {timeZone: 'Europe/Paris', "
                                "dateStyle: 'short', timeStyle: 'medium'})", iso)
    assert shown.startswith(local), (shown, local)
