"""Builds grafana/dashboards/*.json: ``python grafana/build_dashboards.py``.

The dashboards are plain Grafana JSON (schemaVersion 39, Grafana 10/11) and can
be edited in Grafana and exported; this script is how they are kept
consistent (one datasource, one panel style, generated ids and positions). A
test fails when the JSON files and this script disagree, and another checks
that every query parses and names only metrics a node exports.

Conventions of the queries: node counters are summed across nodes; cluster
gauges (queue depth, runs per state, overdue leases, live nodes, intake lag) are
exported by one elected node, and by two with the same value around a hand-over,
so they are aggregated with ``max`` per series first. The job label of Baton's metrics is ``job_name`` (Prometheus
owns ``job``).

Scoping: every metric selector (``SELECTOR``) gets ``namespace=~"$namespace", job=~"$job"``
(added by :func:`scoped`), so two Baton deployments scraped by one Prometheus
stay apart; per-node series are grouped and labelled by ``pod``. The datasource
is the ``${datasource}`` variable (and ``__inputs`` for Grafana's import), so
the dashboards work in any Grafana without editing a uid.
"""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: the label matchers that keep one deployment's series apart from another's
SCOPE = 'namespace=~"$namespace", job=~"$job"'
#: a selector of a metric a node exports: Baton's own, and the process and Python collectors' (CPU,
#: memory, garbage collector) that every Python exporter has, hence scoped like Baton's
SELECTOR = re.compile(r"\b((?:baton|process|python_gc)_[a-z0-9_]+)(?:\{([^}]*)\})?")
OUT = Path(__file__).parent / "dashboards"
RATE = "[$__rate_interval]"

Panel = dict[str, Any]


def scoped(expr: str) -> str:
    """``expr`` with the namespace and job matchers added to every Baton metric selector."""
    def add(m: re.Match[str]) -> str:
        name, matchers = m.group(1), m.group(2)
        return f"{name}{{{SCOPE}, {matchers}}}" if matchers else f"{name}{{{SCOPE}}}"

    return SELECTOR.sub(add, expr)


def _targets(exprs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"datasource": DATASOURCE, "expr": scoped(expr), "legendFormat": legend, "refId": chr(ord("A") + i),
             "range": True} for i, (expr, legend) in enumerate(exprs)]


def timeseries(title: str, exprs: list[tuple[str, str]], unit: str = "short", description: str = "",
               w: int = 12, h: int = 8, stack: bool = False) -> Panel:
    """A time series panel; exprs are (PromQL, legend) pairs."""
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DATASOURCE,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {
            "defaults": {
                "unit": unit, "min": 0,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                           "spanNulls": False, "stacking": {"mode": "normal" if stack else "none", "group": "A"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": _targets(exprs),
    }


def stat(title: str, expr: str, unit: str = "short", description: str = "",
         thresholds: list[tuple[float | None, str]] | None = None, w: int = 4, h: int = 4) -> Panel:
    """A single-number panel."""
    steps = [{"color": color, "value": value} for value, color in (thresholds or [(None, "green")])]
    return {
        "type": "stat", "title": title, "description": description, "datasource": DATASOURCE,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto", "justifyMode": "auto",
                    "orientation": "auto"},
        "targets": _targets([(expr, title)]),
    }


def row(title: str) -> Panel:
    """A row header."""
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}, "panels": []}


def _layout(panels: list[Panel]) -> list[Panel]:
    """Give panels ids and positions: left to right, wrapping at 24 columns."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return panels


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A multi-value query variable (All = any value, a label the series lack included)."""
    return {
        "type": "query", "name": name, "label": label, "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
        "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*", "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [],
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel],
              variables: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A whole dashboard."""
    return {
        "uid": uid, "title": title, "description": description, "tags": ["baton"],
        "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"}, "timepicker": {}, "timezone": "browser",
        "refresh": "30s", "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "links": [{"type": "dashboards", "tags": ["baton"], "asDropdown": True, "title": "Baton",
                   "includeVars": False, "keepTime": True, "icon": "external link", "tooltip": "",
                   "url": "", "targetBlank": False}],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "templating": {"list": [DATASOURCE_VAR, NAMESPACE_VAR, JOB_SCRAPE_VAR, *(variables or [])]},
        "panels": _layout(panels),
        # for Grafana's dashboard import: it asks for the Prometheus datasource to use
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description": "", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
                       {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
    }


# -- the four dashboards -------------------------------------------------------

QUEUED = "sum(max by (queue, partition) (baton_queue_depth))"
STATE = 'sum(max by (partition) (baton_partition_runs{{state="{}"}}))'
#: (its current value is the datasource Grafana's import asks for, DS_PROMETHEUS in ``__inputs``: left
#: empty, the import asked and then used the default datasource; provisioned without an import, the
#: name matches no datasource and Grafana takes the default, as before)
DATASOURCE_VAR: dict[str, Any] = {
    "type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
    "current": {"selected": True, "text": "${DS_PROMETHEUS}", "value": "${DS_PROMETHEUS}"},
    "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1, "regex": "",
}
NAMESPACE_VAR = variable("namespace", "Namespace", "label_values(baton_executor_slots, namespace)")
JOB_SCRAPE_VAR = variable("job", "Scrape job", 'label_values(baton_executor_slots{namespace=~"$namespace"}, job)')
QUEUE_VAR = variable("queue", "Queue", f"label_values(baton_queue_depth{{{SCOPE}}}, queue)")
JOB_VAR = variable("job_name", "Job", f"label_values(baton_runs_started_total{{{SCOPE}}}, job_name)")


def overview() -> dict[str, Any]:
    """Is Baton healthy? Backlog, throughput, failures, recovery, capacity."""
    return dashboard("baton-overview", "Baton / Overview", "Backlog, throughput, failures and capacity at a glance.", [
        stat("Queued runs", QUEUED, description="Runs ready to run, all queues (cluster-wide)."),
        stat("Executing", STATE.format("executing"), description="Runs holding a lease now."),
        stat("Oldest queued run", "max(baton_queue_oldest_age_seconds)", unit="s",
             thresholds=[(None, "green"), (60, "orange"), (600, "red")]),
        stat("Dead letter", STATE.format("dead_letter"), thresholds=[(None, "green"), (1, "orange")]),
        stat("Live nodes", "max(baton_nodes_live)", thresholds=[(None, "red"), (1, "green")]),
        stat("Schedules that cannot fire", "max(baton_schedules_failing)", thresholds=[(None, "green"), (1, "red")],
             description="Cron schedules the scheduler skips (alert BatonScheduleCannotFire): listed with their "
                         "error by GET /v1/schedules and on the dashboard's Schedules page."),
        stat("Slots busy", "sum(baton_executor_slots_busy) / sum(baton_executor_slots)", unit="percentunit",
             thresholds=[(None, "green"), (0.8, "orange"), (0.95, "red")]),
        timeseries("Runs started and finished per second", [
            (f"sum(rate(baton_runs_started_total{RATE}))", "started"),
            (f"sum by (status) (rate(baton_runs_finished_total{RATE}))", "{{status}}"),
            (f"sum(rate(baton_runs_retried_total{RATE}))", "retried"),
        ], unit="ops"),
        timeseries("Queued runs by queue", [
            ("sum by (queue) (max by (queue, partition) (baton_queue_depth))", "{{queue}}"),
        ], stack=True),
        timeseries("Attempt failures per second", [
            (f'sum by (outcome) (rate(baton_attempts_total{{outcome=~"failed|timed_out|crashed"}}{RATE}))',
             "{{outcome}}"),
        ], unit="ops"),
        timeseries("Leases reclaimed from dead nodes", [
            (f"sum by (queue) (increase(baton_leases_reclaimed_total{RATE}))", "{{queue}}"),
        ]),
        timeseries("Intake", [
            ("max(baton_intake_lag_entries)", "lag (undelivered)"),
            ("max(baton_intake_pending_entries)", "pending (unacknowledged)"),
            (f"sum(rate(baton_intake_entries_rejected_total{RATE}))", "rejected / s"),
        ]),
        timeseries("Actor restarts", [
            (f"sum by (actor) (increase(baton_actor_restarts_total{RATE}))", "{{actor}}"),
        ]),
    ])


def queues() -> dict[str, Any]:
    """Where is work piling up? Depth, age, states, pickup latency, intake."""
    q = '{queue=~"$queue"}'
    return dashboard("baton-queues", "Baton / Queues", "Depth, age and flow of every queue and partition.", [
        row("Backlog"),
        timeseries("Queued runs by queue", [
            (f"sum by (queue) (max by (queue, partition) (baton_queue_depth{q}))", "{{queue}}"),
        ]),
        timeseries("Queued runs by partition", [
            (f"max by (queue, partition) (baton_queue_depth{q})", "{{queue}} p{{partition}}"),
        ]),
        timeseries("Oldest queued run", [
            (f"max by (queue) (baton_queue_oldest_age_seconds{q})", "{{queue}}"),
        ], unit="s", description="Age of the oldest run among the run next in line and the oldest priority-0 "
                                 "run of each queue, by the Redis clock."),
        timeseries("Backlog change over 15 minutes", [
            (f"sum by (queue) (max by (queue, partition) (delta(baton_queue_depth{q}[15m])))", "{{queue}}"),
        ], description="Positive: the queue grows faster than it is worked off."),
        row("Runs by state"),
        timeseries("Runs by state", [
            ('sum by (state) (max by (partition, state) (baton_partition_runs{state=~"queued|executing"}))',
             "{{state}}"),
            ('sum by (state) (max by (partition, state) (baton_partition_runs{state=~"delayed|waiting"}))',
             "{{state}}"),
        ], stack=True),
        timeseries("Dead letter queue", [(STATE.format("dead_letter"), "dead_letter")]),
        timeseries("Pickup latency (ready to leased)", [
            (f"histogram_quantile({p}, sum by (le) (rate(baton_pickup_latency_seconds_bucket{RATE})))", f"p{n}")
            for p, n in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))
        ], unit="s"),
        timeseries("Runs per partition", [
            ("sum by (partition) (max by (partition, state) (baton_partition_runs"
             '{state=~"queued|delayed|executing|waiting"}))', "p{{partition}}"),
        ], description="A hot partition shows as one line far above the others."),
        row("Intake"),
        timeseries("Submission stream", [
            ("max(baton_intake_lag_entries)", "lag (undelivered)"),
            ("max(baton_intake_pending_entries)", "pending (unacknowledged)"),
            ("max(baton_intake_stream_entries)", "stream length"),
        ]),
        timeseries("Entries read and rejected per second", [
            (f"sum(rate(baton_intake_entries_read_total{RATE}))", "read"),
            (f"sum by (reason) (rate(baton_intake_entries_rejected_total{RATE}))", "rejected: {{reason}}"),
        ], unit="ops"),
    ], [QUEUE_VAR])


def leases() -> dict[str, Any]:
    """Are leases healthy, and how fast is work recovered from dead nodes?"""
    return dashboard("baton-leases", "Baton / Leases and recovery",
                     "Lease renewals and expiry, fencing, reclaims of dead nodes' runs, Redis health.", [
        row("Leases"),
        timeseries("Least time left on a lease, by node", [
            ("min by (pod) (baton_lease_remaining_min_seconds)", "{{pod}}"),
            ("max(baton_lease_ttl_seconds)", "lease TTL"),
        ], unit="s", description="Close to 0: renewals are late and leases are about to expire."),
        timeseries("Time left at renewal", [
            (f"histogram_quantile({p}, sum by (le) (rate(baton_lease_remaining_at_renewal_seconds_bucket{RATE})))",
             f"p{n}") for p, n in (("0.01", "1"), ("0.5", "50"))
        ], unit="s"),
        timeseries("Leases held, by node", [("sum by (pod) (baton_leases_held)", "{{pod}}")],
                   stack=True),
        timeseries("Lease operations per second", [
            (f"sum(rate(baton_leases_acquired_total{RATE}))", "acquired"),
            (f"sum(rate(baton_leases_handed_off_total{RATE}))", "of which handed off (node was waiting)"),
            (f"sum(rate(baton_leases_renewed_total{RATE}))", "renewed"),
        ], unit="ops"),
        timeseries("Renewal failures and lost leases", [
            (f"sum(increase(baton_lease_renewal_failures_total{RATE}))", "renewal failed (Redis error)"),
            (f"sum by (stage) (increase(baton_leases_lost_total{RATE}))", "lost at {{stage}} (fenced)"),
        ]),
        row("Recovery"),
        timeseries("Leases reclaimed, by queue", [
            (f"sum by (queue) (increase(baton_leases_reclaimed_total{RATE}))", "{{queue}}"),
        ]),
        timeseries("Overdue leases (expired, not yet reclaimed)", [
            ("sum(max by (partition) (baton_leases_overdue))", "overdue"),
            # after Redis itself was out, reapers leave expired leases to their holders for a TTL
            # (every node counts an outage it sees: the most any pod counted)
            (f"max(increase(baton_redis_outages_found_total{RATE}))", "Redis outages found (reaping waits a TTL)"),
        ]),
        timeseries("Crashed attempts, by job", [
            (f'sum by (job_name) (increase(baton_attempts_total{{outcome="crashed"}}{RATE}))', "{{job_name}}"),
        ]),
        timeseries("Nodes", [
            ("max(baton_nodes_live)", "live nodes"),
            ("max by (pod) (time() - baton_heartbeat_timestamp_seconds)", "heartbeat age {{pod}}"),
        ]),
        timeseries("Actor restarts", [
            (f"sum by (pod, actor) (increase(baton_actor_restarts_total{RATE}))", "{{pod}} {{actor}}"),
        ]),
        row("Node processes"),
        # a node is one Python process per pod: what delays its event loop delays every pickup
        timeseries("Event loop lag p99, by pod", [
            ("histogram_quantile(0.99, sum by (le, pod) "
             f"(rate(baton_event_loop_lag_seconds_bucket{RATE})))", "{{pod}}"),
        ], unit="s", description="How late the loop ran a 100 ms timer: a handler blocking it, or long collector "
                                 "passes (blocks of 0.5 s or more also count in baton_event_loop_stalls_total)."),
        timeseries("Event loop stalls (0.5 s or more), by pod", [
            (f"sum by (pod) (increase(baton_event_loop_stalls_total{RATE}))", "{{pod}}"),
        ], description="Times a node's loop was blocked for 0.5 s or more (alert BatonEventLoopStalled); the node "
                       "log names the run that blocked it."),
        timeseries("CPU, by pod", [
            (f"sum by (pod) (rate(process_cpu_seconds_total{RATE}))", "{{pod}}"),
        ], unit="percentunit", description="Cores used by each node's process (1 = one core)."),
        timeseries("Memory (resident), by pod", [
            ("sum by (pod) (process_resident_memory_bytes)", "{{pod}}"),
        ], unit="bytes"),
        timeseries("Objects Python's cyclic collector freed per second, by pod", [
            (f"sum by (pod) (rate(python_gc_objects_collected_total{RATE}))", "{{pod}}"),
        ], unit="ops", description="Near 0 on a healthy node: Baton's runs leave no reference cycles "
                                   "(tests/integration/test_cyclic_garbage.py). A rise that follows the run "
                                   "rate points at handler code that makes cycles, and at longer collector passes."),
        row("Redis"),
        timeseries("Redis round trip p99, by command", [
            ("histogram_quantile(0.99, sum by (le, command) "
             f"(rate(baton_redis_command_duration_seconds_bucket{RATE})))", "{{command}}"),
        ], unit="s"),
        timeseries("Redis errors and reconnects", [
            (f"sum by (actor) (increase(baton_redis_errors_total{RATE}))", "errors {{actor}}"),
            (f"sum by (actor) (increase(baton_redis_reconnects_total{RATE}))", "reconnects {{actor}}"),
        ]),
        # (a Cluster master down: the partitions it holds, as the pod's actors skip them; the
        # actor's own figure is baton_partitions_out{actor=...})
        timeseries("Partitions out (whose master does not answer), by pod", [
            ("max by (pod) (baton_partitions_out)", "{{pod}}"),
        ]),
    ])


def jobs() -> dict[str, Any]:
    """How does each job behave? Throughput, outcomes, retries, durations, capacity."""
    j = 'job_name=~"$job_name"'
    return dashboard("baton-jobs", "Baton / Jobs", "Throughput, outcomes, retries and durations per job.", [
        timeseries("Runs started per second, by job", [
            (f"sum by (job_name) (rate(baton_runs_started_total{{{j}}}{RATE}))", "{{job_name}}"),
        ], unit="ops"),
        timeseries("Runs finished per second, by job and status", [
            (f"sum by (job_name, status) (rate(baton_runs_finished_total{{{j}}}{RATE}))",
             "{{job_name}} {{status}}"),
        ], unit="ops"),
        timeseries("Attempt outcomes per second", [
            (f"sum by (outcome) (rate(baton_attempts_total{{{j}}}{RATE}))", "{{outcome}}"),
        ], unit="ops", stack=True),
        timeseries("Retries and timeouts per second, by job", [
            (f"sum by (job_name) (rate(baton_runs_retried_total{{{j}}}{RATE}))", "retried {{job_name}}"),
            (f'sum by (job_name) (rate(baton_attempts_total{{{j}, outcome="timed_out"}}{RATE}))',
             "timed out {{job_name}}"),
        ], unit="ops"),
        timeseries("Failed attempt ratio, by job", [
            (f'sum by (job_name) (rate(baton_attempts_total{{{j}, outcome=~"failed|timed_out|crashed"}}{RATE}))'
             f" / sum by (job_name) (rate(baton_attempts_total{{{j}}}{RATE}))", "{{job_name}}"),
        ], unit="percentunit"),
        timeseries("Dead-lettered per hour, by job", [
            (f'sum by (job_name) (increase(baton_runs_finished_total{{{j}, status="dead_letter"}}[1h]))',
             "{{job_name}}"),
        ]),
        timeseries("Run duration", [
            (f"histogram_quantile({p}, sum by (le) (rate(baton_run_duration_seconds_bucket{{{j}}}{RATE})))",
             f"p{n}") for p, n in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))
        ], unit="s"),
        timeseries("Mean run duration, by job", [
            (f"sum by (job_name) (rate(baton_run_duration_seconds_sum{{{j}}}{RATE}))"
             f" / sum by (job_name) (rate(baton_run_duration_seconds_count{{{j}}}{RATE}))", "{{job_name}}"),
        ], unit="s"),
        timeseries("Pickup latency p95, by job", [
            ("histogram_quantile(0.95, sum by (le, job_name) "
             f"(rate(baton_pickup_latency_seconds_bucket{{{j}}}{RATE})))", "{{job_name}}"),
        ], unit="s"),
        timeseries("Executor slots, by node", [
            ("sum by (pod) (baton_executor_slots_busy)", "busy {{pod}}"),
            ("sum by (pod) (baton_executor_slots)", "total {{pod}}"),
        ]),
    ], [JOB_VAR])


DASHBOARDS = {"overview": overview, "queues": queues, "leases": leases, "jobs": jobs}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"baton-{name}.json": json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> None:
    """Write the dashboards next to this script, then the Kubernetes objects made from them
    (deploy/build_monitoring.py), so that one command leaves nothing stale."""
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    runpy.run_path(str(OUT.parent.parent / "deploy" / "build_monitoring.py"), run_name="__main__")


if __name__ == "__main__":
    main()
