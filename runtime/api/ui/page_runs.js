// Runs: a filtered, cursor-paginated table of the project's runs that keeps itself up to date.
// The filters live in the URL (#/runs?status=failed&job=...), so a filtered view can be bookmarked.

import { ApiFailure, get } from "./api.js";
import {
  badge, duration, errorBox, field, fill, h, keepFresh, keepInUrl, refusedInTable, runSpan, SLOW_ANSWER_MS, time,
} from "./dom.js";

export const STATUSES = ["queued", "delayed", "executing", "waiting", "paused", "completed", "failed",
  "dead_letter", "canceled", "expired"];
// how often the table refreshes itself while live (the API is asked at most this often, whatever the load)
const REFRESH_MS = 2000;
const FILTERS = ["status", "job", "queue", "tag", "metadata_key", "metadata_value", "created_after",
  "created_before", "q"];

/** A run id's link to its page. */
export function runLink(id) {
  return h("a", { href: `#/runs/${encodeURIComponent(id)}`, class: "mono" }, id);
}

/** The table rows of runs (shared with the dead-letter page, which adds a checkbox column). */
/** How many attempts a run made and how many of them counted against its max_attempts. */
export function attemptsTitle(run) {
  return `${run.attempt} attempt${run.attempt === 1 ? "" : "s"}, ${run.attempts_charged} of ${run.max_attempts} charged`;
}

export function runRow(run, lead) {
  return h("tr", { dataset: { id: run.id, status: run.status } },
    lead,
    h("td", { class: "run-id", title: run.id }, runLink(run.id)),
    h("td", {}, run.job),
    h("td", { class: "wide-only" }, run.queue),
    h("td", {}, badge(run.status)),
    // the attempts charged against max_attempts (a durable wait's resume is an attempt, charged nothing)
    h("td", { class: "wide-only num", title: attemptsTitle(run) }, `${run.attempts_charged}/${run.max_attempts}`),
    h("td", { class: "when" }, time(run.created_at)),
    h("td", { class: "wide-only num" }, duration(runSpan(run))),
    h("td", { class: "wide-only" }, (run.tags || []).map((t) => h("span", { class: "tag" }, t))));
}

export const HEAD = ["Run", "Job", "Queue", "Status", "Tries", "Created", "Duration", "Tags"];
const WIDE = new Set(["Queue", "Tries", "Duration", "Tags"]);

/** The table head for runRow. */
export function runHead(lead) {
  return h("thead", {}, h("tr", {}, lead, HEAD.map((name) => h("th", { scope: "col", class: WIDE.has(name) ? "wide-only" : null }, name))));
}

// datetime-local gives the viewer's local time without a zone: the API (and the page's URL, which another
// viewer may open in another zone) takes ISO with an offset
function toIso(local) {
  const d = new Date(local);
  // (a value that is no time goes to the API as it is, which says what is wrong with it; so does a
  // day the month does not have, which Date would roll over: 2026-02-30 to March 2nd)
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local || "");
  const rolled = m && (d.getFullYear() !== +m[1] || d.getMonth() + 1 !== +m[2] || d.getDate() !== +m[3]);
  return local && !Number.isNaN(d.getTime()) && !rolled ? d.toISOString() : local || "";
}

// an ISO time as a datetime-local input shows it: the viewer's local time, to the second
function toLocal(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return iso || "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}` +
    `:${pad(d.getSeconds())}`;
}

const DATES = ["created_after", "created_before"];

export function mount(root, _match, params) {
  const values = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  // the filters in force: the page's URL's until Apply (what a control shows before Apply changes nothing)
  let applied = { ...values };
  for (const k of DATES) {
    if (values[k]) applied[k] = toIso(values[k]);  // (a bookmark from before held local times without a zone)
    values[k] = toLocal(values[k]);
  }
  // the page's place: the cursor of each page after the first (in the URL, so Back and reload keep it)
  const cursors = ["", ...params.getAll("cursor").filter(Boolean)];
  // (a status no run has, from a bookmark or a hand-typed URL, is shown as it is: the API's error names it)
  const unknown = values.status && !STATUSES.includes(values.status) ? [values.status] : [];
  const status = h("select", { name: "status" }, h("option", { value: "" }, "any"),
    [...STATUSES, ...unknown].map((s) => h("option", { value: s, selected: values.status === s }, s)));
  const input = (name, type = "text", placeholder = "") =>
    h("input", { name, type, value: values[name], placeholder, autocomplete: "off" });
  const controls = {
    q: input("q", "search", "run id or idempotency key"), status, job: input("job", "text"),
    queue: input("queue"), tag: input("tag"), metadata_key: input("metadata_key"),
    metadata_value: input("metadata_value"), created_after: input("created_after", "datetime-local"),
    created_before: input("created_before", "datetime-local"),
  };
  const jobs = h("datalist", { id: "job-names" });
  controls.job.setAttribute("list", "job-names");
  const live = h("input", { type: "checkbox", checked: true, name: "live" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter runs" },
    field("Search", controls.q), field("Status", controls.status), field("Job", controls.job), jobs,
    field("Queue", controls.queue), field("Tag", controls.tag), field("Metadata key", controls.metadata_key),
    field("Metadata value", controls.metadata_value), field("Created after", controls.created_after),
    field("Created before", controls.created_before),
    h("div", { class: "field buttons" }, h("button", { type: "submit", class: "primary" }, "Apply"),
      h("button", { type: "reset" }, "Clear")));
  const table = h("table", { class: "runs" }, runHead(), h("tbody"));
  const info = h("p", { class: "muted", "aria-live": "polite" });
  const newer = h("button", { type: "button", disabled: true }, "← Newer");
  const older = h("button", { type: "button", disabled: true }, "Older →");
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Runs"),
    h("label", { class: "live" }, live, " Live updates")),
  form, h("div", { class: "table-wrap" }, table), h("div", { class: "pager" }, newer, info, older));

  let nextCursor = null;
  let stopped = false;

  function apiParams() {
    const p = { limit: 50 };
    for (const k of FILTERS) if (k !== "q" && applied[k]) p[k] = applied[k];
    if (applied.q) p.idempotency_key = applied.q;
    const cursor = cursors[cursors.length - 1];
    if (cursor) p.cursor = cursor;
    return p;
  }

  function apply() {
    applied = {};
    for (const k of FILTERS) {
      const value = controls[k].value.trim();
      if (value) applied[k] = DATES.includes(k) ? toIso(value) : value;
    }
  }

  async function searchById(q) {
    // the search box takes a run id first (a page of that one run, empty when there is none: no failed
    // request for every idempotency key), then an idempotency key (a filtered listing)
    try {
      const page = await get("/runs", { run_id: q });
      return page.data.length ? page.data : null;
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 400) return null;
      throw err;
    }
  }

  let notRunId = "";
  // filters the API refused: the list is not asked again until they change
  let refused = false;
  async function load() {
    if (stopped) return;
    // (a Redis that does not answer holds the API's answer for a while: the page says so first)
    const slow = setTimeout(() => {
      info.textContent = `Not updating: no answer for ${SLOW_ANSWER_MS / 1000} s`;
    }, SLOW_ANSWER_MS);
    try {
      await loadPage();
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 400) refused = true;
      throw err;
    } finally {
      clearTimeout(slow);
    }
  }

  async function loadPage() {
    let page;
    const q = applied.q || "";
    // (a term found to be no run id is not asked for again at each refresh)
    const byId = q && q !== notRunId && cursors.length === 1 ? await searchById(q) : null;
    if (q && !byId) notRunId = q;
    if (byId) page = { data: byId, has_more: false, next_cursor: null, scanned: 1 };
    else page = await get("/runs", apiParams());
    if (stopped) return;
    const tbody = table.tBodies[0];
    const before = new Map([...tbody.rows].map((r) => [r.dataset.id, r.dataset.status]));
    fill(tbody, page.data.map((run) => {
      const row = runRow(run);
      // a new run, or one whose status changed since the last refresh, is highlighted briefly
      if (before.size && before.get(run.id) !== run.status) row.classList.add("changed");
      return row;
    }));
    if (!page.data.length) tbody.append(h("tr", {}, h("td", { colspan: HEAD.length, class: "muted" }, "No runs match.")));
    nextCursor = page.next_cursor;
    older.disabled = !page.has_more;
    newer.disabled = cursors.length <= 1;
    // (a run id names one run: it is shown whatever the other filters say, and the page says so)
    const unfiltered = byId && FILTERS.some((k) => k !== "q" && applied[k]);
    info.textContent = `${page.data.length} run${page.data.length === 1 ? "" : "s"} · page ${cursors.length}` +
      (page.has_more && page.data.length < 50 ? ` · ${page.scanned} scanned, more further on` : "") +
      (unfiltered ? " · found by its id: the other filters do not apply to it" : "");
  }

  function showError(err) {
    if (refusedInTable(table, err, HEAD.length)) {
      info.textContent = "";
      older.disabled = true;
      newer.disabled = cursors.length <= 1;
    } else info.replaceChildren(errorBox(err));
  }
  function updateUrl() {
    const q = new URLSearchParams();
    for (const k of FILTERS) if (applied[k]) q.set(k, applied[k]);
    for (const cursor of cursors.slice(1)) q.append("cursor", cursor);
    keepInUrl("runs", q);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    apply();
    refused = false;
    cursors.splice(0, cursors.length, "");
    updateUrl();
    load().catch(showError);
  });
  // Clear empties every filter: a form's own reset would put back those the page opened with (a bookmark's)
  form.addEventListener("reset", (ev) => {
    ev.preventDefault();
    for (const control of Object.values(controls)) control.value = "";
    form.requestSubmit();
  });
  older.addEventListener("click", () => {
    cursors.push(nextCursor);
    updateUrl();
    load().catch(showError);
  });
  newer.addEventListener("click", () => {
    cursors.pop();
    updateUrl();
    load().catch(showError);
  });
  get("/jobs").then((j) => fill(jobs, j.data.map((job) => h("option", { value: job.name })))).catch(() => {});

  // live: the table reloads through a coalescer (one request in flight at most, one every REFRESH_MS, none
  // while the tab is hidden or the user's keyboard focus is in the table); new runs appear and statuses
  // change without a reload
  const fresh = keepFresh(() => load().catch(showError), REFRESH_MS,
    () => live.checked && !refused && !table.contains(document.activeElement));
  return () => {
    stopped = true;
    fresh.stop();
  };
}
