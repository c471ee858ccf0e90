// Schedules: cron schedules (built on the operator endpoints).

import { fill, h } from "./dom.js";

export function mount(root) {
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Schedules")));
}
