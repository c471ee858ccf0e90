"""Grafana dashboards, provisioning and Prometheus alert rules: structure, PromQL, names, promtool."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.metrics import Metrics
from tests.observability.conftest import LoadedNode
from tests.observability.support import (
    ALERT_TESTS,
    ALERTS,
    DATASOURCE_UID,
    DATASOURCE_VAR,
    GRAFANA,
    alert_exprs,
    dashboard_exprs,
    dashboard_files,
    exported_names,
    grafana_to_promql,
    load_script,
    metric_names,
    promtool,
    variable_queries,
    walk_panels,
)


def _builder() -> Any:
    return load_script(GRAFANA / "build_dashboards.py")


def test_the_four_dashboards_exist_and_match_their_builder() -> None:
    # Given the dashboard files and the script that writes them
    files = {p.name: p.read_text() for p in dashboard_files()}
    # Then there are the overview, queues, leases-and-recovery and jobs dashboards, exactly as built
    assert set(files) == {"baton-overview.json", "baton-queues.json", "baton-leases.json", "baton-jobs.json"}
    assert _builder().render() == files, "run: python grafana/build_dashboards.py"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    # Given one dashboard
    dash = json.loads(path.read_text())
    # Then it has the fields Grafana needs, and every panel is placed, identified and bound to the datasource
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert dash["uid"] and len(dash["uid"]) <= 40 and dash["title"].startswith("Baton / ")
    assert dash["time"]["from"] and dash["time"]["to"]
    panels = list(walk_panels(dash["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("h", "w", "x", "y")), p["title"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        boxes.append((g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"], p["title"]))
        assert p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": DATASOURCE_VAR}, p["title"]
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == DATASOURCE_VAR and t["expr"].strip(), p["title"]
            # scoped to the deployment the variables pick: every metric selector filters namespace and job
            selectors = [m.group(2) or "" for m in _builder().SELECTOR.finditer(t["expr"])]
            assert selectors and all('namespace=~"$namespace", job=~"$job"' in s for s in selectors), t["expr"]
            # and per-node series are told apart by pod, never by the instance's address
            assert "instance" not in t["expr"] and "{{instance}}" not in t["legendFormat"], p["title"]
    for i, a in enumerate(boxes):  # no two panels overlap
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a[4], b[4])
    variables = dash["templating"]["list"]
    assert [v["name"] for v in variables[:3]] == ["datasource", "namespace", "job"]
    assert variables[0]["type"] == "datasource" and variables[0]["query"] == "prometheus"
    for var in variables[1:]:
        assert var["datasource"]["uid"] == DATASOURCE_VAR
    # Grafana's import asks for the datasource (no hard-coded uid to break an existing Grafana)
    assert [i["pluginId"] for i in dash["__inputs"]] == ["prometheus"]
    assert DATASOURCE_UID not in path.read_text()
    uids = [json.loads(p.read_text())["uid"] for p in dashboard_files()]
    assert len(uids) == len(set(uids))


def test_provisioning_points_at_the_dashboards_datasource() -> None:
    # Given the provisioning files
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/baton.yml").read_text())
    dash = yaml.safe_load((GRAFANA / "provisioning/dashboards/baton.yml").read_text())
    # Then the datasource the dashboards name is provisioned, and a file provider loads dashboards
    assert ds["apiVersion"] == 1 and [(d["uid"], d["type"]) for d in ds["datasources"]] == [
        (DATASOURCE_UID, "prometheus")]
    assert ds["datasources"][0]["url"].startswith("http")
    (provider,) = dash["providers"]
    assert dash["apiVersion"] == 1 and provider["type"] == "file" and provider["options"]["path"]


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    # Given every query of every dashboard, written as recording rules (promtool parses rule files)
    exprs = dashboard_exprs()
    assert len(exprs) >= 40
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(expr)} for i, (_, _, expr) in enumerate(exprs)
    ]}]}
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    # When promtool checks them
    result = promtool("check", "rules", str(path))
    # Then every one parses
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout
    # (and the same check does reject a broken query)
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum(rate(baton_runs_started_total[5m])"}]}]}))
    assert promtool("check", "rules", str(path)).returncode != 0


def test_alert_rules_check_and_unit_tests_pass() -> None:
    # Given the alert rules and their promtool unit tests
    names = {name for name, _ in alert_exprs()}
    # Then the alerts the runbook needs exist
    assert {"BatonQueueBacklogGrowing", "BatonOldestRunTooOld", "BatonLeaseReclaimsSpiking",
            "BatonDeadLetterGrowing", "BatonNoWorkerHeartbeats", "BatonIntakeLagging"} <= names
    # and promtool accepts the rules and passes every unit test
    check = promtool("check", "rules", str(ALERTS))
    assert check.returncode == 0, check.stdout + check.stderr
    test = promtool("test", "rules", str(ALERT_TESTS))
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr
    # and every alert has at least one unit test that expects it to fire
    tested = yaml.safe_load(ALERT_TESTS.read_text())
    fired = {case["alertname"] for t in tested["tests"] for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert fired == names
    # and the example Prometheus configuration that loads them is valid
    config = promtool("check", "config", str(GRAFANA / "prometheus.example.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_metric_name_extraction() -> None:
    # Given queries with functions, keywords, label lists, strings, ranges and Grafana variables
    expr = ('histogram_quantile(0.99, sum by (le, command) (rate(baton_redis_command_duration_seconds_bucket'
            '{command!="by"}[$__rate_interval]))) / on(instance) group_left max without (x) (baton_a offset 5m)'
            ' and time() - baton_b > bool 3 or vector(0)')
    # Then exactly the metric names come out
    assert metric_names(expr) == {"baton_redis_command_duration_seconds_bucket", "baton_a", "baton_b"}


def _label_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', grafana_to_promql(expr))
    found = set()
    for block in re.findall(r"\{([^}]*)\}", text):
        found.update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", block))
    for block in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", text):
        found.update(x.strip() for x in block.split(",") if x.strip())
    return found


async def test_queries_name_only_metrics_and_labels_a_node_exports(loaded_node: LoadedNode) -> None:
    # Given a live node's /metrics and the label names of Baton's metrics
    exported = exported_names(loaded_node.scrape()) | {"up"}  # up: Prometheus's own, per target
    # added by Prometheus at scrape time (namespace and pod by the ServiceMonitor), and histogram buckets
    labels = {"instance", "job", "namespace", "pod", "le"}
    for metric in vars(Metrics()).values():
        labels.update(getattr(metric, "_labelnames", ()))
    # When every query of the dashboards, their variables and the alert rules is read
    queries = [(f"{f}: {title}", expr) for f, title, expr in dashboard_exprs()]
    queries += [(f"{f}: ${name}", re.sub(r"label_values\((\w+(?:\{[^}]*\})?),.*\)", r"\1", q))
                for f, name, q in variable_queries()]
    queries += [(f"alert {name}", expr) for name, expr in alert_exprs()]
    # Then each names only metrics the node exports, and only their labels
    for where, expr in queries:
        names = metric_names(expr)
        assert names, (where, expr)
        missing = names - exported
        assert not missing, f"{where} uses {sorted(missing)}, not exported by the daemon"
        unknown = _label_names(expr) - labels
        assert not unknown, f"{where} uses labels {sorted(unknown)}"


def test_every_metric_an_alert_watches_is_on_a_dashboard() -> None:
    # an operator paged by an alert looks for its metric on the wall: baton_schedules_failing and
    # baton_event_loop_stalls_total were alerted on with no panel to show them
    on_dashboards = set().union(*(metric_names(expr) for _, _, expr in dashboard_exprs()))
    missing = {name: sorted(metric_names(expr) - on_dashboards - {"up"}) for name, expr in alert_exprs()}
    assert {name: names for name, names in missing.items() if names} == {}
