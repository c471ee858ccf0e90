// Dead-letter queue: dead-lettered runs with their error summaries; select many, replay or delete them.

import { bulkIdsMax, get, post, runPath } from "./api.js";
import { confirmDialog, errorBox, field, fill, h, keepFresh, keepInUrl, refusedInTable, toast } from "./dom.js";
import { HEAD, runHead, runRow } from "./page_runs.js";

// how often the list reloads itself, while nothing is selected and only its first page is shown (a reload
// would take a selection away, or the pages loaded after the first)
const REFRESH_MS = 5000;

function errorSummary(run) {
  const err = run.error || (run.attempts.length ? run.attempts[run.attempts.length - 1].error : null);
  if (!err) return "";
  return `${err.type ? `${err.type}: ` : ""}${err.message || ""}`.slice(0, 200);
}

export function mount(root, _match, params) {
  const job = h("input", { name: "job", value: params.get("job") || "", autocomplete: "off" });
  const queue = h("input", { name: "queue", value: params.get("queue") || "", autocomplete: "off" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter dead letters" },
    field("Job", job), field("Queue", queue),
    h("div", { class: "field buttons" }, h("button", { type: "submit", class: "primary" }, "Apply")));
  const all = h("input", { type: "checkbox", "aria-label": "Select all shown" });
  const table = h("table", { class: "runs dlq" }, runHead(h("th", { scope: "col" }, all)), h("tbody"));
  const replay = h("button", { type: "button", class: "primary", disabled: true }, "Replay selected");
  const remove = h("button", { type: "button", class: "danger", disabled: true }, "Delete selected");
  const selected = h("span", { class: "muted", "aria-live": "polite" }, "0 selected");
  const result = h("div", { class: "result", role: "status", "aria-live": "polite" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const note = h("div", { class: "load-note", role: "status" });
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Dead-letter queue")), form,
    h("div", { class: "actions", role: "toolbar", "aria-label": "Bulk actions" }, replay, remove, selected),
    result, note, h("div", { class: "table-wrap" }, table), more);

  let cursor = null;
  let stopped = false;
  let appended = false;
  // the filters the list shows (typed values apply on Apply, not at the next reload)
  let applied = { job: job.value.trim(), queue: queue.value.trim() };
  const replayed = new Set();

  function checked() {
    return [...table.tBodies[0].querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
  }
  function updateSelection() {
    const n = checked().length;
    selected.textContent = `${n} selected`;
    replay.disabled = remove.disabled = n === 0;
  }

  // whether a reload of its own may replace the list: not while the user has selected runs, loaded more
  // pages or a dialog open (checked again when the answer comes: the user may have selected meanwhile)
  const quiet = () => !appended && checked().length === 0 && !document.querySelector("dialog[open]");

  async function load(append, reload = false) {
    const page = await get("/runs/dlq", { ...applied, limit: 50, cursor: append ? cursor : "" });
    if (stopped || (reload && !quiet())) return;
    fill(note);
    appended = append;
    const tbody = table.tBodies[0];
    if (!append) fill(tbody);
    for (const run of page.data) {
      // (a dead letter is replayed once: one already replayed is left out of a replay, not of a delete)
      if (run.replayed_as) replayed.add(run.id);
      const box = h("input", { type: "checkbox", value: run.id, "aria-label": `Select ${run.id}`,
        title: run.replayed_as ? "Already replayed" : null });
      box.addEventListener("change", updateSelection);
      const row = runRow(run, h("td", {}, box));
      const summary = errorSummary(run);
      tbody.append(row);
      if (summary || run.replayed_as) {
        tbody.append(h("tr", { class: "err-row" }, h("td"), h("td", { colspan: HEAD.length, class: "error-summary" },
          summary, run.replayed_as ? h("span", { class: "muted" }, " — replayed as ",
            h("a", { href: `#${runPath(run.replayed_as)}` }, run.replayed_as)) : "")));
      }
    }
    if (!tbody.rows.length) tbody.append(h("tr", {}, h("td", { colspan: HEAD.length + 1, class: "muted" }, "The dead-letter queue is empty.")));
    cursor = page.next_cursor;
    more.hidden = !page.has_more;
    all.checked = false;
    updateSelection();
  }

  function report(label, done, failed, made, skipped) {
    fill(result, h("p", {}, `${label}: ${done} done, ${failed.length} failed` +
      (skipped ? `, ${skipped} already replayed (left out).` : ".")),
      made.length ? h("p", {}, "New runs: ", ...made.flatMap((id, i) => [i ? ", " : "",
        h("a", { href: `#${runPath(id)}` }, id)])) : null,
      failed.length ? h("ul", {}, failed.map((r) => h("li", {}, `${r.id}: ${r.error}`))) : null);
    toast(`${label}: ${done} done, ${failed.length} failed`, failed.length ? "error" : "ok");
  }

  // one bulk action on the selected runs: confirm, call (in pieces the server takes), report each run's
  // result and the runs it made, reload the list
  function bulk(button, label, question, path, doneKey, once) {
    button.addEventListener("click", async () => {
      const selection = checked();
      const ids = once ? selection.filter((id) => !replayed.has(id)) : selection;
      const skipped = selection.length - ids.length;
      if (await confirmDialog(`${label} dead letters`, question(ids.length, skipped), [], label) === null) return;
      let done = 0;
      const failed = [];
      const made = [];
      try {
        for (let at = 0; at < ids.length; at += bulkIdsMax()) {
          const out = await post(path, { run_ids: ids.slice(at, at + bulkIdsMax()) });
          done += out[doneKey];
          failed.push(...out.results.filter((r) => r.error));
          made.push(...(out.replayed || []).map((r) => r.id));
        }
        report(label, done, failed, made, skipped);
      } catch (err) {
        // (what went through before the error is said too)
        fill(result, errorBox(err), done ? h("p", {}, `${label}: ${done} done before the error.`) : null);
      }
      load(false).catch(showError);
    });
  }
  bulk(replay, "Replay", (n, skipped) => `Replay ${n} dead-lettered run(s) as new runs?` +
    (skipped ? ` (${skipped} selected were replayed already: they are left out.)` : ""), "/runs/bulk-dlq-replay", "count",
  true);
  bulk(remove, "Delete", (n) => `Delete ${n} dead-lettered run(s) and their history? This cannot be undone.`,
    "/runs/bulk-delete", "deleted");
  all.addEventListener("change", () => {
    for (const c of table.tBodies[0].querySelectorAll("input[type=checkbox]")) c.checked = all.checked;
    updateSelection();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    applied = { job: job.value.trim(), queue: queue.value.trim() };
    // the filters go into the URL, as the Runs page's: a filtered view can be bookmarked and reloaded
    keepInUrl("dlq", new URLSearchParams(Object.entries(applied).filter(([, v]) => v)));
    load(false).catch(showError);
  });
  more.addEventListener("click", () => load(true).catch(showError));
  function showError(err) {
    if (stopped) return;
    if (refusedInTable(table, err, HEAD.length + 1)) {
      fill(note);
      more.hidden = true;
    } else fill(note, errorBox(err));
  }
  const fresh = keepFresh(() => load(false, true).catch(showError), REFRESH_MS, quiet);
  return () => {
    stopped = true;
    fresh.stop();
  };
}
