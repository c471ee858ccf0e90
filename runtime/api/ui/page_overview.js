// Overview: the deployment's jobs and their queues (replaced by queue and node figures once the
// operator endpoints exist).

import { get } from "./api.js";
import { errorBox, fill, h } from "./dom.js";

export function mount(root) {
  const body = h("div");
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Overview")), body);
  get("/jobs").then((jobs) => fill(body, h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Job", "Queue", "Max attempts", "Timeout", "Concurrency"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, jobs.data.map((j) => h("tr", {}, h("td", {}, h("a", { href: `#/runs?job=${encodeURIComponent(j.name)}` }, j.name)),
      h("td", {}, j.queue), h("td", { class: "num" }, j.max_attempts), h("td", { class: "num" }, j.timeout_s ?? ""),
      h("td", { class: "num" }, j.max_concurrency || "∞")))))))).catch((err) => fill(body, errorBox(err)));
}
