// Run detail: status and times, actions, progress, lineage and children, a live timeline and logs,
// attempts, steps, payloads, AI records (usage, tool calls, outputs, streamed chunks) and checkpoints.
// The timeline follows GET /v1/runs/{id}/stream (SSE) while the run executes; everything else is
// reloaded through coalescers, so a run that writes hundreds of events a second costs the browser at
// most a few renders and requests a second.

import { ApiFailure, del, get, post, runPath } from "./api.js";
import {
  badge, Coalescer, confirmDialog, duration, errorBox, fill, h, headRow, jsonView, runSpan, SLOW_ANSWER_MS, span, time, toast,
} from "./dom.js";
import { attemptsTitle, runLink } from "./page_runs.js";

const LIVE = new Set(["queued", "delayed", "executing", "waiting", "paused"]);
// event names the timeline stream sends (each SSE event is named by its type): runtime/timeline.py's
// TIMELINE_TYPES, which a test keeps this list equal to, and "message" (the name of any other)
const EVENT_TYPES = ["status", "attempt", "log", "progress", "metadata", "step", "checkpoint", "token", "signal",
  "continued", "debug_mode", "idempotency_reset", "pause_requested", "pause_withdrawn", "rescheduled", "message"];
const MAX_TIMELINE_ROWS = 1000;
const RUN_REFRESH_MS = 1000;
const LIVE_CHECK_MS = 5000;
const RECORDS_REFRESH_MS = 2000;

function section(title, id, ...body) {
  return h("section", { class: "card", "aria-labelledby": id },
    h("h2", { id }, title), ...body);
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// each action: label, when it applies, what to ask, what to call
const ACTIONS = [
  { id: "cancel", label: "Cancel", when: (r) => LIVE.has(r.status),
    ask: "Cancel this run? Unfinished children are canceled too.", call: (r) => del(runPath(r.id)) },
  { id: "replay", label: "Replay", when: (r) => !LIVE.has(r.status),
    ask: (r) => (r.replayed_as ? `This run was replayed already, as ${r.replayed_as}. Start it again as another new run?`
      : "Start this run again as a new run with the same input?"),
    call: (r) => post(`${runPath(r.id)}/replay`) },
  { id: "reschedule", label: "Reschedule", when: (r) => ["queued", "delayed", "paused"].includes(r.status),
    ask: "Start this run after a delay (seconds from now).",
    // (any fraction of a second, as the API takes; the API's answer names its upper bound)
    fields: [{ name: "delay", label: "Delay (seconds)", type: "number", value: "60", required: true, min: 0,
      step: "any" }],
    call: (r, f) => post(`${runPath(r.id)}/reschedule`, { delay: Number(f.delay) }) },
  { id: "pause", label: "Pause", when: (r) => ["queued", "delayed", "executing", "waiting"].includes(r.status) && !r.pause_requested,
    ask: "Pause this run? An executing run pauses at its next step boundary.", call: (r) => post(`${runPath(r.id)}/pause`) },
  { id: "resume", label: "Resume", when: (r) => r.status === "paused" || r.pause_requested,
    ask: "Resume this run?", call: (r) => post(`${runPath(r.id)}/resume`) },
  { id: "restart", label: "Restart", when: () => true,
    ask: "Start this run over as a new run? A live run is canceled first.", call: (r) => post(`${runPath(r.id)}/restart`, {}) },
  { id: "debug", label: (r) => (r.debug_mode ? "Debug mode off" : "Debug mode on"), when: () => true,
    ask: "Change this run's debug-mode flag (handlers read it with ctx.debug_enabled())?",
    call: (r) => post(`${runPath(r.id)}/debug`, { debug_mode: !r.debug_mode }) },
  { id: "idempotency", label: "Reset idempotency key", when: (r) => Boolean(r.idempotency_key) && !r.idempotency_reset_at,
    ask: "Forget this run's idempotency key, so the key creates a new run next time?",
    call: (r) => del(`${runPath(r.id)}/idempotency-key`) },
];

// what an action's result code means, in words (any other code is shown with its underscores as spaces)
const RESULT_WORDS = {
  pause_requested: "pause requested (an executing run pauses at its next step boundary)",
  pause_withdrawn: "pause withdrawn", debug_on: "debug mode is on", debug_off: "debug mode is off",
  cancel_requested: "cancel requested (the handler is told to stop)",
};

function describe(result) {
  if (!result) return "done";
  if (result.result) {
    const words = RESULT_WORDS[result.result] || String(result.result).replaceAll("_", " ");
    return `${words}${result.run ? ` — status ${result.run.status}` : ""}`;
  }
  if (result.status && result.run_id) return `idempotency key ${result.status}`;
  if (result.id) return `new run (${result.status})`;
  return "done";
}

export function mount(root, match) {
  let runId;
  try {
    runId = decodeURIComponent(match[1]);
  } catch {
    runId = match[1];  // (not a valid escape: no run has it, and the API says so)
  }
  let run = null;
  let stopped = false;
  let source = null;
  let chunkSource = null;
  const pending = [];
  let flushTimer = null;

  const title = h("h1", {}, "Run ", h("span", { class: "mono" }, runId));
  const statusSlot = h("span");
  const actionsBar = h("div", { class: "actions", role: "toolbar", "aria-label": "Run actions" });
  const result = h("p", { class: "result", role: "status", "aria-live": "polite" });
  const summary = h("div");
  const progress = h("div", { class: "progress-box" });
  const relatives = h("div");
  const timeline = h("ol", { class: "timeline", "aria-live": "off" });
  const logs = h("ol", { class: "logs" });
  const attempts = h("div");
  const steps = h("div");
  const data = h("div", { class: "data" });
  const ai = h("div");
  const chunks = h("pre", { class: "chunks", "aria-label": "Streamed chunks" });
  const checkpoints = h("div");
  const liveNote = h("span", { class: "live-note" });
  // what stops the page from updating (Redis unavailable, the API unreachable), until it updates again
  const staleNote = h("span", { class: "error stale-note", role: "status" });
  const typeFilter = h("select", { "aria-label": "Timeline event type" }, h("option", { value: "" }, "all events"),
    EVENT_TYPES.filter((t) => t !== "message").map((t) => h("option", { value: t }, t)));
  typeFilter.addEventListener("change", () => {
    for (const li of timeline.children) li.hidden = Boolean(typeFilter.value) && li.dataset.type !== typeFilter.value;
  });

  fill(root,
    h("div", { class: "page-head" }, title, statusSlot, liveNote, staleNote),
    actionsBar, result,
    h("div", { class: "grid" },
      section("Summary", "h-summary", summary, progress),
      section("Lineage and children", "h-rel", relatives)),
    section("Logs", "h-logs", logs),
    section("Timeline", "h-timeline", h("div", { class: "toolbar" }, typeFilter), timeline),
    section("Attempts", "h-attempts", attempts),
    section("Steps", "h-steps", steps),
    section("Input, output, metadata", "h-data", data),
    section("AI: usage, tool calls, outputs, stream", "h-ai", ai, h("h3", {}, "Streamed chunks"), chunks),
    section("Checkpoints", "h-cp", checkpoints));

  function renderActions() {
    fill(actionsBar, ACTIONS.map((a) => {
      const label = typeof a.label === "function" ? a.label(run) : a.label;
      const btn = h("button", { type: "button", "data-action": a.id, disabled: !a.when(run) }, label);
      btn.addEventListener("click", async () => {
        const values = await confirmDialog(label, typeof a.ask === "function" ? a.ask(run) : a.ask, a.fields || [],
          label);
        if (values === null) return;
        btn.disabled = true;
        try {
          const out = await a.call(run, values);
          const text = `${label}: ${describe(out)}`;
          fill(result, text);
          result.classList.remove("error");
          if (out && out.id && out.id !== run.id && !out.result) {
            result.append(" — ", runLink(out.id));
          }
          toast(text, "ok");
        } catch (err) {
          fill(result, `${label} failed: ${err.message}`);
          result.classList.add("error");
          toast(`${label} failed: ${err.message}`, "error");
        }
        runRefresh.request();
        recordsRefresh.request();
      });
      return btn;
    }));
  }

  function renderRun() {
    // (a request is news only while the run is live: a finished run's status says how it ended)
    const live = !run.finished_at;
    fill(statusSlot, badge(run.status),
      live && run.cancel_requested ? h("span", { class: "badge s-canceled" }, "cancel requested") : null,
      live && run.pause_requested ? h("span", { class: "badge s-paused" }, "pause requested") : null,
      run.debug_mode ? h("span", { class: "badge s-debug" }, "debug") : null);
    fill(summary, kv([
      ["Job", run.job], ["Queue", run.queue], ["Attempt", attemptsTitle(run)],
      ["Priority", run.priority], ["Created", time(run.created_at)], ["Scheduled", run.scheduled_at && !run.finished_at ? time(run.scheduled_at) : null],
      ["Started", run.started_at ? time(run.started_at) : null], ["Finished", run.finished_at ? time(run.finished_at) : null],
      ["Duration", runSpan(run) === null ? null : duration(runSpan(run))],
      ["Next retry", run.next_retry_at ? time(run.next_retry_at) : null], ["Node", run.lease_node],
      ["Idempotency key", run.idempotency_key && run.idempotency_reset_at
        ? h("span", {}, run.idempotency_key, " (forgotten ", time(run.idempotency_reset_at), ")") : run.idempotency_key],
      ["Concurrency key", run.concurrency_key], ["Version", run.version],
      ["Hook", run.hook_of ? h("span", {}, `${run.hook_kind} of `, runLink(run.hook_of)) : null],
      ["Triggered by", run.triggered_by], ["Batch", run.batch_id],
      ["Waiting for", run.wait ? `${run.wait.kind}${run.wait.key ? ` ${run.wait.key}` : ""}` : null],
      ["Expires", run.expires_at ? time(run.expires_at) : null],
    ]));
    const p = run.progress;
    if (p && typeof p.current === "number") {
      const total = typeof p.total === "number" && p.total > 0 ? p.total : null;
      fill(progress, h("label", { for: "run-progress" }, "Progress ",
        total ? `${p.current} / ${total}` : String(p.current), p.message ? ` — ${p.message}` : ""),
      h("progress", { id: "run-progress", max: total ?? undefined, value: total ? Math.min(p.current, total) : undefined }));
    } else fill(progress);
    const links = [["Parent", run.parent_id], ["Root", run.root_id !== run.id ? run.root_id : null],
      ["Continuation of", run.continuation_of], ["Continued as", run.continued_as], ["Replay of", run.replay_of],
      ["Replayed as", run.replayed_as], ["Restart of", run.restart_of], ["Restarted as", run.restarted_as]]
      .filter(([, v]) => v).map(([k, v]) => [k, runLink(v)]);
    relatives.replaceChildren(links.length ? kv(links) : h("p", { class: "muted" }, "No parent, continuation, replay or restart."),
      relatives.querySelector(".chain") || h("div", { class: "chain" }),
      relatives.querySelector(".children") || h("div", { class: "children" }));
    // the attempt in progress is recorded when it ends: show it from the run's lease meanwhile
    const shown = [...run.attempts];
    if (run.status === "executing" && !shown.some((a) => a.number === run.attempt)) {
      shown.push({ number: run.attempt, status: "executing", started_at: run.attempt_started_at || run.started_at,
        finished_at: null,
        worker_id: run.lease_node, error: null });
    }
    fill(attempts, shown.length ? h("div", { class: "table-wrap" }, h("table", {},
      headRow(["#", "Status", "Started", "Finished", "Duration", "Node", "Error"], ["#", "Duration"]),
      h("tbody", {}, shown.map((a) => h("tr", {},
        h("td", { class: "num" }, a.number), h("td", {}, badge(a.status)), h("td", {}, time(a.started_at)),
        h("td", {}, a.finished_at ? time(a.finished_at) : "—"), h("td", { class: "num" }, duration(span(a.started_at, a.finished_at))),
        h("td", { class: "mono" }, a.worker_id || ""),
        h("td", {}, a.error ? errorDetails(a.error) : ""))))))
      : h("p", { class: "muted" }, "No attempt yet."));
    fill(data, jsonView(run.input, "Input", true), jsonView(run.output, "Output", run.output !== null),
      run.error ? h("div", {}, h("h3", {}, "Error"), errorDetails(run.error)) : null,
      jsonView(run.metadata, "Metadata"), jsonView({ tags: run.tags, labels: run.labels }, "Tags and labels"));
    renderActions();
    liveNote.textContent = LIVE.has(run.status) ? "live" : "";
  }

  function errorDetails(err) {
    const message = err.message || err.type || "error";
    return h("details", { class: "err" }, h("summary", {}, `${err.type ? `${err.type}: ` : ""}${message}`),
      err.stack ? h("pre", {}, err.stack) : jsonView(err, "details", true));
  }

  function eventRow(ev) {
    // (most messages start with their type, "status executing": the type is shown once)
    const message = ev.message === ev.type ? "" : ev.message.startsWith(`${ev.type} `)
      ? ev.message.slice(ev.type.length + 1) : ev.message;
    const li = h("li", { class: `ev lvl-${ev.level}`, dataset: { type: ev.type, id: ev.id } },
      h("span", { class: "ev-time" }, time(ev.created_at)), " ",
      h("span", { class: "ev-type" }, ev.type), " ", h("span", { class: "ev-msg" }, eventSaid(ev, message)));
    if (typeFilter.value && ev.type !== typeFilter.value) li.hidden = true;
    return li;
  }

  // what an event says past its type; a time in its data shown as every time on the page is, in the viewer's
  // time zone (the server's words give it in UTC: "rescheduled to 2026-12-07T10:00:00.000Z")
  function eventSaid(ev, message) {
    const at = ev.type === "rescheduled" ? Number(ev.data && ev.data.scheduled_at) : NaN;
    return Number.isFinite(at) && at > 0 ? h("span", {}, "to ", time(new Date(at).toISOString())) : message;
  }

  function logRow(ev) {
    const d = ev.data || {};
    const extra = d.data && Object.keys(d.data).length ? jsonView(d.data, "data") : null;
    return h("li", { class: `log lvl-${ev.level}` }, h("span", { class: "ev-time" }, time(ev.created_at)), " ",
      h("span", { class: `lvl lvl-${ev.level}` }, ev.level), d.step_name ? h("span", { class: "tag" }, d.step_name) : null,
      " ", h("span", { class: "log-msg" }, ev.message), extra);
  }

  function addEvents(events) {
    const evFrag = document.createDocumentFragment();
    const logFrag = document.createDocumentFragment();
    for (const ev of events) {
      evFrag.append(eventRow(ev));
      if (ev.type === "log") logFrag.append(logRow(ev));
    }
    // a list scrolled to its end follows new lines; one the reader scrolled up stays where it is
    const follow = [timeline, logs].map((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 40);
    timeline.append(evFrag);
    logs.append(logFrag);
    while (timeline.children.length > MAX_TIMELINE_ROWS) timeline.firstChild.remove();
    while (logs.children.length > MAX_TIMELINE_ROWS) logs.firstChild.remove();
    [timeline, logs].forEach((el, i) => {
      if (follow[i]) el.scrollTop = el.scrollHeight;
    });
  }

  function stale(why) {
    staleNote.textContent = `Not updating: ${why}`;
    liveNote.hidden = true;
  }

  function updating() {
    if (!staleNote.textContent) return;
    staleNote.textContent = "";
    liveNote.hidden = false;
    runRefresh.request();
    recordsRefresh.request();
  }

  // events from the stream are buffered and added at most every 200 ms (one DOM update for many events)
  function queueEvent(ev) {
    updating();
    pending.push(ev);
    if (["status", "attempt", "progress", "metadata", "debug_mode", "pause_requested", "pause_withdrawn",
      "rescheduled", "continued", "idempotency_reset"].includes(ev.type)) runRefresh.request();
    if (["step", "checkpoint", "status"].includes(ev.type)) recordsRefresh.request();
    if (flushTimer === null) {
      flushTimer = setTimeout(() => {
        flushTimer = null;
        addEvents(pending.splice(0));
      }, 200);
    }
  }

  async function loadRun() {
    const fresh = await get(runPath(runId));
    if (stopped) return;
    run = fresh;
    renderRun();
  }

  async function loadRecords() {
    const base = runPath(run.id);
    const [st, usage, tools, outputs, cps, kids, chain] = await Promise.all([
      get(`${base}/steps`), get(`${base}/usage`), get(`${base}/tool-calls`), get(`${base}/outputs`),
      get(`${base}/checkpoints`), get(`${base}/children`, { limit: 100 }),
      run.continuation_of || run.continued_as ? get(`${base}/lineage`) : Promise.resolve(null)]);
    if (stopped) return;
    fill(steps, st.data.length ? h("div", { class: "table-wrap" }, h("table", {},
      headRow(["#", "Step", "Status", "Duration", "Output or error"], ["#", "Duration"]),
      h("tbody", {}, st.data.map((s) => h("tr", {}, h("td", { class: "num" }, s.index ?? ""), h("td", {}, s.name),
        h("td", {}, badge(s.status)), h("td", { class: "num" }, duration(span(s.started_at, s.completed_at))),
        h("td", {}, s.error ? errorDetails(typeof s.error === "object" ? s.error : { message: String(s.error) })
          : jsonView(s.output, undefined))))))) : h("p", { class: "muted" }, "No steps recorded."));
    const aiParts = [];
    if (usage.data.length) {
      const t = usage.total;
      aiParts.push(h("h3", {}, "Usage"), h("p", {}, `${t.calls} call${t.calls === 1 ? "" : "s"} · ${t.prompt_tokens} prompt + ${t.completion_tokens} completion tokens · $${(t.cost_microusd / 1e6).toFixed(4)}`),
        h("div", { class: "table-wrap" }, h("table", {}, headRow(["Provider", "Model", "Prompt", "Completion", "Cost (µ$)"], ["Prompt", "Completion", "Cost (µ$)"]),
          h("tbody", {}, usage.data.map((u) => h("tr", {}, h("td", {}, u.provider), h("td", {}, u.model),
            h("td", { class: "num" }, u.prompt_tokens), h("td", { class: "num" }, u.completion_tokens), h("td", { class: "num" }, u.cost_microusd)))))));
    }
    if (tools.data.length) {
      aiParts.push(h("h3", {}, "Tool calls"), h("ul", { class: "plain" }, tools.data.map((t) => h("li", {},
        h("strong", {}, t.tool_name), ` ${t.status || ""} ${t.duration_ms !== undefined ? `${t.duration_ms} ms` : ""} `,
        jsonView(t.input, "input"), jsonView(t.output, "output")))));
    }
    if (outputs.data.length) {
      aiParts.push(h("h3", {}, "Outputs"), h("ul", { class: "plain" }, outputs.data.map((o) => h("li", {},
        jsonView(o.value, o.output_key, true)))));
    }
    fill(ai, aiParts.length ? aiParts : h("p", { class: "muted" }, "No usage, tool calls or outputs recorded."));
    fill(checkpoints, cps.data.length ? h("ol", { class: "plain" }, cps.data.map((c) => h("li", {},
      `#${c.sequence} `, time(c.created_at), " ", jsonView(c.state, "state")))) : h("p", { class: "muted" }, "No checkpoints."));
    const childBox = relatives.querySelector(".children");
    if (childBox) {
      fill(childBox, kids.data.length ? [h("h3", {}, `Children (${kids.data.length}${kids.has_more ? "+" : ""})`), childTree(kids.data)] : []);
    }
    const chainBox = relatives.querySelector(".chain");
    if (chainBox) {
      fill(chainBox, chain && chain.data.length > 1 ? [h("h3", {}, "Continuation chain"),
        h("ol", { class: "plain" }, chain.data.map((r) => h("li", {}, r.id === run.id ? h("strong", { class: "mono" }, r.id) : runLink(r.id), " ", badge(r.status))))] : []);
    }
  }

  // children as a tree: each child folds open to load its own children
  function childTree(list) {
    return h("ul", { class: "tree" }, list.map((c) => {
      const sub = h("div");
      const details = h("details", {}, h("summary", {}, runLink(c.id), " ", c.job, " ", badge(c.status)), sub);
      details.addEventListener("toggle", async () => {
        if (!details.open || sub.dataset.loaded) return;
        sub.dataset.loaded = "1";
        try {
          const k = await get(`${runPath(c.id)}/children`, { limit: 100 });
          fill(sub, k.data.length ? childTree(k.data) : h("p", { class: "muted" }, "no children"));
        } catch (err) {
          fill(sub, errorBox(err));
        }
      }, { once: false });
      return h("li", {}, details);
    }));
  }

  const runRefresh = new Coalescer(async () => {
    // (the API waits a while for a Redis that does not answer before it says so: the page says it first)
    const slow = setTimeout(() => stale(`no answer for ${SLOW_ANSWER_MS / 1000} s`), SLOW_ANSWER_MS);
    try {
      await loadRun();
    } catch (err) {
      stale(`${err.message}${err.code ? ` (${err.code})` : ""}`);
      throw err;
    } finally {
      clearTimeout(slow);
    }
    updating();
  }, RUN_REFRESH_MS);
  // a live run is read again every few seconds even when its stream is quiet: a Redis that stopped
  // answering (its stream just goes silent) shows as not updating; the first answer ends the note
  const staleCheck = setInterval(() => {
    if (!document.hidden && (staleNote.textContent || (run && LIVE.has(run.status)))) runRefresh.request();
  }, LIVE_CHECK_MS);
  const recordsRefresh = new Coalescer(() => (run ? loadRecords() : null), RECORDS_REFRESH_MS);

  function follow(lastId) {
    const url = `/v1${runPath(runId)}/stream${lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : ""}`;
    source = new EventSource(url);
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (msg) => queueEvent(JSON.parse(msg.data)));
    }
    source.addEventListener("end", () => {
      source.close();
      source = null;
      runRefresh.request();
      recordsRefresh.request();
    });
    // a dropped connection: EventSource reconnects by itself with Last-Event-ID; meanwhile the page says
    // it is not updating (an error event names why: Redis unavailable), until the run reads again
    source.addEventListener("error", (msg) => {
      let why = "the connection to the API dropped; reconnecting";
      if (msg.data) {
        try {
          why = JSON.parse(msg.data).error || why;
        } catch {
          // (not JSON: the generic reason stands)
        }
      }
      stale(why);
    });
  }

  function followChunks() {
    chunkSource = new EventSource(`/v1${runPath(runId)}/stream/chunks`);
    let buffered = "";
    let timer = null;
    chunkSource.addEventListener("chunk", (msg) => {
      const c = JSON.parse(msg.data).chunk;
      buffered += typeof c === "string" ? c : JSON.stringify(c);
      if (timer === null) {
        timer = setTimeout(() => {
          timer = null;
          chunks.append(buffered);
          buffered = "";
        }, 100);
      }
    });
    chunkSource.addEventListener("end", () => {
      chunkSource.close();
      chunkSource = null;
      if (!chunks.textContent && !buffered) chunks.textContent = "(nothing streamed)";
    });
  }

  (async () => {
    try {
      await loadRun();
      const events = await get(`${runPath(run.id)}/events`);
      if (stopped) return;
      addEvents(events.data.slice(-MAX_TIMELINE_ROWS));
      follow(events.data.length ? events.data[events.data.length - 1].id : null);
      followChunks();
      await loadRecords();
    } catch (err) {
      // (an id the API refuses outright, too long say, names no run either)
      if (err instanceof ApiFailure && (err.status === 404 || err.status === 400)) {
        fill(root, h("h1", {}, "Run not found"), h("p", { class: "muted wrap" }, runId.slice(0, 200)), errorBox(err));
      } else root.prepend(errorBox(err));
    }
  })();

  return () => {
    stopped = true;
    if (source) source.close();
    if (chunkSource) chunkSource.close();
    if (flushTimer !== null) clearTimeout(flushTimer);
    runRefresh.stop();
    recordsRefresh.stop();
    clearInterval(staleCheck);
  };
}
