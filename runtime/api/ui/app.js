// The dashboard's entry point: sign-in, navigation between pages (hash routes), relative-age refresh.

import { forgetPartial, loadSession, project, signIn, signOut } from "./api.js";
import { clearToasts, errorBox, fill, refreshAges, toast } from "./dom.js";
import * as dlq from "./page_dlq.js";
import * as overview from "./page_overview.js";
import * as rejected from "./page_rejected.js";
import * as run from "./page_run.js";
import * as runs from "./page_runs.js";
import * as schedules from "./page_schedules.js";

// route -> page module; each page exports mount(root, match, params) returning a cleanup function
// (and the page's title: tabs and history entries tell pages and runs apart)
const ROUTES = [
  [/^\/runs\/(.+)$/, run, "runs", (m) => `Run ${safeDecode(m[1])}`],
  [/^\/runs$/, runs, "runs", () => "Runs"],
  [/^\/dlq$/, dlq, "dlq", () => "Dead letters"],
  [/^\/schedules$/, schedules, "schedules", () => "Schedules"],
  [/^\/rejected$/, rejected, "rejected", () => "Rejected entries"],
  [/^\/(overview)?$/, overview, "overview", () => "Overview"],
];

let cleanup = null;
let shownPath = null;

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/overview";
  const [path, q] = raw.split("?", 2);
  return { path, params: new URLSearchParams(q || "") };
}

function showSignIn(signedIn) {
  document.getElementById("signin").hidden = signedIn;
  document.getElementById("page").hidden = !signedIn;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  if (signedIn) document.getElementById("project").textContent = project();
  else document.getElementById("api-key").focus();
}

async function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  forgetPartial();
  if (!project()) return;
  const { path, params } = parseHash();
  const root = fill(document.getElementById("page"));
  for (const [re, page, nav, title] of ROUTES) {
    const match = path.match(re);
    if (!match) continue;
    for (const a of document.querySelectorAll("#nav a")) {
      if (a.dataset.page === nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.title = `${title(match).slice(0, 80)} · Baton`;
    try {
      cleanup = page.mount(root, match, params) || null;
    } catch (err) {
      root.append(errorBox(err));
    }
    // on a new page (not new filters of the same one) the keyboard and screen readers start at its heading,
    // and the last page's toasts are gone
    if (path !== shownPath) {
      clearToasts();
      const heading = root.querySelector("h1");
      if (heading) {
        heading.tabIndex = -1;
        heading.focus({ preventScroll: true });
      }
    }
    shownPath = path;
    return;
  }
  for (const a of document.querySelectorAll("#nav a")) a.removeAttribute("aria-current");
  document.title = "No such page · Baton";
  shownPath = path;
  const missing = errorBox(new Error(`There is no page ${path.slice(0, 200)}.`));
  missing.tabIndex = -1;
  root.append(missing);
  missing.focus();
}

function showPartial(partitions) {
  const banner = document.getElementById("partial");
  banner.hidden = partitions.length === 0;
  banner.textContent = partitions.length === 0 ? "" :
    `Partition${partitions.length > 1 ? "s" : ""} ${partitions.join(", ")} did not answer (a Redis master is ` +
    "down): lists and counts on this page leave out the runs there until it is back.";
}

async function start() {
  document.getElementById("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = document.getElementById("api-key");
    const error = document.getElementById("signin-error");
    error.textContent = "";
    try {
      await signIn(input.value.trim());
      input.value = "";
      clearToasts();  // (news of the ended session, and of what failed with it, is old now)
      showSignIn(true);
      shownPath = null;
      route();
    } catch (err) {
      error.textContent = err.status === 401 ? "That key is not valid." : err.message;
    }
  });
  document.getElementById("signout").addEventListener("click", async () => {
    await signOut().catch((err) => toast(err.message, "error"));
    if (cleanup) cleanup();
    cleanup = null;
    fill(document.getElementById("page"));
    showSignIn(false);
  });
  window.addEventListener("baton:signedout", () => {
    if (cleanup) cleanup();
    cleanup = null;
    showSignIn(false);
    toast("Your session ended: sign in again.", "error");
  });
  window.addEventListener("baton:partial", (ev) => showPartial(ev.detail));
  window.addEventListener("hashchange", route);
  setInterval(refreshAges, 5000);
  let signedIn = false;
  try {
    signedIn = await loadSession();
  } catch (err) {
    toast(err.message, "error");
  }
  showSignIn(signedIn);
  if (signedIn) route();
}

start();
