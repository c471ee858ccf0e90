"""The README's metrics table is the catalogue: it lists exactly what a node exports."""

from __future__ import annotations

import re

from prometheus_client.metrics import MetricWrapperBase

from runtime.metrics import Metrics
from tests.observability.support import ROOT


def readme_table() -> dict[str, tuple[str, tuple[str, ...]]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(baton_\w+)` \| (\w+) \|([^|]*)\|", line)
        if m:
            name, kind, labels = m.groups()
            rows[name] = (kind, tuple(re.findall(r"`(\w+)`", labels)))
    return rows


def test_readme_lists_every_metric_with_its_type_and_labels() -> None:
    # Given the metrics a node creates
    exported = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            name = metric._name + ("_total" if metric._type == "counter" else "")
            exported[name] = (metric._type, tuple(metric._labelnames))
    # Then the README table has one row per metric, with the same type and labels, and nothing else
    assert readme_table() == exported


def test_names_follow_prometheus_conventions() -> None:
    # Given every metric, then: baton_ prefix, snake case, _total only on counters, base units
    for metric in vars(Metrics()).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        name, kind = metric._name, metric._type
        assert re.fullmatch(r"baton_[a-z0-9_]+", name), name
        assert not name.endswith("_total"), name  # the client adds it to counters
        assert not re.search(r"_(ms|milliseconds|minutes|hours|bytes_total)$", name), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        assert not {"run_id", "id", "token", "job", "instance"} & set(metric._labelnames), name
