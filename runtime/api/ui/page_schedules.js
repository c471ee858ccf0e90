// Schedules: the deployment's cron schedules; pause, resume or trigger one now (operator keys only).

import { ApiFailure, get, post } from "./api.js";
import { badge, confirmDialog, errorBox, fill, h, headRow, keepFresh, time, toast } from "./dom.js";
import { runLink } from "./page_runs.js";

const REFRESH_MS = 5000;

export function mount(root) {
  const body = h("div");
  const result = h("p", { class: "result", role: "status", "aria-live": "polite" });
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Schedules")), result, body);
  let stopped = false;

  function act(s, verb, label, ask) {
    const btn = h("button", { type: "button", "data-action": verb }, label);
    btn.addEventListener("click", async () => {
      if (await confirmDialog(`${label}: ${s.name}`, ask, [], label) === null) return;
      try {
        const out = await post(`/schedules/${encodeURIComponent(s.name)}/${verb}`);
        if (verb === "trigger") {
          fill(result, `${s.name} triggered: `, out.run_id ? runLink(out.run_id) : "skipped (overlap policy)");
        } else fill(result, `${s.name} ${out.paused ? "paused" : "resumed"}`);
        toast(result.textContent, "ok");
      } catch (err) {
        fill(result, `${label} ${s.name} failed: ${err.message}`);
        toast(result.textContent, "error");
      }
      refresher.request();
    });
    return btn;
  }

  async function load() {
    let list;
    try {
      list = (await get("/schedules")).data;
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 403) {
        fill(body, h("p", {}, "Schedules belong to the whole deployment: sign in with a key of an operator project (api_operator_projects) to see and manage them."));
        return;
      }
      throw err;
    }
    if (stopped) return;
    fill(body, list.length ? h("div", { class: "table-wrap" }, h("table", { class: "schedules" },
      headRow(["Schedule", "Job", "When", "Next fire", "Last run", "Fired / skipped / missed", "Actions"],
        ["Fired / skipped / missed"]),
      h("tbody", {}, list.map((s) => h("tr", { dataset: { name: s.name } },
        h("td", {}, h("strong", {}, s.name), " ", s.paused ? badge("paused") : null),
        h("td", {}, s.job ?? "—"), h("td", {}, s.expression ? [h("code", {}, s.expression), ` ${s.timezone ?? ""}`] : "—"),
        // one that cannot fire (stored by hand or by an older version) says why in place of its next time
        h("td", {}, s.error ? h("span", { class: "error" }, s.error)
          : [s.paused ? h("span", { class: "muted" }, "paused") : time(s.next_fire_at),
            // a tick that started no run (its job gone, its queue full ...) says why until one fires
            s.refused ? h("div", { class: "error" }, `last tick refused: ${s.refused}`) : null]),
        h("td", {}, s.last_run_id ? runLink(s.last_run_id) : "—"),
        h("td", { class: "num" }, `${s.fired_count} / ${s.skipped_count} / ${s.missed_count}`),
        h("td", { class: "actions" },
          s.paused ? act(s, "resume", "Resume", `Resume ${s.name}? It fires again at its next time.`)
            : act(s, "pause", "Pause", `Pause ${s.name}? It does not fire until resumed.`),
          s.error ? null : act(s, "trigger", "Trigger now", `Start a run of ${s.job} now, as ${s.name} would?`)))))))
      : h("p", { class: "muted" }, "No cron schedule. Define one with @app.job(cron=...) or PUT /v1/schedules/{name}."));
  }

  const fresh = keepFresh(() => load().catch((err) => fill(body, errorBox(err))), REFRESH_MS);
  const refresher = fresh.refresher;
  return () => {
    stopped = true;
    fresh.stop();
  };
}
