"""What an operator reads on the dashboard, each found wrong once by an outside pass in a real browser: a
filter the API refuses leaves no rows that look like matches, a page of the run list is kept in the URL
(Back and reload return to it), the Status column stays in view at phone width, the dark scheme's
primary buttons are readable (WCAG contrast), and a search makes no failed request."""

from __future__ import annotations

import re
from typing import Any

from tests.ui.conftest import EXPECT_MS, UiNode, signed_in_page


async def test_a_refused_filter_empties_the_table_and_says_why_there(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given the runs page listing runs
    await ui_node.trigger("echo", {"n": 1})
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs")
    rows = page.locator("table.runs tbody tr")
    await expect(rows.first.locator("td.run-id")).to_be_visible(timeout=EXPECT_MS)
    # When a filter the API refuses is applied (a job name over its 100 characters)
    await page.get_by_label("Job").fill("j" * 101)
    await page.get_by_role("button", name="Apply").click()
    # Then the table holds the error alone, where the rows were: no earlier run reads as a match
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("p.error")).to_contain_text("job")
    await expect(page.locator("#page p.error")).to_have_count(1)
    await expect(page.locator("td.run-id")).to_have_count(0)
    # And the dead-letter page does the same with its own filters
    await page.goto(f"{ui_node.url}/ui/#/dlq")
    await page.get_by_label("Queue").fill("q" * 101)
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("table.runs tbody p.error")).to_contain_text("queue")
    # and keeps them in its URL, as the runs page does
    assert "queue=" + "q" * 101 in page.url, page.url


async def test_the_page_of_runs_one_was_on_is_kept_by_back_and_reload(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given more runs than a page holds (50)
    ids = await ui_node.trigger_batch("echo", [{"n": i} for i in range(60)])
    for run_id in (ids[0], ids[-1]):
        await ui_node.app.wait_for(run_id, 20)
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs?job=echo")
    info = page.locator(".pager p")
    await expect(info).to_contain_text("page 1", timeout=EXPECT_MS)
    # When the user goes to the second page and opens a run there
    await page.get_by_role("button", name="Older →").click()
    await expect(info).to_contain_text("page 2")
    second_page = set(await page.locator("td.run-id").all_inner_texts())
    assert "cursor=" in page.url and "job=echo" in page.url, page.url
    await page.locator("td.run-id a").first.click()
    await expect(page).to_have_url(re.compile(r"#/runs/[^?]+$"))
    # Then Back returns to the second page, with its runs
    await page.go_back()
    await expect(info).to_contain_text("page 2")
    assert set(await page.locator("td.run-id").all_inner_texts()) == second_page
    # And so does a reload, and Newer goes back to the first
    await page.reload()
    await expect(info).to_contain_text("page 2")
    await page.get_by_role("button", name="← Newer").click()
    await expect(info).to_contain_text("page 1")
    assert "cursor=" not in page.url


async def test_at_phone_width_the_status_column_is_in_view(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    await ui_node.trigger("echo", {"n": 2})
    page = await signed_in_page(browser, ui_node, width=390, height=844)
    await page.goto(f"{ui_node.url}/ui/#/runs")
    badge = page.locator("table.runs tbody tr").first.locator(".badge")
    await expect(badge).to_be_visible(timeout=EXPECT_MS)
    box = await badge.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box


def _contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two CSS rgb() colours."""
    def luminance(color: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", color)[:3]]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


async def test_primary_buttons_and_the_current_tab_are_readable_in_both_schemes(ui_node: UiNode,
                                                                                browser: Any) -> None:
    from playwright.async_api import expect

    for scheme in ("light", "dark"):
        page = await signed_in_page(browser, ui_node, scheme=scheme)
        await page.goto(f"{ui_node.url}/ui/#/runs")
        apply = page.get_by_role("button", name="Apply")
        await expect(apply).to_be_visible(timeout=EXPECT_MS)
        for element in (apply, page.locator('nav a[aria-current="page"]')):
            fg, bg = await element.evaluate("e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
            assert _contrast(fg, bg) >= 4.5, (scheme, fg, bg)
        await page.context.close()


async def test_the_rejected_page_shows_why_a_stream_entry_made_no_run(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given a stream entry the intake rejects (its job does not exist), and one whose input is not JSON
    keys = ui_node.app.keys
    ghost = (await ui_node.app.redis.xadd(keys.submit_stream, {"job": "ghost", "input": "{}"})).decode()
    broken = (await ui_node.app.redis.xadd(keys.submit_stream, {"job": "echo", "input": "<script>x</script>"})).decode()
    # When an operator opens the Rejected page (alpha is this node's operator project)
    page = await signed_in_page(browser, ui_node)
    await page.get_by_role("link", name="Rejected").click()
    rows = page.locator("table.rejected tbody tr")
    # Then both are there, newest first, each with its reason and message; the fields are shown as text
    await expect(rows.filter(has_text=ghost)).to_contain_text("unknown_job", timeout=EXPECT_MS)
    await expect(rows.first).to_contain_text(broken)
    await expect(rows.first).to_contain_text("bad_json")
    await rows.first.locator("summary").click()
    await expect(rows.first.locator("details")).to_contain_text("<script>x</script>")
    assert await page.locator("table.rejected script").count() == 0
    # And a key of a project that is no operator's reads a note, not an error
    other = await signed_in_page(browser, ui_node, project="beta")
    await other.goto(f"{ui_node.url}/ui/#/rejected")
    await expect(other.locator("#page")).to_contain_text("operator project")
    await expect(other.locator("#page p.error")).to_have_count(0)


async def test_searching_an_idempotency_key_finds_its_run_without_a_failed_request(ui_node: UiNode,
                                                                                  browser: Any) -> None:
    from playwright.async_api import expect

    # Given a run created with an idempotency key, and the runs page open
    keyed = await ui_node.trigger("echo", {"n": 2}, idempotency_key="invoice-42")
    page = await signed_in_page(browser, ui_node)
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(f"{ui_node.url}/ui/#/runs")
    rows = page.locator("table.runs tbody tr")
    await expect(rows.first.locator("td.run-id")).to_be_visible(timeout=EXPECT_MS)
    # When the key is searched (the box looks a term up as a run id first)
    await page.get_by_label("Search").fill("invoice-42")
    await page.get_by_role("button", name="Apply").click()
    # Then its run is listed, and the browser logged no failed request (the lookup answered 404 before:
    # an error in the console for every key searched)
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(keyed)
    # And a term that is neither says so, again with no failed request
    await page.get_by_label("Search").fill("no-such-thing")
    await page.get_by_role("button", name="Apply").click()
    await expect(rows.first).to_contain_text("No runs match.")
    assert console_errors == [], console_errors


#: per page, the heads of columns whose cells are all numbers (class num) and that are not right-aligned as
#: they are, and how many such columns there were
_NUMERIC_HEADS = """() => {
  let numeric = 0;
  const misaligned = [...document.querySelectorAll("table")].flatMap((t) => {
    const heads = [...t.querySelectorAll("thead th")];
    const rows = [...t.querySelectorAll("tbody tr")].filter((r) => r.cells.length === heads.length);
    return heads.flatMap((th, i) => {
      if (!rows.length || !rows.every((r) => r.cells[i].classList.contains("num"))) return [];
      numeric += 1;
      return getComputedStyle(th).textAlign === getComputedStyle(rows[0].cells[i]).textAlign ? [] : [th.textContent];
    });
  });
  return { numeric, misaligned };
}"""


async def test_the_heads_of_number_columns_are_aligned_as_their_numbers(ui_node: UiNode, browser: Any) -> None:
    from playwright.async_api import expect

    # Given runs (one with a step), a node and a schedule
    await ui_node.trigger("echo", {"n": 3})
    waiting = await ui_node.trigger("signalled", {})
    page = await signed_in_page(browser, ui_node)
    await page.goto(f"{ui_node.url}/ui/#/runs/{waiting}")
    await expect(page.locator(".page-head .badge").first).to_have_text("waiting", timeout=EXPECT_MS)
    await ui_node.signal(waiting, "go", 1)
    await expect(page.locator(".page-head .badge").first).to_have_text("completed", timeout=EXPECT_MS)
    # When each page with number columns is read
    pages = ((f"/ui/#/runs/{waiting}", "th:has-text('Output or error')"), ("/ui/#/overview", "table.queues"),
             ("/ui/#/schedules", "table.schedules"))
    for where, ready in pages:
        await page.goto(ui_node.url + where)
        await expect(page.locator(ready).first).to_be_visible(timeout=EXPECT_MS)
        found = await page.evaluate(_NUMERIC_HEADS)
        # Then every such column's head is aligned as its numbers (their heads sat left of them)
        assert found["numeric"] > 0 and found["misaligned"] == [], (where, found)
