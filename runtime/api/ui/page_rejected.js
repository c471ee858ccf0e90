// Rejected: submission stream entries that made no run, newest first, with the reason and the entry's fields
// (GET /v1/rejected: operator keys only). A producer's entry that was refused is found here, and why.

import { ApiFailure, get } from "./api.js";
import { errorBox, fill, h, jsonView, keepFresh, time } from "./dom.js";

// how often the first page reloads itself (not once more pages were loaded: a reload would take them away)
const REFRESH_MS = 5000;
const PAGE = 50;
const HEAD = ["Rejected", "Entry", "Reason", "Error", "Fields"];

function row(r) {
  return h("tr", { dataset: { id: r.id } },
    h("td", { class: "when" }, time(r.rejected_at)),
    h("td", { class: "mono" }, r.entry_id),
    h("td", {}, h("span", { class: "badge s-failed" }, r.reason)),
    h("td", { class: "wrap" }, r.error),
    h("td", {}, jsonView(r.fields, `${Object.keys(r.fields).length} field(s), ${r.size} bytes` +
      (r.truncated ? ", cut" : ""))));
}

export function mount(root) {
  const tbody = h("tbody");
  const table = h("table", { class: "rejected" },
    h("thead", {}, h("tr", {}, HEAD.map((c) => h("th", { scope: "col" }, c)))), tbody);
  const note = h("div", { class: "load-note", role: "status" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const body = h("div", {}, note, h("div", { class: "table-wrap" }, table), more);
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Rejected entries")),
    h("p", { class: "muted" }, "Entries of the submission stream that made no run, newest first: the stream keeps the " +
      "latest rejected_max_len."), body);
  let cursor = null;
  let appended = false;
  let stopped = false;

  async function load(append) {
    let page;
    try {
      page = await get("/rejected", { limit: PAGE, cursor: append ? cursor : undefined });
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 403) {
        fill(body, h("p", {}, "Rejected entries belong to the whole deployment: sign in with a key of an operator " +
          "project (api_operator_projects) to see them."));
        stopped = true;
        return;
      }
      throw err;
    }
    if (stopped || (!append && appended)) return;
    fill(note);
    appended = append;
    if (!append) fill(tbody);
    tbody.append(...page.data.map(row));
    if (!tbody.rows.length) tbody.append(h("tr", {}, h("td", { colspan: HEAD.length, class: "muted" },
      "No entry was rejected.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }

  more.addEventListener("click", () => load(true).catch((err) => fill(note, errorBox(err))));
  const fresh = keepFresh(() => load(false).catch((err) => fill(note, errorBox(err))), REFRESH_MS,
    () => !appended && !stopped);
  return () => {
    stopped = true;
    fresh.stop();
  };
}
