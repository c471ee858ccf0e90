// Small DOM helpers shared by the pages: element building, times, status badges, the JSON viewer,
// confirmation dialogs, toasts and a coalescing refresher.

/** An element: h("a", {href: "#", class: "x", onclick: fn}, "text", child, ...). Text is never parsed as HTML. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** A table's head: its column names, those of numbers right-aligned as their cells are (class num). */
export function headRow(columns, numeric = []) {
  return h("thead", {}, h("tr", {}, columns.map((c) =>
    h("th", { scope: "col", class: numeric.includes(c) ? "num" : null }, c))));
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat(Infinity)) if (c !== undefined && c !== null && c !== false) el.append(c);
  return el;
}

/** "3 s", "5 min", "2 h", "4 d": a duration, coarse. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  const s = Math.abs(ms) / 1000;
  if (s < 1) return `${Math.round(Math.abs(ms))} ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** "5 min ago" / "in 2 h". */
export function age(iso) {
  const ms = Date.parse(iso) - Date.now();
  return ms > 1000 ? `in ${duration(ms)}` : `${duration(-ms)} ago`;
}

/** A time in the viewer's time zone, named, with its relative age (kept fresh by refreshAges). */
export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = new Date(iso);
  return h("time", { datetime: iso, title: d.toISOString() },
    d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "long" }), " ",
    h("span", { class: "age", dataset: { ts: iso } }, `(${age(iso)})`));
}

/** Update every relative age on the page (called every few seconds). */
export function refreshAges() {
  for (const el of document.querySelectorAll("span.age[data-ts]")) el.textContent = `(${age(el.dataset.ts)})`;
}

/** Milliseconds between two ISO times (to now when end is missing), or null. */
export function span(startIso, endIso) {
  if (!startIso) return null;
  return (endIso ? Date.parse(endIso) : Date.now()) - Date.parse(startIso);
}

/** A status badge. */
export function badge(status) {
  return h("span", { class: `badge s-${status}` }, status);
}

/** A collapsible JSON viewer: objects and arrays fold, leaves are shown as JSON text. */
export function jsonView(value, label, open = false) {
  const details = h("details", { class: "json", open });
  details.append(h("summary", {}, label || summary(value)));
  details.append(node(value, 0));
  return details;
}

function summary(value) {
  if (Array.isArray(value)) return `array [${value.length}]`;
  if (value && typeof value === "object") return `object {${Object.keys(value).length}}`;
  return JSON.stringify(value);
}

function node(value, depth) {
  if (value === null || typeof value !== "object") {
    return h("code", { class: `j-${value === null ? "null" : typeof value}` }, JSON.stringify(value));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  if (!entries.length) return h("code", {}, Array.isArray(value) ? "[]" : "{}");
  const list = h("ul", { class: "j-list" });
  for (const [k, v] of entries.slice(0, 500)) {
    const child = v !== null && typeof v === "object" && Object.keys(v).length
      ? h("details", { open: depth < 1 }, h("summary", {}, h("span", { class: "j-key" }, String(k)), " ", summary(v)),
        node(v, depth + 1))
      : h("span", {}, h("span", { class: "j-key" }, String(k)), ": ", node(v, depth + 1));
    list.append(h("li", {}, child));
  }
  if (entries.length > 500) list.append(h("li", { class: "muted" }, `… ${entries.length - 500} more`));
  return list;
}

/** Show a message in the live region (announced to screen readers). */
export function toast(message, kind = "info") {
  const el = h("div", { class: `toast ${kind}` }, message);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 9000 : 5000);
}

/** How long a read may go unanswered before a live page says it is not updating (the API waits longer for
 * a Redis that does not answer before it says so). */
export const SLOW_ANSWER_MS = 3000;

/** Remove the toasts still shown (a new page starts without the last one's news). */
export function clearToasts() {
  document.getElementById("toasts").replaceChildren();
}

/**
 * Ask for confirmation in the page's dialog. fields: [{name, label, type, value, required}] extra inputs.
 * Resolves to the fields' values ({} without fields), or null when cancelled.
 */
export function confirmDialog(title, message, fields = [], okLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-message").textContent = message;
  document.getElementById("confirm-ok").textContent = okLabel;
  const box = fill(document.getElementById("confirm-fields"));
  for (const f of fields) {
    const id = `confirm-${f.name}`;
    box.append(h("label", { for: id }, f.label),
      h("input", { id, name: f.name, type: f.type || "text", value: f.value ?? "", required: f.required, min: f.min,
        step: f.step }));
  }
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "ok") return resolve(null);
      const out = {};
      for (const f of fields) out[f.name] = document.getElementById(`confirm-${f.name}`).value;
      resolve(out);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

/**
 * Coalesces refresh requests: however often request() is called (a busy queue may change 1,000 runs a
 * second), fn runs at most once per interval, never twice at once, and once more after the last request.
 */
export class Coalescer {
  constructor(fn, intervalMs) {
    this.fn = fn;
    this.intervalMs = intervalMs;
    this.pending = false;
    this.running = false;
    this.last = 0;
    this.timer = null;
    this.stopped = false;
  }

  request() {
    if (this.stopped) return;
    this.pending = true;
    this.schedule();
  }

  schedule() {
    if (this.running || this.timer !== null || !this.pending) return;
    const wait = Math.max(0, this.last + this.intervalMs - Date.now());
    this.timer = setTimeout(() => this.run(), wait);
  }

  async run() {
    this.timer = null;
    if (this.stopped) return;
    this.pending = false;
    this.running = true;
    this.last = Date.now();
    try {
      await this.fn();
    } catch (err) {
      console.warn("refresh failed", err);
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  stop() {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }
}

/**
 * Load now, then again every intervalMs while the tab is visible and when() holds, through a Coalescer
 * (a slow answer is never overtaken by the next request). Returns the refresher and stop().
 */
export function keepFresh(load, intervalMs, when = () => true) {
  const refresher = new Coalescer(load, intervalMs / 2);
  refresher.request();
  const timer = setInterval(() => {
    if (!document.hidden && when()) refresher.request();
  }, intervalMs);
  return { refresher, stop: () => { clearInterval(timer); refresher.stop(); } };
}

/** Put a page's state (filters, cursors) into its URL, replacing the history entry: a view can be bookmarked,
 * reloaded and returned to with Back. */
export function keepInUrl(page, query) {
  const hash = `#/${page}${query.toString() ? `?${query}` : ""}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

/** A labelled form control: h("label") + control, in a wrapper. */
export function field(label, control) {
  if (!control.id) control.id = `f-${Math.random().toString(36).slice(2, 9)}`;
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

/** An error message block for a failed load. */
export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, `${err.message}${err.code ? ` (${err.code})` : ""}`);
}

/** A table whose filters the API refused (a 400): its rows go, so none shown is taken for a match, and the
 * error takes their place, where the eye is. Any other failure (Redis not answering) keeps the rows. */
export function refusedInTable(table, err, columns) {
  if (err.status !== 400) return false;
  fill(table.tBodies[0], h("tr", {}, h("td", { colspan: columns }, errorBox(err))));
  return true;
}

/** How long a run has run: from its first start to its end, to now while it executes, and to its last
 * attempt's end while it waits for something (a retry, an event, a resume): null before any start. */
export function runSpan(run) {
  if (!run.started_at) return null;
  if (run.finished_at || run.status === "executing") return span(run.started_at, run.finished_at);
  const ends = (run.attempts || []).map((a) => a.finished_at).filter(Boolean).sort();
  return ends.length ? span(run.started_at, ends[ends.length - 1]) : null;
}
