// Overview: queues (depth by state, runs per minute over the last hour, oldest queued age, paused),
// nodes (heartbeat age, slots, leases), the project's dead letters and the cron schedules. The
// deployment-wide figures come from the operator endpoints, which only keys of an operator project
// (api_operator_projects) may read; other projects see their own dead letters and a note.

import { ApiFailure, get, post } from "./api.js";
import { badge, confirmDialog, duration, errorBox, fill, h, headRow, keepFresh, SLOW_ANSWER_MS, time, toast } from "./dom.js";

const REFRESH_MS = 5000;
const STATES = ["queued", "delayed", "executing", "waiting", "paused"];

/** A sparkline of a series (an SVG polyline), with its values in the accessible label. */
export function spark(points, label) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${Math.max(points.length - 1, 1)} 30`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const max = Math.max(1, ...points);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.map((v, i) => `${i},${(30 - (v / max) * 28 - 1).toFixed(1)}`).join(" "));
  line.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(line);
  return svg;
}

function stat(label, value, note) {
  return h("div", { class: "stat" }, h("div", { class: "muted" }, label), h("div", { class: "n" }, value),
    note ? h("div", { class: "muted" }, note) : null);
}

function forbidden(err) {
  return err instanceof ApiFailure && err.status === 403;
}

export function mount(root) {
  const loading = () => h("p", { class: "muted" }, "Loading…");
  const stats = h("div", { class: "stats" });
  const queues = h("div", {}, loading());
  const nodes = h("div", {}, loading());
  const schedules = h("div", {}, loading());
  const note = h("p", { class: "muted" });
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Overview")), note, stats,
    h("section", { class: "card", "aria-labelledby": "h-queues" }, h("h2", { id: "h-queues" }, "Queues"), queues),
    h("div", { class: "grid" },
      h("section", { class: "card", "aria-labelledby": "h-nodes" }, h("h2", { id: "h-nodes" }, "Nodes"), nodes),
      h("section", { class: "card", "aria-labelledby": "h-sched" }, h("h2", { id: "h-sched" }, "Schedules"), schedules)));
  let stopped = false;

  function queueTable(list) {
    if (!list.length) return h("p", { class: "muted" }, "No queue has had runs yet.");
    return h("div", { class: "table-wrap" }, h("table", { class: "queues" },
      headRow(["Queue", ...STATES, "Oldest queued", "Runs/min (last hour)", ""], [...STATES, "Oldest queued"]),
      h("tbody", {}, list.map((q) => {
        const toggle = h("button", { type: "button" }, q.paused ? "Resume" : "Pause");
        toggle.addEventListener("click", async () => {
          const verb = q.paused ? "resume" : "pause";
          const ask = q.paused ? `Resume queue ${q.name}? Nodes lease its runs again.`
            : `Pause queue ${q.name}? No node leases its runs until it is resumed; executing runs finish.`;
          const label = q.paused ? "Resume" : "Pause";
          if (await confirmDialog(`${label} queue`, ask, [], label) === null) return;
          try {
            const out = await post(`/queues/${encodeURIComponent(q.name)}/${verb}`);
            toast(`Queue ${out.name} ${out.paused ? "paused" : "resumed"}`, "ok");
          } catch (err) {
            toast(`${verb} ${q.name} failed: ${err.message}`, "error");
          }
          refresher.request();
        });
        const t = q.throughput;
        return h("tr", {},
          h("td", {}, h("a", { href: `#/runs?queue=${encodeURIComponent(q.name)}` }, q.name), " ", q.paused ? badge("paused") : null),
          STATES.map((s) => h("td", { class: "num" }, q.counts[s] ?? 0)),
          h("td", { class: "num" }, q.counts.queued ? duration(q.oldest_queued_age_ms) : "—"),
          h("td", {}, spark(t.points, `${q.name}: runs finished per minute, last hour: ${t.points.join(", ")}`),
            ` ${t.last_hour_total} in the hour`),
          h("td", {}, toggle));
      }))));
  }

  function nodeTable(list) {
    if (!list.length) return h("p", { class: "muted" }, "No node has sent a heartbeat in the last hour.");
    return h("div", {}, h("div", { class: "table-wrap" }, h("table", {},
      headRow(["Node", "Heartbeat", "Slots used", "Leases", "Version"], ["Slots used", "Leases"]),
      h("tbody", {}, list.map((n) => h("tr", {},
        h("td", { class: "mono" }, n.id, " ", n.alive ? null : badge("expired"), n.draining || n.drain_requested ? badge("draining") : null),
        h("td", {}, n.heartbeat_at ? `${duration(n.heartbeat_age_ms)} ago` : "—"),
        h("td", { class: "num" }, `${n.slots_used ?? "?"} / ${n.slots_total}`),
        h("td", { class: "num" }, n.leases_held ?? "?"), h("td", {}, n.version || "")))))),
      // the runs counts above are read live; these are what each node last reported (every renew interval)
      h("p", { class: "muted" }, "Slots used and leases as each node reported them at its last heartbeat."));
  }

  function scheduleList(list) {
    if (!list.length) return h("p", { class: "muted" }, "No cron schedule.");
    return h("ul", { class: "plain" }, list.map((s) => s.error || s.refused
      ? h("li", {}, h("strong", {}, s.name), " ",
        h("span", { class: "error" }, s.error ? "cannot fire (see Schedules)" : "last tick refused (see Schedules)"))
      : h("li", {}, h("strong", {}, s.name), " ", h("code", {}, s.expression), ` → ${s.job} `,
        s.paused ? badge("paused") : "next ", s.paused ? null : time(s.next_fire_at))),
    h("li", { class: "muted" }, h("a", { href: "#/schedules" }, "Manage schedules")));
  }

  // the 403 a key of no operator project got: the deployment-wide figures are not asked for again
  let refused = null;
  const operatorGet = (path) => (refused ? Promise.reject(refused) : get(path));

  async function load() {
    // (a Redis that does not answer holds the API's answers for a while: the page says so first)
    const slow = setTimeout(() => {
      note.textContent = `Not updating: no answer for ${SLOW_ANSWER_MS / 1000} s`;
    }, SLOW_ANSWER_MS);
    const [q, n, s, dlq] = await Promise.allSettled([operatorGet("/queues"), operatorGet("/nodes"),
      operatorGet("/schedules"), get("/runs/dlq", { limit: 100 })]).finally(() => clearTimeout(slow));
    if (stopped) return;
    const ops = [q, n, s];
    const denied = ops.some((r) => r.status === "rejected" && forbidden(r.reason));
    if (denied) refused = ops.find((r) => r.status === "rejected" && forbidden(r.reason)).reason;
    note.textContent = denied ? "Queues, nodes and schedules belong to the whole deployment: only keys of an operator project " +
      "(api_operator_projects) see them. Your project's own runs and dead letters are on their pages." : "";
    const show = (r, box, render) => fill(box, r.status === "fulfilled" ? render(r.value.data)
      : forbidden(r.reason) ? h("p", { class: "muted" }, "Needs an operator key.") : errorBox(r.reason));
    show(q, queues, queueTable);
    show(n, nodes, nodeTable);
    show(s, schedules, scheduleList);
    const sum = (key) => (q.status === "fulfilled" ? q.value.data.reduce((a, x) => a + (x.counts[key] || 0), 0) : "—");
    const hour = q.status === "fulfilled" ? q.value.data.reduce((a, x) => a + x.throughput.last_hour_total, 0) : "—";
    const dead = dlq.status === "fulfilled" ? `${dlq.value.data.length}${dlq.value.has_more ? "+" : ""}` : "—";
    const alive = n.status === "fulfilled" ? n.value.data.filter((x) => x.alive).length : "—";
    fill(stats, stat("Queued", sum("queued")), stat("Executing", sum("executing")),
      stat("Finished, last hour", hour), stat("Dead letters", h("a", { href: "#/dlq" }, dead), "this project"),
      stat("Nodes alive", alive));
  }

  const fresh = keepFresh(() => load().catch((err) => fill(note, errorBox(err))), REFRESH_MS);
  const refresher = fresh.refresher;
  return () => {
    stopped = true;
    fresh.stop();
  };
}
