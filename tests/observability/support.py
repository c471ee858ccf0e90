"""Helpers of the observability tests: Prometheus binaries, scraping, PromQL names, dashboards."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
ALERTS = GRAFANA / "alerts" / "baton.rules.yml"
ALERT_TESTS = GRAFANA / "alerts" / "baton.rules.test.yml"
#: the provisioned datasource (grafana/provisioning)
DATASOURCE_UID = "baton-prometheus"
#: what every dashboard query and variable names as its datasource: the dashboard's variable
DATASOURCE_VAR = "${datasource}"


def load_script(path: Path) -> Any:
    """Import a script of the repository that is not in a package (grafana/, deploy/) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def binary(name: str) -> str:
    """Path of a Prometheus binary (promtool, prometheus).

    Missing: the test is skipped with the reason on a developer machine, and
    fails under CI (CI=true), where ``./dev test`` installs Debian's prometheus.
    """
    found = shutil.which(name)
    if found:
        return found
    reason = (f"{name} not found: install Debian's prometheus package "
              "(apt-get install --no-install-recommends prometheus; ./dev test does it when run as root)")
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; returns the completed process (never raises on its exit code)."""
    return subprocess.run([binary("promtool"), *args], input=stdin, capture_output=True, text=True, timeout=60)


def scrape(port: int, host: str = "127.0.0.1") -> str:
    """GET /metrics in the Prometheus text format (what promtool checks)."""
    req = urllib.request.Request(f"http://{host}:{port}/metrics", headers={"Accept": "text/plain"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return str(resp.read().decode())


def exported_names(text: str) -> set[str]:
    """Every name a query can use: family names, ``_total`` counters, histogram series."""
    names: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            name, kind = m.groups()
            names.add(name)
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def sample(text: str, name: str, **labels: str) -> float | None:
    """Value of one sample of an exposition, or None."""
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


# -- PromQL ------------------------------------------------------------------

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan", "atan2",
}
_GRAFANA_RANGES = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}")
_GRAFANA_VARIABLES = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's range variables and the dashboard variables (as "All": ``.*``), so the
    expression is plain PromQL that selects what the dashboard shows with every variable on All."""
    return _GRAFANA_VARIABLES.sub(".*", _GRAFANA_RANGES.sub("5m", expr))


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and label names left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', grafana_to_promql(expr))  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


# -- dashboards --------------------------------------------------------------

def dashboard_files() -> list[Path]:
    """The dashboard JSON files."""
    return sorted(DASHBOARDS.glob("*.json"))


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(file, panel title, expr) of every query target of every dashboard."""
    out = []
    for path in dashboard_files():
        dash = json.loads(path.read_text())
        for panel in walk_panels(dash["panels"]):
            for target in panel.get("targets", []):
                if "expr" in target:
                    out.append((path.name, panel.get("title", ""), target["expr"]))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(file, variable name, query) of every query variable of every dashboard."""
    out = []
    for path in dashboard_files():
        dash = json.loads(path.read_text())
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                out.append((path.name, var["name"], q))
    return out


def alert_exprs() -> list[tuple[str, str]]:
    """(alert name, expr) of every rule in the alert rules file."""
    import yaml

    doc = yaml.safe_load(ALERTS.read_text())
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in doc["groups"] for r in g["rules"]]
