"""The dashboard's details an outside user tripped on, each in a real browser: the signed-out page shows
the sign-in form alone, a long value never widens the page, Clear empties filters a bookmark set, the live
timeline shows every event type once and says a reschedule's time in the viewer's zone, an action's success
after a failure reads as a success, and a run page says when it stops updating (Redis not answering) and
recovers by itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.chaos.proxy import FaultProxy
from tests.nodes import eventually
from tests.ui.conftest import EXPECT_MS, UiNode, signed_in_page, ui_node_of


async def test_signed_out_the_page_shows_the_sign_in_form_alone(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given the dashboard opened with no session
    page = await (await browser.new_context()).new_page()
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(ui_node.url + "/")
    # Then it shows the sign-in form, and neither the pages' navigation nor a sign-out button
    await expect(page.get_by_label("API key")).to_be_visible(timeout=EXPECT_MS)
    # (and the browser logged no error: asking whether it is signed in is no failed request)
    assert console_errors == []
    nav = page.get_by_role("navigation", name="Pages")
    sign_out = page.get_by_role("button", name="Sign out")
    await expect(nav).to_be_hidden()
    await expect(sign_out).to_be_hidden()
    # When the user signs in, Then both show; and once they sign out, both are gone again
    await page.get_by_label("API key").fill(ui_node.keys["alpha"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(nav).to_be_visible(timeout=EXPECT_MS)
    await sign_out.click()
    await expect(page.get_by_label("API key")).to_be_visible(timeout=EXPECT_MS)
    await expect(nav).to_be_hidden()
    await expect(sign_out).to_be_hidden()
    assert console_errors == []


@pytest.mark.parametrize("width", [1280, 390])
async def test_a_long_value_wraps_inside_its_card(ui_node: UiNode, browser: Any, width: int) -> None:
    from playwright.async_api import expect

    # Given a run whose input, output and tags hold long strings without a space
    long = {"long": "z" * 20_000, "key": "k" * 1000}
    run_id = await ui_node.trigger("echo", long, tags=["t" * 120])
    await ui_node.app.wait_for(run_id, 20)
    # When its page is opened, every value folded open
    page = await signed_in_page(browser, ui_node, width=width)
    await page.goto(f"{ui_node.url}/ui/#/runs/{run_id}")
    await expect(page.locator(".page-head .badge").first).to_have_text("completed")
    await page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    # Then the page is no wider than the window: the values wrap inside their cards
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, scroll_width


async def runs_page_over_two_runs(ui_node: UiNode, browser: Any, filters: str = "") -> tuple[Any, tuple[str, str]]:
    """A signed-in page on the runs page (``filters``: its query), once a failed and a completed run ended."""
    failed = await ui_node.trigger("doomed", {"n": 1})
    done = await ui_node.trigger("echo", {"n": 1})
    for run_id in (failed, done):
        await ui_node.app.wait_for(run_id, 20)
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs{filters}")
    return page, (failed, done)


async def test_clear_empties_the_filters_a_bookmark_set(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given finished runs of two jobs, and the runs page opened from a bookmark that filters them
    page, _runs = await runs_page_over_two_runs(ui_node, browser, "?status=failed&job=doomed")
    rows = page.locator("table.runs tbody tr")
    await expect(rows).to_have_count(1)
    # When the user clicks Clear
    await page.get_by_role("button", name="Clear").click()
    # Then every filter is empty, the URL holds none, and both runs are listed
    await expect(page.get_by_label("Status")).to_have_value("")
    await expect(page.get_by_label("Job")).to_have_value("")
    await expect(rows).to_have_count(2)
    assert page.url.endswith("#/runs"), page.url


async def test_the_live_timeline_shows_every_event_type_once(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given a run waiting for a signal, its page open
    run_id = await ui_node.trigger("signalled", {})
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs/{run_id}")
    await expect(page.locator(".page-head .badge").first).to_have_text("waiting", timeout=EXPECT_MS)
    # When the signal is sent
    await ui_node.signal(run_id, "go", 7)
    # Then its event arrives in the timeline without a reload, and the run completes
    timeline = page.locator("ol.timeline li")
    await expect(timeline.and_(page.locator("[data-type='signal']"))).to_have_count(1, timeout=EXPECT_MS)
    await expect(page.locator(".page-head .badge").first).to_have_text("completed", timeout=EXPECT_MS)
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
    # and each row names its type once ("status" then "completed", not "status status completed")
    for row in await timeline.all():
        kind = await row.get_attribute("data-type")
        message = await row.locator(".ev-msg").inner_text()
        assert not message.startswith(f"{kind} "), (kind, message)


async def test_an_actions_success_after_a_failure_reads_as_a_success(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given a delayed run's page, and an action that failed (a delay past the API's bound of a year; the form
    # itself refuses a negative one)
    run_id = await ui_node.trigger("echo", {}, delay=600)
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs/{run_id}")
    await expect(page.locator(".page-head .badge").first).to_have_text("delayed")
    await page.get_by_role("button", name="Reschedule").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Delay (seconds)").fill("40000000")
    await dialog.get_by_role("button", name="Reschedule").click()
    result = page.locator("p.result")
    await expect(result).to_contain_text("Reschedule failed")
    await expect(result).to_have_class("result error")
    # When another action then succeeds
    await page.get_by_role("button", name="Debug mode on").click()
    await page.get_by_role("dialog").get_by_role("button", name="Debug mode on").click()
    # Then its message is shown as a success, not in the error box
    await expect(result).to_contain_text("Debug mode on: debug mode is on")
    await expect(result).to_have_class("result")


async def test_a_run_page_says_it_stopped_updating_while_redis_does_not_answer(
        make_app: Any, proxy: FaultProxy, browser: Any) -> None:
    from playwright.async_api import expect

    # Given a node that reaches Redis through a proxy, answering requests within 5 s, and an executing
    # run's page open
    async with ui_node_of(make_app, redis_url=proxy.url, api_request_timeout_s=5.0) as node:
        run_id = await node.trigger("patient", {})
        page = await signed_in_page(browser, node)
        await page.goto(f"{node.url}/ui/#/runs/{run_id}")
        await expect(page.locator(".page-head .badge").first).to_have_text("executing", timeout=EXPECT_MS)
        await expect(page.locator(".live-note")).to_have_text("live")
        stale = page.locator(".stale-note")
        await expect(stale).to_be_empty()
        # When Redis stops answering (nothing closed: the run's stream just goes quiet)
        proxy.blackhole()
        try:
            # Then the page says it is not updating, and why, instead of claiming to be live: first that
            # no answer came (before the API gives up waiting), then the API's answer
            await expect(stale).to_contain_text("Not updating: no answer for 3 s", timeout=EXPECT_MS)
            await expect(page.locator(".live-note")).to_be_hidden()
            await expect(stale).to_contain_text("unavailable")
            await expect(page.locator(".live-note")).to_be_hidden()
        finally:
            proxy.heal()
        # And once Redis answers again, the note goes and the page is live again, without a reload
        await expect(stale).to_be_empty(timeout=EXPECT_MS)
        await expect(page.locator(".live-note")).to_have_text("live")
        assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
        # And the runs list and the overview say so too, before the API's answer (5 s here) comes
        for hash_, notice in (("#/runs", ".pager"), ("#/overview", "#page > p.muted")):
            await page.goto(f"{node.url}/ui/{hash_}")
            await expect(page.locator(notice)).not_to_contain_text("Not updating")
            proxy.blackhole()
            try:
                await expect(page.locator(notice)).to_contain_text("Not updating: no answer for 3 s",
                                                                   timeout=EXPECT_MS)
            finally:
                proxy.heal()
        async with node.http.delete(f"{node.url}/v1/runs/{run_id}",
                                    headers={"Authorization": f"Bearer {node.keys['alpha']}"}) as resp:
            assert resp.status in (200, 202), await resp.text()


async def test_filters_change_the_list_only_when_applied_and_their_times_carry_a_zone(
        ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given finished runs of two jobs, on the runs page (live)
    page, (_failed, done) = await runs_page_over_two_runs(ui_node, browser)
    rows = page.locator("table.runs tbody tr")
    await expect(rows).to_have_count(2)
    # (each page and run names itself in the tab)
    await expect(page).to_have_title("Runs · Baton")
    # When a filter is typed but not applied, and the list refreshes itself meanwhile
    listed: list[str] = []
    page.on("request", lambda r: listed.append(r.url) if "/v1/runs?" in r.url else None)
    await page.get_by_label("Job").fill("no-such-job")
    listed.clear()
    await eventually(lambda: listed, timeout=10)
    # Then the refresh asked with the filters in force, and the list is as it was
    assert all("no-such-job" not in url for url in listed), listed
    await expect(rows).to_have_count(2)
    # When a time filter is applied
    await page.get_by_label("Job").fill("")
    await page.get_by_label("Created after").fill("2020-01-01T00:00")
    await page.get_by_role("button", name="Apply").click()
    # Then the page's URL holds it with a zone (another viewer's zone reads it as the same moment): the
    # viewer is in Paris (signed_in_page), one hour ahead of UTC in winter
    await expect(page).to_have_url(re.compile(r"created_after=2019-12-31T23%3A00%3A00\.000Z"))
    await expect(rows).to_have_count(2)
    # and a run's page names its run in the tab and its times' zone
    await page.get_by_role("link", name=done, exact=True).click()
    await expect(page).to_have_title(f"Run {done} · Baton")
    assert re.search(r"(UTC|GMT)", await page.locator("time").first.inner_text()), \
        await page.locator("time").first.inner_text()


@pytest.mark.parametrize("bad_id", ["A" * 5000, "%E0%A4%A"], ids=["too-long", "bad-escape"])
async def test_a_run_id_no_run_can_have_reads_as_not_found(ui_node: UiNode, browser: Any, bad_id: str) -> None:
    from playwright.async_api import expect

    # When the user opens a run page whose id the API refuses outright, or that is no valid escape
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs/{bad_id}")
    # Then it says no such run, and the page stays as wide as the window
    await expect(page.get_by_role("heading", name="Run not found")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_a_filter_the_api_refuses_is_shown_and_not_asked_again(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # When the runs page is opened from a URL with a status no run has
    page = await signed_in_page(browser, ui_node)
    listed: list[str] = []
    page.on("request", lambda r: listed.append(r.url) if "/v1/runs?" in r.url else None)
    await page.goto(f"{ui_node.url}/ui/#/runs?status=bogus")
    # Then the control shows it, the API's refusal is on the page, and the list is not asked again and again
    await expect(page.get_by_label("Status")).to_have_value("bogus")
    await expect(page.locator("#page p.error")).to_contain_text("bogus")
    asked = len(listed)
    await page.wait_for_timeout(5000)  # (two live refreshes' time: none may go out)
    assert len(listed) == asked == 1, listed
    # while Apply with a status it takes asks again, and lists
    await page.get_by_label("Status").select_option("completed")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#page p.error")).to_have_count(0)
    # And a day its month does not have is refused too (the browser's Date rolled it to March 2nd, listing runs)
    await page.goto(f"{ui_node.url}/ui/#/runs?created_after=2026-02-30T00:00")
    await expect(page.locator("#page p.error")).to_contain_text("created_after")


async def test_an_unknown_page_says_so_in_its_title_and_takes_the_focus(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # When the user goes from a known page to one the dashboard does not have
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs")
    await expect(page).to_have_title("Runs · Baton")
    await page.goto(f"{ui_node.url}/ui/#/nosuch")
    # Then the tab, the focus and the navigation say so (the last page's are not kept)
    await expect(page).to_have_title("No such page · Baton")
    await expect(page.locator("#page p.error")).to_be_focused()
    await expect(page.locator("#nav a[aria-current]")).to_have_count(0)


async def test_a_reschedule_in_the_timeline_says_its_time_as_the_page_says_every_time(
        ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given a delayed run's page, in a browser whose time zone is not UTC (Paris: GMT+1 in winter, the
    # fixture's)
    run_id = await ui_node.trigger("echo", {}, delay=600)
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs/{run_id}")
    await expect(page.locator(".page-head .badge").first).to_have_text("delayed", timeout=EXPECT_MS)
    # When it is rescheduled
    await page.get_by_role("button", name="Reschedule").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Delay (seconds)").fill("1200")
    await dialog.get_by_role("button", name="Reschedule").click()
    # Then its timeline entry names the new time as a <time> in the viewer's zone, with its age, as every
    # other time on the page (it read "to 2026-12-07T10:20:00.000Z")
    row = page.locator("ol.timeline li[data-type='rescheduled']")
    await expect(row).to_have_count(1, timeout=EXPECT_MS)
    run = await ui_node.app.get_run(run_id)
    assert run is not None and run.scheduled_at_ms is not None
    when = row.locator(".ev-msg time")
    await expect(when).to_have_attribute("datetime", datetime.fromtimestamp(run.scheduled_at_ms / 1000, UTC)
                                         .isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    text = await row.locator(".ev-msg").inner_text()
    assert text.startswith("to ") and re.search(r"GMT\+[12]\b", text) and "in 20 min" in text and "Z" not in text, text
